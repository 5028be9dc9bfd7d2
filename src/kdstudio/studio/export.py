"""Export: a model card and a zip with everything needed to run the int8 student.

Both are written beside the runs (``<runs>/_exports/<run id>/``), never inside a run folder.
"""

from __future__ import annotations

import json
import threading
import zipfile
from importlib import resources
from pathlib import Path
from string import Template

from .. import runs as R
from ..files import atomic_path
from ..machine import cpu_description
from ..runs import Run
from .runviews import runs_root, teacher_metrics
from .tables import finished_results, ratio

EXPORTS_DIR = "_exports"


def model_card(run: Run) -> str:
    """A Markdown model card: what was distilled from what, on which data, measured how."""
    from ..compare import markdown_table

    res = finished_results(run)
    cfg = run.config()
    t = teacher_metrics(run) or {}
    sc, ac = cfg.student, cfg.augment
    rows = {r["kind"]: r for r in res["rows"]}
    s8, te = rows.get("student-int8"), rows.get("teacher")
    headline = ""
    if s8 and te:
        headline = (f"The int8 student reaches **{s8['accuracy']:.1%}** validation accuracy "
                    f"against the teacher's **{te['accuracy']:.1%}**, agrees with the teacher on "
                    f"{(s8.get('agreement_with_teacher') or 0):.1%} of validation sentences, is "
                    f"{ratio(s8.get('size_ratio'))} smaller on disk and "
                    f"{ratio(s8.get('speedup_b1'))} faster at batch 1 on this machine.\n\n")
    env, timing = res.get("environment", {}), res.get("timing", {})
    limit, labelled = cfg.data.max_train_examples, cfg.data.max_labelled_examples
    return _template("model_card.md").substitute(
        teacher_src=_model_name(cfg.teacher.pretrained or cfg.teacher.backbone),
        run_id=run.id,
        headline=headline,
        how=("loaded already fine-tuned" if cfg.teacher.pretrained
             else f"fine-tuned here for {cfg.teacher.epochs:g} epoch(s)"),
        teacher_params=f"{t.get('parameters', 0) / 1e6:.1f}",
        teacher_accuracy=f"{t.get('val_accuracy', float('nan')):.1%}",
        hidden_size=sc.hidden_size, fc_size=sc.fc_size,
        embeddings=("embeddings initialised from the teacher’s input embeddings"
                    if sc.embedding_init == "teacher" else "randomly initialised embeddings"),
        epochs=sc.epochs, loss=sc.loss, alpha=f"{sc.alpha:g}",
        temperature=f"{sc.temperature:g}", learning_rate=f"{sc.learning_rate:g}",
        batch_size=sc.batch_size, n_iter=ac.n_iter, p_mask=f"{ac.p_mask:g}",
        p_pos=f"{ac.p_pos:g}", p_ng=f"{ac.p_ng:g}", dataset=res.get("dataset"),
        label_list=", ".join(res.get("label_names", [])),
        validation_size=res.get("validation_size"),
        train_limit=(f"; at most {limit:,} training sentences" if limit else "")
        + (f"; gold labels for {labelled:,} training sentences, the teacher's for the rest"
           if labelled else ""),
        table=markdown_table(res["rows"]), timing_what=timing.get("what", ""),
        timing_latency=timing.get("latency", ""),
        timing_throughput=timing.get("throughput", ""), cpu=cpu_description(env),
        threads=env.get("threads", "?"), torch=env.get("torch", "?"),
        onnxruntime=env.get("onnxruntime", "?"), max_length=sc.max_length,
        labels=json.dumps(res.get("label_names", [])))


def _model_name(ref: str) -> str:
    """A model reference as a card shows it: no server paths, only names."""
    p = Path(ref)
    if not p.is_absolute() and not ref.startswith("."):
        return ref  # a Hub id or the packaged backbone's name
    if p.name == R.TEACHER_DIR and (p.parent / "config.yaml").exists():
        return f"the teacher of run {p.parent.name}"
    return p.name


def _template(name: str) -> Template:
    return Template(resources.files("kdstudio").joinpath("assets", name)
                    .read_text(encoding="utf-8"))


_EXPORT_LOCK = threading.Lock()


def export_files(run: Run, root: Path | None = None) -> dict[str, Path | None]:
    """Files to download for a finished run: int8 and fp32 ONNX students (and the int8 graph
    of each other family the run trained), results.json, the model card, and a zip with
    everything needed to run the int8 students. The card and the
    zip are written to ``<runs>/_exports/<run id>/`` (the run folder stays as the run left it).
    """
    res_file = run.file(R.RESULTS_JSON)
    finished_results(run)
    out = (root or runs_root()) / EXPORTS_DIR / run.id
    stamp = str(res_file.stat().st_mtime_ns)
    card, bundle = out / "MODEL_CARD.md", out / f"{run.id}-student.zip"
    with _EXPORT_LOCK:  # two browsers opening the same run must not write the zip at once
        out.mkdir(parents=True, exist_ok=True)
        if not ((out / ".stamp").exists() and (out / ".stamp").read_text() == stamp
                and card.exists() and bundle.exists()):
            card.write_text(model_card(run), encoding="utf-8")
            _write_bundle(run, card, bundle)
            (out / ".stamp").write_text(stamp)
    onnx = run.file(R.ONNX_DIR)
    return {"int8": _existing(onnx / "distilled.int8.onnx"),
            "fp32": _existing(onnx / "distilled.onnx"),
            "static_int8": _existing(onnx / "static.int8.onnx"),
            "transformer_int8": _existing(onnx / "transformer.int8.onnx"), "results": res_file,
            "card": card, "bundle": bundle}


def _existing(p: Path) -> Path | None:
    return p if p.exists() else None


def _write_bundle(run: Run, card: Path, bundle: Path) -> None:
    teacher = run.file(R.TEACHER_DIR)
    with atomic_path(bundle) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(card, "README.md")
        # Every family reads the same vocabulary (vocab.json) through the same tokenizer.
        for name in ("distilled.int8.onnx", "distilled.onnx", "static.int8.onnx",
                     "transformer.int8.onnx"):
            if run.file(R.ONNX_DIR).joinpath(name).exists():
                z.write(run.file(R.ONNX_DIR) / name, name)
        sdir = run.file(R.STUDENTS_DIR) / "distilled"
        for name in ("vocab.json", "student.json"):
            if (sdir / name).exists():
                z.write(sdir / name, name)
        for f in sorted(teacher.iterdir()):
            if f.is_file() and (f.name.startswith(("tokenizer", "special_tokens"))
                                or f.name in ("vocab.txt",)):
                z.write(f, f"tokenizer/{f.name}")
        z.write(run.file(R.RESULTS_JSON), "results.json")
