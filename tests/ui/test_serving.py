"""The studio's server-side helpers and tab handlers, in process (no server, no browser)."""

from __future__ import annotations

import contextlib
import io
import os
import re
import zipfile

import numpy as np
import pytest

from kdstudio import serving
from kdstudio.runs import Run

# Handlers called outside a request turn gr.Warning toasts into Python warnings.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:gradio.helpers")


def test_upload_past_the_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    monkeypatch.setenv("KDSTUDIO_MAX_UPLOAD_MB", "0.001")
    f = tmp_path / "big.csv"
    f.write_text("text,label\n" + "a fine film,1\n" * 200)
    with pytest.raises(serving.UserInputError, match="the limit is 0 MB"):
        serving.store_upload(f, tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_stored_upload_is_content_addressed_and_idempotent(tmp_path):
    f = tmp_path / "my data.csv"
    f.write_text("text,label\nfine,1\nbad,0\n")
    a = serving.store_upload(f, tmp_path / "runs")
    assert a.name == "my_data.csv" and a.parent.parent == tmp_path / "runs" / "_uploads"
    assert serving.store_upload(f, tmp_path / "runs") == a
    assert serving.store_upload(a, tmp_path / "runs") == a


def test_snapshot_reads_stages_and_curves(finished_run):
    s = serving.snapshot(finished_run)
    assert s.status == "done" and [st for _, st in s.stages] == ["done"] * 5
    c = s.curves["student:distilled"]
    assert c["loss"] and len(c["steps"]) == len(c["loss"])
    assert all(a != b for a, b in zip(c["val_accuracy"], c["val_accuracy"][1:], strict=False))


def test_predict_all_models_and_notes(finished_run):
    answers, notes = serving.predict(finished_run, "zzqx " * 900)
    assert [a.kind for a in answers] == ["teacher", "student", "student-int8"]
    assert all(a.available and abs(sum(a.probs.values()) - 1) < 1e-6 for a in answers)
    assert any("only the first 2,000" in n for n in notes)
    with pytest.raises(serving.UserInputError, match="Type a sentence first"):
        serving.predict(finished_run, " \n ")


def test_model_card_usage_example_runs_on_the_bundle(finished_run, tmp_path):
    """The card's code, run on the downloaded zip, gives what the studio's int8 model gives."""
    files = serving.export_files(finished_run, tmp_path)
    out = tmp_path / "bundle"
    with zipfile.ZipFile(files["bundle"]) as z:
        z.extractall(out)
    assert {"README.md", "distilled.int8.onnx", "vocab.json", "results.json"} <= set(
        os.listdir(out))
    code = re.search(r"```python\n(.*?)```", (out / "README.md").read_text(), re.S).group(1)
    text = "the movie was wonderful and moving"
    code = code.replace("a gripping, funny film", text)
    cwd = os.getcwd()
    buf = io.StringIO()
    try:
        os.chdir(out)
        with contextlib.redirect_stdout(buf):
            exec(compile(code, "model-card", "exec"), {})
    finally:
        os.chdir(cwd)
    answers, _ = serving.predict(finished_run, text)
    int8 = next(a for a in answers if a.kind == "student-int8")
    assert buf.getvalue().strip() == int8.label


def test_reusable_teacher_needs_the_same_data(finished_run):
    cfg = finished_run.config()
    assert serving.reusable_teacher(finished_run, cfg)
    assert serving.reusable_teacher(  # naming the detected columns is the same data
        finished_run, cfg.with_overrides({"data.text_column": "sentence", "seed": 7}))
    assert not serving.reusable_teacher(
        finished_run, cfg.with_overrides({"data.max_train_examples": 50}))
    assert not serving.reusable_teacher(None, cfg)


def test_compare_and_export_before_any_run_get_a_message(tmp_path):
    """KDSTUDIO_RUNS_DIR points at an empty folder here (tests/conftest.py)."""
    from kdstudio.ui import compare_tab, export_tab

    header, table, *_ = compare_tab.show_results("")
    assert "No finished run yet: run the quick demo or start a distillation" in header
    assert table.empty
    msg, *_ = compare_tab.classify("a fine film", "")
    assert "No finished run yet" in msg
    msg, int8, *_ = export_tab.prepare("")
    assert "No finished run yet" in msg and int8["interactive"] is False
    msg, *_ = compare_tab.find_disagreements("")
    assert "No finished run yet" in msg


def test_a_run_without_results_clears_the_numbers(tiny_config, tmp_path):
    from kdstudio.ui import compare_tab

    run = Run.create(tiny_config, tmp_path / "runs")  # the runs folder the env names
    run.set_status("failed", stage="teacher", message="out of memory")
    header, table, scatter, *_ = compare_tab.show_results(run.id)
    assert "has no comparison yet (failed, teacher)" in header
    assert table.empty and scatter is None


def test_unexpected_errors_become_one_line_messages(monkeypatch, finished_run):
    from kdstudio.ui import compare_tab

    def boom(*_):
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(serving, "predict", boom)
    monkeypatch.setenv("KDSTUDIO_RUNS_DIR", str(finished_run.path.parent))
    msg, *rest = compare_tab.classify("fine", str(finished_run.id))
    assert "Something went wrong (RuntimeError: disk on fire)" in msg
    assert "second line" not in msg and "Traceback" not in msg


def test_softmax_is_stable():
    p = serving._softmax(np.array([[1000.0, 0.0], [0.0, 0.0]]))
    assert np.allclose(p, [[1, 0], [0.5, 0.5]])
