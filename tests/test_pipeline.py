import json

import numpy as np
import pandas as pd
import pytest

from kdstudio import runs as R
from kdstudio.pipeline import run_stages
from kdstudio.runs import Run


def _finished(run, stage):
    return next(e for e in run.events("stage_finished") if e["stage"] == stage)["metrics"]


def _last_finished(run, stage):
    return [e for e in run.events("stage_finished") if e["stage"] == stage][-1]["metrics"]


def _rows(run) -> dict[str, dict]:
    return {r["kind"]: r for r in run.results()["rows"]}


def test_shared_run_learns(finished_run):
    """The shared run is far from chance (0.5 on the balanced tiny data): every check that
    reads it sees models that predict, so a broken model cannot pass them by guessing."""
    teacher = json.loads((finished_run.path / "teacher" / "teacher.json").read_text())
    assert teacher["val_accuracy"] >= 0.9, teacher["history"]
    rows = _rows(finished_run)
    assert rows["teacher"]["accuracy"] == teacher["val_accuracy"]
    assert rows["student:distilled"]["accuracy"] >= 0.8, rows["student:distilled"]
    assert rows["student:distilled"]["agreement_with_teacher"] >= 0.8
    students = _finished(finished_run, "student")["students"]
    assert students["distilled"]["val_accuracy"] >= 0.8, students


def test_end_to_end_writes_every_comparison_row(finished_run):
    res = finished_run.results()
    kinds = [r["kind"] for r in res["rows"]]
    assert kinds == ["teacher", "teacher-int8", "student:baseline", "student:distilled-noaug",
                     "student:distilled", "student:static", "student:transformer",
                     "student-onnx", "student-int8", "static-int8", "transformer-int8",
                     "baseline:fasttext", "baseline:model2vec"]
    rows = _rows(finished_run)
    for r in res["rows"]:
        # Chance is 0.5; the weakest model here (the hard-label baseline) gets 0.875.
        assert r["accuracy"] >= 0.75, r
        assert r["agreement_with_teacher"] >= 0.75, r
        assert r["params"] > 0 and r["size_mb"] > 0
        assert r["latency_b1_ms_p50"] > 0 and r["throughput_per_s"] > 0
        assert r["latency_b1_ms_p95"] >= r["latency_b1_ms_p50"]
        assert r["latency_b1_e2e_ms_p50"] > 0
        assert "speedup_b1" in r and "size_ratio" in r
    teacher = res["rows"][0]
    assert teacher["agreement_with_teacher"] == 1.0 and teacher["speedup_b1"] == 1.0
    int8, fp32 = rows["student-int8"], rows["student-onnx"]
    assert int8["size_mb"] < 0.6 * fp32["size_mb"]  # tiny model: graph overhead weighs in
    # The ONNX fp32 student is the PyTorch one exported: the same answers on every sentence.
    for key in ("accuracy", "agreement_with_teacher"):
        assert fp32[key] == rows["student:distilled"][key]
    # int8 may flip a near-tie or two: at most 2 of the 40 validation sentences.
    assert abs(int8["accuracy"] - fp32["accuracy"]) <= 0.05
    assert abs(int8["agreement_with_teacher"] - fp32["agreement_with_teacher"]) <= 0.05
    assert abs(rows["teacher-int8"]["accuracy"] - teacher["accuracy"]) <= 0.05
    assert rows["teacher-int8"]["agreement_with_teacher"] >= 0.95
    for f in ("results.md", "accuracy_latency.html", "size.html"):
        assert (finished_run.path / f).exists()
    assert "student ONNX int8" in (finished_run.path / "results.md").read_text()
    assert finished_run.status()["status"] == "done"


def test_quantize_stage_checks_parity(finished_run):
    q = _finished(finished_run, "quantize")
    for name in ("distilled", "baseline", "distilled-noaug"):
        assert q[name]["max_abs_diff_fp32_vs_torch"] <= 1e-4
        assert q[name]["int8_agreement_with_fp32"] >= 0.95  # at most 2 of 40 flipped
        assert q[name]["int8_ops"]["DynamicQuantizeLSTM"] == 2  # forward and reverse
    assert q["teacher"]["int8_ops"]["MatMulInteger"] > 0
    # The static student: its table is gathered from int8 rows, and its first layer
    # multiplies the pooled int8 row.
    assert q["static"]["max_abs_diff_fp32_vs_torch"] <= 1e-4
    assert q["static"]["int8_agreement_with_fp32"] >= 0.95
    assert q["static"]["int8_ops"]["MatMulInteger"] == 1
    assert "DequantizeLinear" not in q["static"]["int8_ops"]
    assert "DynamicQuantizeLSTM" not in q["static"]["int8_ops"]
    assert q["transformer"]["max_abs_diff_fp32_vs_torch"] <= 1e-4
    assert q["transformer"]["int8_agreement_with_fp32"] >= 0.95
    assert q["transformer"]["int8_ops"]["MatMulInteger"] > 0


def test_every_family_and_the_baselines_learn(finished_run):
    """The static student trains on the soft labels of the whole transfer set; fastText and
    Model2Vec on the hard labels of the originals. All predict far above chance (0.5)."""
    students = _finished(finished_run, "student")["students"]
    rows = _rows(finished_run)
    assert rows["student:static"]["accuracy"] >= 0.8, rows["student:static"]
    assert rows["static-int8"]["accuracy"] >= 0.8
    assert rows["student:transformer"]["accuracy"] >= 0.8, rows["student:transformer"]
    assert rows["transformer-int8"]["accuracy"] >= 0.8
    assert students["static"]["steps"] > students["baseline"]["steps"]  # augmented rows too
    assert students["fasttext"]["train_examples"] == 160  # the labelled training rows
    assert rows["baseline:fasttext"]["accuracy"] == students["fasttext"]["val_accuracy"] >= 0.75
    assert rows["baseline:fasttext"]["backend"] == "fasttext"
    assert students["model2vec"]["train_examples"] == 160
    assert rows["baseline:model2vec"]["accuracy"] == students["model2vec"]["val_accuracy"] >= 0.75
    assert rows["baseline:model2vec"]["backend"] == "model2vec"
    meta = json.loads((finished_run.path / R.STUDENTS_DIR / "static" / "student.json").read_text())
    assert meta["family"] == "static" and meta["arch"]["family"] == "static"


def test_onnx_students_predict_what_the_pytorch_student_predicts(finished_run):
    """On the validation set, read back from the run folder: fp32 ONNX gives the PyTorch
    student's class on every sentence, int8 on all but at most 2 of 40, and neither is a
    constant guess."""
    import torch
    from transformers import AutoTokenizer

    from kdstudio.compare import load_students
    from kdstudio.data import load_task
    from kdstudio.quantize import run_student_onnx, session

    cfg = finished_run.config()
    task = load_task(cfg.data, cfg.seed)
    tok = AutoTokenizer.from_pretrained(finished_run.path / R.TEACHER_DIR)
    labels = task.validation.labels
    for name, (model, vocab, _) in load_students(finished_run.path).items():
        ids = vocab.encode(tok, task.validation.texts, cfg.student.max_length)
        with torch.no_grad():
            ref = model.eval()(torch.from_numpy(ids)).numpy().argmax(-1)
        fp32 = run_student_onnx(session(finished_run.path / R.ONNX_DIR / f"{name}.onnx"), ids)
        int8 = run_student_onnx(
            session(finished_run.path / R.ONNX_DIR / f"{name}.int8.onnx"), ids)
        assert (fp32.argmax(-1) == ref).all(), name
        assert (int8.argmax(-1) == ref).mean() >= 0.95, name
        assert set(ref.tolist()) == {0, 1}, name  # both classes predicted
        assert (ref == labels).mean() >= 0.75, name


def test_transfer_set_holds_originals_and_augmented_copies(finished_run):
    df = pd.read_parquet(finished_run.path / R.TRANSFER_FILE)
    assert list(df.columns[:3]) == ["text", "source", "label"]
    assert (df["label"] >= 0).sum() == 160
    assert (df["label"] < 0).sum() > 0
    assert df["text"].is_unique
    assert {"logit_0", "logit_1"} <= set(df.columns)
    ev = _finished(finished_run, "augment")
    assert ev["sentences_per_second"] > 0


def test_events_record_stages_and_progress(finished_run):
    kinds = {e["kind"] for e in finished_run.events()}
    assert {"run_started", "stage_started", "progress", "stage_finished",
            "run_finished"} <= kinds
    prog = finished_run.events("progress")
    assert all({"stage", "step", "total", "elapsed", "eta"} <= set(p) for p in prog)
    assert any("val_accuracy" in p for p in prog)


def test_second_run_reuses_cached_teacher_and_transfer_set(tiny_config, tmp_path):
    first = Run.create(tiny_config, tmp_path)
    assert run_stages(first, ["teacher", "augment"]) == "done"
    assert _finished(first, "augment")["cached"] is False
    second = Run.create(tiny_config, tmp_path)
    assert run_stages(second, ["teacher", "augment"]) == "done"
    assert _finished(second, "teacher")["cached"] is True
    assert _finished(second, "augment")["cached"] is True
    a = pd.read_parquet(first.path / R.TRANSFER_FILE)
    b = pd.read_parquet(second.path / R.TRANSFER_FILE)
    pd.testing.assert_frame_equal(a, b)
    # different augmentation settings → a new transfer set
    third = Run.create(tiny_config.with_overrides({"augment.p_mask": 0.3}), tmp_path)
    assert run_stages(third, ["teacher", "augment"]) == "done"
    assert _finished(third, "augment")["cached"] is False


def test_int8_labels_are_a_transfer_set_of_their_own(tiny_config, tmp_path):
    fp32 = Run.create(tiny_config.with_overrides({"teacher.label_engine": "onnx"}), tmp_path)
    assert run_stages(fp32, ["teacher", "augment"]) == "done"
    assert _finished(fp32, "augment")["labeller"] == "onnx"
    int8 = Run.create(tiny_config.with_overrides({"teacher.label_engine": "onnx-int8"}),
                      tmp_path)
    assert run_stages(int8, ["teacher", "augment"]) == "done"
    got = _finished(int8, "augment")
    # Same sentences, labelled by the quantized teacher: not taken from the fp32 cache.
    assert got["cached"] is False and got["labeller"] == "onnx-int8"
    assert _finished(int8, "teacher")["cached"] is True  # the fine-tune is shared
    a = pd.read_parquet(fp32.path / R.TRANSFER_FILE)
    b = pd.read_parquet(int8.path / R.TRANSFER_FILE)
    assert a["text"].tolist() == b["text"].tolist()
    cols = [c for c in a.columns if c.startswith("logit_")]
    diff = (a[cols] - b[cols]).abs().to_numpy()
    assert 0 < diff.max() < 0.5
    again = Run.create(tiny_config.with_overrides({"teacher.label_engine": "onnx-int8"}),
                       tmp_path)
    assert run_stages(again, ["teacher", "augment"]) == "done"
    assert _finished(again, "augment")["cached"] is True


def test_students_without_augmentation_get_their_own_epochs(tiny_config, tmp_path):
    import math

    cfg = tiny_config.with_overrides({"student.epochs": 1, "student.no_aug_epochs": 3})
    run = Run.create(cfg, tmp_path)
    assert run_stages(run, ["teacher", "augment", "student"]) == "done"
    steps = {e["variant"]: e["steps"] for e in run.events("student_finished")}
    df = pd.read_parquet(run.path / R.TRANSFER_FILE)
    bs = cfg.student.batch_size
    assert steps["distilled"] == math.ceil(len(df) / bs)  # 1 epoch of the transfer set
    per_epoch = math.ceil(int((df["label"] >= 0).sum()) / bs)
    assert steps["baseline"] == steps["distilled-noaug"] == 3 * per_epoch
    # Each student's saved config says how it was trained.
    saved = {v: json.loads((run.path / R.STUDENTS_DIR / v / "student.json").read_text())
             for v in steps}
    assert [saved[v]["config"]["epochs"] for v in ("distilled", "distilled-noaug",
                                                    "baseline")] == [1, 3, 3]


def test_a_student_the_config_does_not_train_is_refused_by_name(tiny_config, tmp_path):
    run = Run.create(tiny_config.with_overrides({"student.families": ["bilstm"]}), tmp_path)
    assert run_stages(run, ["teacher", "augment"]) == "done"
    assert run_stages(run, ["student"], variants=["static"]) == "failed"
    message = run.status()["message"]
    assert "trains no student static" in message and "distilled" in message
    assert not (run.path / R.STUDENTS_DIR / "distilled").exists()


def _cancel_after(run: Run, n: int) -> None:
    """Make ``run`` see a cancel request from its (n + 1)-th check on."""
    calls = {"n": 0}
    original = run.cancel_requested

    def cancel_requested():
        calls["n"] += 1
        return calls["n"] > n or original()

    run.cancel_requested = cancel_requested


def test_cancel_keeps_earlier_artifacts(tiny_config, tmp_path):
    run = Run.create(tiny_config.with_overrides({"student.epochs": 200}), tmp_path)
    assert run_stages(run, ["teacher", "augment"]) == "done"
    before = (run.path / R.TRANSFER_FILE).read_bytes()
    _cancel_after(run, 30)
    assert run_stages(run, ["student", "quantize"]) == "cancelled"
    st = run.status()
    assert st["status"] == "cancelled" and st["stage"] == "student"
    assert "cancelled" in st["message"]
    assert (run.path / R.TRANSFER_FILE).read_bytes() == before
    assert (run.path / "students" / "distilled" / "model.safetensors").exists()
    assert not (run.path / R.ONNX_DIR).exists()


def test_failed_stage_says_why_and_keeps_artifacts(tiny_config, tmp_path):
    run = Run.create(tiny_config, tmp_path)
    assert run_stages(run, ["quantize"]) == "failed"
    assert "no trained student yet" in run.status()["message"]
    assert run_stages(run, ["teacher"]) == "done"
    weights = (run.path / "teacher" / "model.safetensors").read_bytes()
    cfg = run.config().with_overrides({"teacher.pretrained": "/no/such/dir"})
    cfg.save(run.path / "config.yaml")
    assert run_stages(run, ["teacher"]) == "failed"
    assert run.status()["message"] == "teacher path '/no/such/dir' does not exist"
    assert (run.path / "teacher" / "model.safetensors").read_bytes() == weights
    err = run.events("error")[-1]
    assert err["stage"] == "teacher" and "traceback" in err


def test_bad_data_fails_with_message(tiny_config, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\n" + "".join(f"t{i},x\n" for i in range(10)))
    run = Run.create(tiny_config.with_overrides({"data.dataset": str(bad)}), tmp_path)
    assert run_stages(run) == "failed"
    assert "single class" in run.status()["message"]


def test_load_pretrained_teacher(tiny_config, finished_run, tmp_path):
    cfg = tiny_config.with_overrides({"teacher.pretrained": str(finished_run.path / "teacher")})
    run = Run.create(cfg, tmp_path)
    assert run_stages(run, ["teacher"]) == "done"
    m = _finished(run, "teacher")
    first = json.loads((finished_run.path / "teacher" / "teacher.json").read_text())
    assert m["fine_tuned_here"] is False
    assert first["val_accuracy"] >= 0.9  # a teacher that predicts, not a constant guess
    assert m["val_accuracy"] == pytest.approx(first["val_accuracy"])
    # The run's saved copy predicts what the fine-tuned teacher predicts, sentence by sentence.
    from kdstudio.data import load_task
    from kdstudio.teacher import load_teacher

    task = load_task(cfg.data, cfg.seed)
    texts = task.validation.texts + ["good", "a dull film", "not bad at all", ""]
    a = load_teacher(str(finished_run.path / "teacher"), task).predict_logits(texts)
    b = load_teacher(str(run.path / "teacher"), task).predict_logits(texts)
    assert np.abs(a - b).max() < 1e-5
    assert (a.argmax(-1) == b.argmax(-1)).all()
    assert set(a.argmax(-1).tolist()) == {0, 1}


@pytest.mark.parametrize("isolate", [True, False])
def test_compare_times_onnx_rows_in_fresh_processes_when_asked(finished_run, tmp_path,
                                                               monkeypatch, isolate):
    import shutil

    from kdstudio import compare

    run = Run(shutil.copytree(finished_run.path, tmp_path / "run"))
    run.config().with_overrides({"compare.isolate_onnx": isolate}).save(
        run.path / "config.yaml")
    built = []

    def in_process(build, *args, **kwargs):  # the spawning itself: test_cli, test_compare
        p = build()
        built.append(p.kind)
        return compare.measure(p, *args, **kwargs)

    monkeypatch.setattr(compare, "measure_isolated", in_process)
    assert run_stages(run, ["compare"]) == "done"
    kinds = [r["kind"] for r in run.results()["rows"]]
    # Every row not run by PyTorch is built in a process of its own.
    onnx = [k for k in kinds if k in ("student-onnx", "student-int8", "teacher-int8",
                                      "static-int8", "transformer-int8", "baseline:fasttext",
                                      "baseline:model2vec")]
    assert "student-int8" in onnx
    assert built == (onnx if isolate else [])
    said = "each in a fresh process" if isolate else "in this process, after the PyTorch rows"
    assert run.results()["timing"]["onnx_rows"] == said
    assert f"ONNX Runtime rows {said}." in run.file(R.RESULTS_MD).read_text()


def _hashes(folder) -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_runs_never_change_another_runs_folder_or_the_cache(tiny_config, tmp_path):
    """A run's teacher files may be hard links to the cache's or another run's. Whatever it
    then does (re-fine-tune, cancelled, then the remaining stages again; load a teacher
    into a folder linked to it, as the studio's "reuse the teacher" does), the other run and
    every file the cache held stay byte for byte as they were."""
    import os

    from kdstudio.transfer import link_or_copy

    source = Run.create(tiny_config, tmp_path)
    assert run_stages(source, ["teacher", "augment"]) == "done"
    cache = tmp_path / "_cache"
    src_before, cache_before = _hashes(source.path), _hashes(cache)
    assert any(k.startswith("teacher-") for k in cache_before)

    def untouched(when: str) -> None:
        assert _hashes(source.path) == src_before, when
        now = _hashes(cache)
        assert {k: now.get(k) for k in cache_before} == cache_before, when

    # 1. The teacher comes from the pipeline's cache: hard links into _cache/teacher-<key>.
    reuser = Run.create(tiny_config, tmp_path)
    assert run_stages(reuser, ["teacher", "augment"]) == "done"
    assert _finished(reuser, "teacher")["cached"] is True
    weights = reuser.path / "teacher" / "model.safetensors"
    assert any(os.path.samefile(weights, p) for p in cache.glob("teacher-*/model.safetensors"))
    untouched("after a run that took its teacher from the cache")
    # ... then fine-tunes another teacher into that folder, is cancelled part way (after the
    # first epoch saved its weights and before the second ended) ...
    cfg = tiny_config.with_overrides({"teacher.epochs": 3})
    cfg.save(reuser.path / "config.yaml")
    _cancel_after(reuser, 15)  # in the second epoch
    assert run_stages(reuser, ["teacher", "augment", "student"]) == "cancelled"
    assert reuser.status()["status"] == "cancelled"
    teacher = _last_finished(reuser, "teacher")
    assert teacher["cancelled"] is True and 10 < teacher["steps"] < 30
    untouched("after a cancelled fine-tune over linked files")
    # ... and runs the remaining stages again.
    del reuser.cancel_requested  # the run's own check again
    assert run_stages(reuser, ["teacher", "augment", "student"]) == "done"
    assert _last_finished(reuser, "teacher")["cached"] is False
    untouched("after the stages ran again")

    # 2. teacher.pretrained names the other run's teacher folder, and this run's folder
    # holds links to its files (what the studio's start_distillation makes).
    borrower = Run.create(tiny_config.with_overrides(
        {"teacher.pretrained": str(source.path / "teacher")}), tmp_path)
    for f in (source.path / "teacher").iterdir():
        link_or_copy(f, borrower.path / "teacher" / f.name)
    assert run_stages(borrower, ["teacher", "augment"]) == "done"
    assert _finished(borrower, "teacher")["fine_tuned_here"] is False
    untouched("after a run loaded the other run's teacher over links to it")
    # and once more, now that its folder is its own
    assert run_stages(borrower, ["teacher"]) == "done"
    assert _last_finished(borrower, "teacher")["fine_tuned_here"] is False
    untouched("after the loading run ran its teacher stage again")



def test_every_evaluation_is_written_even_when_its_accuracy_repeats(tiny_config, tmp_path):
    from kdstudio.pipeline import _Reporter
    from kdstudio.progress import Progress

    run = Run.create(tiny_config, tmp_path)
    report = _Reporter(run, None, every=3600.0)  # no time-based writes in this test
    p = Progress("student:distilled", total=100)
    for step in (25, 50, 75):  # three evaluations with the same accuracy
        p.update(step, val_accuracy=0.8, eval_step=step)
        report(p)
        p.update(step + 1, loss=0.1)
        report(p)  # a plain training step between evaluations is throttled
    written = [e["step"] for e in run.events("progress")]
    assert written == [25, 50, 75]


def test_unlabelled_texts_reach_the_distilled_student_only(tiny_config, tmp_path):
    """The teacher fine-tunes and the baseline trains on the labelled rows; the teacher labels
    every text, so the distilled student also learns from the unlabelled ones."""
    import math

    cfg = tiny_config.with_overrides({"data.max_labelled_examples": 40, "augment.n_iter": 1,
                                      "student.epochs": 1, "student.train_soft_no_aug": True})
    run = Run.create(cfg, tmp_path)
    assert run_stages(run, ["teacher", "augment", "student"]) == "done"
    teacher = json.loads((run.path / "teacher" / "teacher.json").read_text())
    bs_t = cfg.teacher.batch_size
    assert teacher["steps"] == math.ceil(40 / bs_t) * int(cfg.teacher.epochs)
    df = pd.read_parquet(run.path / R.TRANSFER_FILE)
    n_train = 160
    originals = df.iloc[:n_train]
    assert (originals["label"] >= 0).sum() == 40 and (originals["label"] == -1).sum() == 120
    assert len(df) > n_train  # augmented copies of labelled and unlabelled texts alike
    steps = {e["variant"]: e["steps"] for e in run.events("student_finished")}
    bs = cfg.student.batch_size
    assert steps["baseline"] == math.ceil(40 / bs)
    assert steps["distilled-noaug"] == math.ceil(n_train / bs)
    assert steps["distilled"] == math.ceil(len(df) / bs)
