import json
import shutil

import pytest

from kdstudio import runs as R


def test_baselines_join_a_finished_run_and_its_table(baselines, finished_run, tmp_path):
    """A run without Model2Vec gets it trained and timed beside its other rows; the fastText
    model it already has is kept, not trained again."""
    pytest.importorskip("skeletoken")
    run_dir = tmp_path / finished_run.path.name
    shutil.copytree(finished_run.path, run_dir)
    shutil.rmtree(run_dir / R.STUDENTS_DIR / "model2vec")
    fasttext = (run_dir / R.STUDENTS_DIR / "fasttext" / "model.bin").stat().st_mtime_ns
    out = tmp_path / "baselines.json"
    assert baselines.main([str(run_dir), "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    trained = res["trained"][str(run_dir)]
    assert "model2vec" in trained and "fasttext" not in trained
    assert (run_dir / R.STUDENTS_DIR / "fasttext" / "model.bin").stat().st_mtime_ns == fasttext
    rows = res["per_run"][0]
    assert set(rows) == set(baselines.KINDS)
    m2v = rows["baseline:model2vec"]
    assert m2v["accuracy"] == trained["model2vec"]["val_accuracy"] >= 0.75
    assert m2v["speedup_b1"] > 0 and m2v["size_mb"] > 0
    assert res["summary"]["baseline:model2vec"]["runs"] == 1
    assert R.Run(run_dir).config().student.model2vec_baseline
    kinds = [r["kind"] for r in R.Run(run_dir).results()["rows"]]
    assert "baseline:model2vec" in kinds and "student-int8" in kinds


def test_families_retrain_one_student_of_a_finished_run(baselines, finished_run, tmp_path):
    """--families static trains the static student again on the run's own transfer set, with
    the --set settings, and quantizes it; the BiLSTM students and the baselines are kept."""
    run_dir = tmp_path / finished_run.path.name
    shutil.copytree(finished_run.path, run_dir)
    students = run_dir / R.STUDENTS_DIR

    def stamp(p):
        return p.stat().st_mtime_ns

    before = {n: stamp(students / n / "model.safetensors") for n in ("static", "distilled")}
    fasttext = stamp(students / "fasttext" / "model.bin")
    onnx = stamp(run_dir / R.ONNX_DIR / "static.int8.onnx")
    out = tmp_path / "families.json"
    assert baselines.main([str(run_dir), "--families", "static", "--set", "static.epochs=2",
                           "--out", str(out)]) == 0
    assert stamp(students / "static" / "model.safetensors") != before["static"]
    assert stamp(students / "distilled" / "model.safetensors") == before["distilled"]
    assert stamp(students / "fasttext" / "model.bin") == fasttext
    assert stamp(run_dir / R.ONNX_DIR / "static.int8.onnx") != onnx
    assert R.Run(run_dir).config().static.epochs == 2
    meta = json.loads((students / "static" / "student.json").read_text())
    assert meta["config"]["epochs"] == 2
    res = json.loads(out.read_text())
    trained = res["trained"][str(run_dir)]
    assert set(trained) == {"static", "seconds"}
    row = res["per_run"][0]["static-int8"]
    assert row["accuracy"] >= 0.8 and row["speedup_b1"] > 0


def test_the_summary_is_the_mean_over_runs(baselines):
    def rows(acc, ms):
        return {"baseline:model2vec": {"name": "m2v", "accuracy": acc, "latency_b1_ms_p50": ms,
                                       "speedup_b1": 6.0 / ms}}

    s = baselines.summary([rows(0.80, 0.1), rows(0.82, 0.3)])["baseline:model2vec"]
    assert s["accuracy"] == pytest.approx(0.81) and s["latency_b1_ms_p50"] == pytest.approx(0.2)
    assert s["accuracy_sd"] == pytest.approx(0.01414, abs=1e-4) and s["runs"] == 2
