"""The stages of a run, each reading and writing its run folder.

teacher → augment (transfer set with soft labels) → student → quantize → compare. Each stage
can run alone on an existing run folder (it reads what earlier stages left there), records
``stage_started`` / ``progress`` / ``stage_finished`` / ``error`` events, and on failure or
cancel leaves earlier artifacts intact and says why in the status.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
import traceback
from collections.abc import Callable, Collection
from functools import partial
from pathlib import Path

import numpy as np

from . import runs as R
from .config import RunConfig
from .data import DataError, TaskData, load_task
from .files import atomic_path
from .machine import cpu_description, environment
from .progress import Progress, StopRequested
from .runs import Run

Listener = Callable[[Progress], None]

#: The BiLSTM's comparison students; each family's distilled student is named in
#: kdstudio.families.
STUDENT_LABELS = {
    "baseline": "BiLSTM baseline (hard labels)",
    "distilled-noaug": "BiLSTM + soft labels",
}


def cache_dir_for(run: Run) -> Path:
    env = os.environ.get("KDSTUDIO_CACHE_DIR")
    return Path(env) if env else run.path.parent / "_cache"


class _Reporter:
    """Turns loop progress into throttled ``progress`` events (and feeds an optional listener)."""

    def __init__(self, run: Run, listener: Listener | None, every: float = 1.0):
        self.run, self.listener, self.every = run, listener, every
        self._last, self._last_eval = 0.0, None

    def __call__(self, p: Progress) -> None:
        now = time.time()
        # Every evaluation is written, even one that repeats the last accuracy.
        at = p.metrics.get("eval_step")
        if now - self._last >= self.every or p.step >= p.total or at != self._last_eval:
            self.run.log("progress", **p.as_event())
            self._last, self._last_eval = now, at
        if self.listener is not None:
            self.listener(p)


# ---------------------------------------------------------------------------------------
# Stages
# ---------------------------------------------------------------------------------------
def stage_teacher(run: Run, cfg: RunConfig, task: TaskData, report: _Reporter) -> dict:
    import shutil

    from .files import write_text_atomic
    from .teacher import (
        evaluate_teacher,
        fine_tune,
        fingerprint,
        load_teacher,
        resolve_model_ref,
        save_teacher,
    )
    from .transfer import link_or_copy

    # The teacher folder may hold hard links to another run's teacher or the cache's (a
    # cached fine-tune, a reused teacher): every write below replaces a file by renaming a
    # new one over it (save_teacher, write_text_atomic), so none reaches the other names.

    out = run.file(R.TEACHER_DIR)
    tc = cfg.teacher
    if tc.pretrained:
        teacher = load_teacher(tc.pretrained, task, cfg.device, tc.max_length)
        save_teacher(teacher, out)
        metrics = {**evaluate_teacher(teacher, task, tc.eval_batch_size),
                   "source": tc.pretrained, "parameters": teacher.num_parameters(),
                   "fine_tuned_here": False}
        metrics["fingerprint"] = fingerprint(out)
        write_text_atomic(out / "teacher.json", json.dumps(metrics, indent=1))
        return metrics
    # Fine-tuning is cached by what goes into it: backbone, data, settings, seed.
    ref = resolve_model_ref(tc.backbone)
    backbone_id = fingerprint(ref) if Path(ref).exists() else ref
    # Inference-only settings do not change the fine-tuned weights, so they stay out of it.
    training = {k: v for k, v in tc.to_dict().items()
                if k not in ("eval_batch_size", "label_engine", "pretrained")}
    key = hashlib.sha256(json.dumps({"backbone": backbone_id, "data": task.fingerprint(),
                                     "teacher": training, "seed": cfg.seed},
                                    sort_keys=True).encode()).hexdigest()[:16]
    cached = cache_dir_for(run) / f"teacher-{key}"
    if (cached / "teacher.json").exists():
        for f in cached.iterdir():
            link_or_copy(f, out / f.name)
        metrics = json.loads((out / "teacher.json").read_text())
        return {**metrics, "cached": True}
    metrics = fine_tune(task, tc, out, seed=cfg.seed, device=cfg.device, on_step=report,
                        should_stop=run.cancel_requested)
    if not metrics.get("cancelled"):
        # Filled beside the cache and renamed into place whole: a cache folder holding
        # teacher.json is complete.
        tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        for f in out.iterdir():
            if f.is_file() and not f.name.startswith("."):
                link_or_copy(f, tmp / f.name)
        if cached.exists() and not (cached / "teacher.json").exists():
            shutil.rmtree(cached)  # an incomplete one (from before this was atomic)
        try:
            os.rename(tmp, cached)
        except OSError:  # another run cached the same fine-tune meanwhile: keep that one
            shutil.rmtree(tmp, ignore_errors=True)
    return {**metrics, "cached": False}


def _load_run_teacher(run: Run, cfg: RunConfig, task: TaskData | None = None):
    from .teacher import load_teacher

    path = run.file(R.TEACHER_DIR)
    if not (path / "config.json").exists():
        raise RuntimeError("this run has no teacher yet: run the teacher stage first")
    return load_teacher(str(path), task, cfg.device, cfg.teacher.max_length)


def use_label_engine(run: Run, teacher, engine: str, teacher_fp: str) -> None:
    """Point ``teacher`` at the labelling ``engine`` (TeacherConfig.label_engine); the ONNX
    graphs (fp32, and int8 for "onnx-int8") live in the run's cache folder."""
    if engine in ("onnx", "onnx-int8") or (engine == "auto" and teacher.device.type == "cpu"):
        cache = cache_dir_for(run)
        cache.mkdir(parents=True, exist_ok=True)
        teacher.use_onnx(cache / f"teacher-{teacher_fp}.onnx", int8=engine == "onnx-int8")


def stage_augment(run: Run, cfg: RunConfig, task: TaskData, report: _Reporter) -> dict:
    from .teacher import fingerprint
    from .transfer import build_transfer_set

    teacher = _load_run_teacher(run, cfg, task)
    teacher_fp = fingerprint(run.file(R.TEACHER_DIR))
    use_label_engine(run, teacher, cfg.teacher.label_engine, teacher_fp)
    return build_transfer_set(
        task, teacher, teacher_fp, cfg.augment,
        run.file(R.TRANSFER_FILE), seed=cfg.seed, batch_size=cfg.teacher.eval_batch_size,
        cache_dir=cache_dir_for(run), on_step=report, should_stop=run.cancel_requested)


def _student_jobs(cfg: RunConfig, task: TaskData, full, variants: Collection[str] | None
                  ) -> list[tuple]:
    """(folder, label, mode, data, training config, family) of each student to train."""
    from .families import REGISTRY
    from .train import TrainSet

    sc = cfg.student
    ids, labels, logits = full.ids, full.labels, full.teacher_logits
    orig = np.arange(len(task.train))  # the transfer set starts with the originals
    # The students that see the originals only may train for their own number of epochs.
    no_aug = sc if sc.no_aug_epochs is None else dataclasses.replace(sc, epochs=sc.no_aug_epochs)
    bilstm = REGISTRY["bilstm"]
    jobs: list[tuple] = [("distilled", bilstm.label, "distill", full, sc, bilstm)]
    if sc.train_soft_no_aug:
        jobs.append(("distilled-noaug", STUDENT_LABELS["distilled-noaug"], "distill",
                     TrainSet([ids[i] for i in orig], labels[orig], logits[orig]), no_aug,
                     bilstm))
    if sc.train_baseline:
        jobs.append(("baseline", STUDENT_LABELS["baseline"], "baseline",
                     TrainSet(ids, labels, None), no_aug, bilstm))
    for fam in (REGISTRY[f] for f in sc.families if f != "bilstm"):
        n = fam.max_rows(cfg)
        data = full if n is None or n >= len(ids) else TrainSet(ids[:n], labels[:n], logits[:n])
        jobs.append((fam.variant, fam.label, "distill", data, fam.train_config(cfg), fam))
    if variants is None:
        return jobs
    missing = set(variants) - {j[0] for j in jobs}
    if missing:
        raise ValueError(f"this run's config trains no student {', '.join(sorted(missing))}; "
                         f"it trains {', '.join(j[0] for j in jobs)}")
    return [j for j in jobs if j[0] in variants]


def stage_student(run: Run, cfg: RunConfig, task: TaskData, report: _Reporter,
                  variants: Collection[str] | None = None) -> dict:
    """Train the run's students. ``variants`` (student folder names, e.g. "static") trains
    those alone, keeping the others and leaving the baselines out."""
    from .families import family_rows
    from .student import StudentVocab, num_parameters, save_student
    from .train import Hooks, TrainSet, agreed, train_student
    from .transfer import read_transfer_set

    if not run.file(R.TRANSFER_FILE).exists():
        raise RuntimeError("this run has no transfer set yet: run the augment stage first")
    sc = cfg.student
    teacher = _load_run_teacher(run, cfg, task)
    texts, labels, logits = read_transfer_set(run.file(R.TRANSFER_FILE))
    vocab = StudentVocab.build(teacher.tokenizer, texts, sc.max_length)
    ids = vocab.encode_ragged(teacher.tokenizer, texts, sc.max_length)
    val_ids = vocab.encode_ragged(teacher.tokenizer, task.validation.texts, sc.max_length)
    jobs = _student_jobs(cfg, task, TrainSet(ids, labels, logits), variants)
    seed = cfg.seed if sc.seed is None else sc.seed
    # Under a launcher every process trains (data-parallel); only the main one writes files
    # and events, and every cancel check is agreed on by all processes (train.agreed).
    main = R.is_main_process()
    results = {}
    for name, label, mode, data, vc, fam in jobs:
        if agreed(run.cancel_requested()):
            break
        fvocab, data, fval_ids = family_rows(fam, cfg, vocab, teacher.tokenizer, data,
                                             val_ids, task.validation.texts)
        model = fam.build(cfg, fvocab, task.num_labels, teacher, seed, data.ids)
        out_dir = run.file(f"{R.STUDENTS_DIR}/{name}")
        meta = {"variant": name, "family": fam.name, "label": label, "mode": mode,
                "params": num_parameters(model), "config": vc.to_dict(),
                "teacher_tokenizer": str(run.file(R.TEACHER_DIR))}

        def on_best(net, best, out_dir=out_dir, meta=meta, vocab=fvocab):
            save_student(net, vocab, task.label_names, out_dir, {**meta, "best": best})

        run.log("student_started", variant=name, params=meta["params"],
                train_examples=len(data.ids))
        hist = train_student(model, data, TrainSet(fval_ids, task.validation.labels, None), vc,
                             mode=mode, seed=seed, device=cfg.device,
                             hooks=Hooks(f"student:{name}", report, run.cancel_requested,
                                         on_best))
        if main:
            save_student(model, fvocab, task.label_names, out_dir,
                         {**meta, "best": hist["best"], "history": hist["history"]})
        results[name] = {"val_accuracy": hist["best"]["val_accuracy"], "params": meta["params"],
                         "steps": hist["steps"], "early_stopped": hist["early_stopped"],
                         "cancelled": hist["cancelled"], "device": hist["device"],
                         "precision": hist["precision"], "processes": hist["processes"]}
        run.log("student_finished", variant=name, **results[name])
    if agreed(run.cancel_requested()):
        raise StopRequested("cancelled during student training; checkpoints saved so far "
                            "are kept")
    if main and variants is None:
        from .baselines import train_baselines

        results.update(train_baselines(run, cfg, task, seed))
    return {"students": results, "vocab_size": len(vocab)}


def stage_quantize(run: Run, cfg: RunConfig, task: TaskData, report: _Reporter) -> dict:
    import torch

    from .compare import load_students
    from .families import REGISTRY
    from .quantize import (
        check_quantized,
        export_student,
        export_teacher,
        quantize_int8,
        run_student_onnx,
        session,
    )

    students = load_students(run.path)
    if not students:
        raise RuntimeError("this run has no trained student yet: run the student stage first")
    teacher = _load_run_teacher(run, cfg, task)
    onnx_dir = run.file(R.ONNX_DIR)
    sample = task.validation.texts[:256]
    out: dict = {}
    progress = Progress("quantize", total=len(students) + int(cfg.quantize.teacher))
    for k, (name, (model, vocab, meta)) in enumerate(students.items()):
        fp32 = export_student(model, onnx_dir / f"{name}.onnx", cfg.quantize.opset,
                              cfg.student.max_length)
        fam = REGISTRY[meta["arch"].get("family", "bilstm")]
        int8 = quantize_int8(fp32, onnx_dir / f"{name}.int8.onnx", op_types=fam.int8_op_types)
        ops = check_quantized(int8, fam.int8_ops)
        ids = vocab.encode(teacher.tokenizer, sample, cfg.student.max_length)
        with torch.no_grad():
            ref = model(torch.from_numpy(ids)).numpy()
        y32 = run_student_onnx(session(fp32), ids)
        y8 = run_student_onnx(session(int8), ids)
        out[name] = {
            "fp32_mb": fp32.stat().st_size / 1e6, "int8_mb": int8.stat().st_size / 1e6,
            "size_ratio": fp32.stat().st_size / int8.stat().st_size,
            "max_abs_diff_fp32_vs_torch": float(np.abs(y32 - ref).max()),
            "int8_agreement_with_fp32": float((y8.argmax(-1) == y32.argmax(-1)).mean()),
            "int8_ops": {k2: v for k2, v in ops.items() if k2 in (
                "DynamicQuantizeLSTM", "MatMulInteger", "DynamicQuantizeMatMul",
                "DequantizeLinear")},
        }
        progress.update(k + 1, model=name)
        report(progress)
    if cfg.quantize.teacher:
        fp32 = export_teacher(teacher.model, onnx_dir / "teacher.onnx", cfg.quantize.opset)
        int8 = quantize_int8(fp32, onnx_dir / "teacher.int8.onnx")
        ops = check_quantized(int8, expect=("MatMulInteger",))
        out["teacher"] = {"fp32_mb": fp32.stat().st_size / 1e6,
                          "int8_mb": int8.stat().st_size / 1e6,
                          "int8_ops": {k: v for k, v in ops.items() if "Integer" in k}}
        fp32.unlink()  # only the int8 teacher is compared; the fp32 copy is 90 MB of nothing
        progress.update(progress.total, model="teacher")
        report(progress)
    return out


def _predictors(run: Run, cfg: RunConfig, teacher, students: dict) -> list:
    """The models the compare stage measures: predictors, or for ONNX Runtime rows the
    (picklable) recipe of one (see CompareConfig.isolate_onnx)."""
    from .compare import (
        onnx_student_predictor,
        onnx_teacher_predictor_from,
        student_predictor,
        teacher_predictor,
    )
    from .families import REGISTRY

    cc = cfg.compare
    tok, L = teacher.tokenizer, cfg.student.max_length
    preds: list = [teacher_predictor(teacher, run.file(R.TEACHER_DIR))]
    if run.file(f"{R.ONNX_DIR}/teacher.int8.onnx").exists():
        preds.append(partial(onnx_teacher_predictor_from,
                             run.file(f"{R.ONNX_DIR}/teacher.int8.onnx"), tok,
                             teacher.max_length, teacher.num_parameters(), cc.threads))
    fams = [f for f in REGISTRY.values() if f.variant in students]
    for name in ("baseline", "distilled-noaug", *(f.variant for f in fams)):
        if name not in students:
            continue
        p = student_predictor(students[name][2]["label"], run.file(f"{R.STUDENTS_DIR}/{name}"),
                              tok, L)
        p.kind = f"student:{name}"
        preds.append(p)
    onnx_rows = [("distilled", ".onnx", "student-onnx", "student ONNX fp32")] * (
        "distilled" in students)
    onnx_rows += [(f.variant, ".int8.onnx", f.int8_kind, f.int8_label) for f in fams]
    for name, suffix, kind, label in onnx_rows:
        _, vocab, meta = students[name]
        path = run.file(f"{R.ONNX_DIR}/{name}{suffix}")
        if path.exists():
            preds.append(partial(onnx_student_predictor, label, kind, path, vocab, tok, L,
                                 meta["params"], cc.threads))
    from .baselines import BASELINES, trained_baselines

    for name, path in trained_baselines(run.file(R.STUDENTS_DIR)).items():
        preds.append(partial(BASELINES[name][1], path))
    return preds


def stage_compare(run: Run, cfg: RunConfig, task: TaskData, report: _Reporter) -> dict:
    import torch

    from .compare import (
        Predictor,
        Timing,
        add_ratios,
        figures,
        load_students,
        markdown_table,
        measure,
        measure_built,
    )

    cc = cfg.compare
    if cc.threads:
        torch.set_num_threads(cc.threads)
    teacher = _load_run_teacher(run, cfg, task)
    students = load_students(run.path)
    if not students:
        raise RuntimeError("this run has no trained student yet: run the student stage first")
    preds = _predictors(run, cfg, teacher, students)
    texts, labels = task.validation.texts, task.validation.labels
    rows, teacher_pred = [], None
    progress = Progress("compare", total=len(preds))
    how = Timing.from_config(cc, cfg.seed)
    for k, p in enumerate(preds):
        # Report before each model too: the teacher's row alone can take a minute.
        progress.update(k, phase=f"measuring model {k + 1} of {len(preds)}")
        report(progress)
        if isinstance(p, Predictor):
            row = measure(p, texts, labels, teacher_pred, how)
        else:
            row = measure_built(p, texts, labels, teacher_pred, how, isolate=cc.isolate_onnx)
        if row["kind"] == "teacher":
            teacher_pred = row["_pred"]
            row["agreement_with_teacher"] = 1.0
        rows.append(row)
        progress.update(k + 1, model=row["name"])
        report(progress)
    logits = {r["kind"]: r.get("_logits") for r in rows}
    if logits.get("teacher") is not None and logits.get("student:distilled") is not None:
        # The studio lists disagreements from these instead of running both models again.
        with atomic_path(run.file(R.PREDICTIONS)) as tmp:
            np.savez(tmp, teacher=logits["teacher"], student=logits["student:distilled"])
    rows = add_ratios(rows)
    results = {"run": run.id, "dataset": task.source, "validation_size": len(texts),
               "label_names": task.label_names, "rows": rows,
               "timing": {"what": "model call only, inputs tokenised beforehand (the end-to-end "
                                  "column adds the tokenising)",
                          "latency": f"batch 1, {rows[0]['latency_samples']} validation "
                                     f"sentences after {cc.warmup} warm-up calls",
                          "throughput": f"batch {cc.throughput_batch_size}, whole validation "
                                        "set in length buckets, median of up to "
                                        f"{cc.throughput_max_passes} passes",
                          "threads": (f"{cc.threads} per model" if cc.threads else
                                      "the faster of 1 and all cores, per model and batch "
                                      "size"),
                          "onnx_rows": "each in a fresh process" if cc.isolate_onnx
                          else "in this process, after the PyTorch rows"},
               "environment": environment(cc.threads)}
    (run.file(R.RESULTS_JSON)).write_text(json.dumps(results, indent=1))
    md = markdown_table(rows)
    run.file(R.RESULTS_MD).write_text(
        f"# Results: {run.id}\n\nValidation set: {task.source} ({len(texts)} sentences). "
        f"Timing: {results['timing']['what']}; {results['timing']['latency']}; throughput at "
        f"{results['timing']['throughput']}; ONNX Runtime rows "
        f"{results['timing']['onnx_rows']}. Machine: "
        f"{cpu_description(results['environment'])}, {results['environment']['threads']} "
        f"threads.\n\n{md}")
    for name, fig in figures(rows).items():
        fig.write_html(run.file(f"{name}.html"), include_plotlyjs="directory")
    return {"rows": len(rows), "table": md}


STAGE_FUNCS = {"teacher": stage_teacher, "augment": stage_augment, "student": stage_student,
               "quantize": stage_quantize, "compare": stage_compare}


# ---------------------------------------------------------------------------------------
# Running stages with status and events
# ---------------------------------------------------------------------------------------
USER_ERRORS = (DataError, ValueError, FileNotFoundError)


def run_stages(run: Run, stages: list[str] | None = None, listener: Listener | None = None,
               variants: Collection[str] | None = None) -> str:
    """Run ``stages`` (default: all) in order; returns the final status. ``variants``: the
    student stage trains only these students (:func:`stage_student`)."""
    from .train import agreed, distributed_state

    stages = list(stages or R.STAGES)
    for s in stages:
        if s not in STAGE_FUNCS:
            raise ValueError(f"unknown stage {s!r}; stages: {', '.join(R.STAGES)}")
    _, n_proc = R.process_rank()
    if n_proc > 1 and stages != ["student"]:
        raise ValueError(f"under {n_proc} processes only the student stage runs (got "
                         f"{', '.join(stages)}); run the other stages in one process")
    cfg = run.config()
    # Only the main process writes (Run.set_status/log/clear_cancel are no-ops elsewhere);
    # under a launcher the processes join their group here and wait until the main one has
    # cleared an old cancel flag, so that no process sees it.
    state = distributed_state(cfg.device) if n_proc > 1 else None
    run.clear_cancel()
    if state is not None:
        state.wait_for_everyone()
    run.set_status("running", stage=stages[0], message="loading data", pid=os.getpid(),
                   started=time.time())
    run.log("run_started", stages=stages, pid=os.getpid())
    stage = stages[0]
    try:
        task = load_task(cfg.data, cfg.seed)
        run.log("data", source=task.source, train=len(task.train),
                validation=len(task.validation), label_names=task.label_names)
        report = _Reporter(run, listener)
        for stage in stages:
            if agreed(run.cancel_requested()):
                raise StopRequested(f"cancelled before the {stage} stage")
            run.set_status("running", stage=stage, message="")
            run.log("stage_started", stage=stage)
            t0 = time.time()
            extra = {"variants": variants} if stage == "student" and variants else {}
            metrics = STAGE_FUNCS[stage](run, cfg, task, report, **extra)
            run.log("stage_finished", stage=stage, seconds=round(time.time() - t0, 2),
                    metrics=metrics)
    except StopRequested as e:
        run.log("cancelled", stage=stage, message=str(e))
        run.set_status("cancelled", stage=stage, message=str(e))
        return "cancelled"
    except USER_ERRORS as e:
        run.log("error", stage=stage, message=str(e), traceback=traceback.format_exc())
        run.set_status("failed", stage=stage, message=str(e))
        return "failed"
    except Exception as e:  # noqa: BLE001 - any crash must end as a status, not vanish
        msg = f"{type(e).__name__}: {e}"
        run.log("error", stage=stage, message=msg, traceback=traceback.format_exc())
        run.set_status("failed", stage=stage, message=msg)
        return "failed"
    if agreed(run.cancel_requested()):
        run.set_status("cancelled", stage=stage, message="cancelled after the last stage")
        return "cancelled"
    run.set_status("done", stage=None, message=f"finished: {', '.join(stages)}")
    run.log("run_finished", stages=stages)
    return "done"
