import subprocess
import sys

from kdstudio.cli import main
from kdstudio.runs import list_runs


def test_cli_runs_the_pipeline_and_stage_subcommands(tiny_config, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    tiny_config.with_overrides({"student.train_soft_no_aug": False,
                                "quantize.teacher": False}).save(cfg)
    rc = main(["--runs-dir", str(tmp_path / "r"), "run", "--config", str(cfg),
               "--set", "student.epochs=1"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "| student ONNX int8 |" in out
    (run,) = list_runs(tmp_path / "r")
    assert run.config().student.epochs == 1
    assert main(["compare", str(run.path)]) == 0
    assert main(["--runs-dir", str(tmp_path / "r"), "list"]) == 0
    assert run.id in capsys.readouterr().out


def test_python_m_kdstudio_times_onnx_rows_in_spawned_processes(tiny_config, tmp_path):
    """The studio's jobs run ``python -m kdstudio``; the compare stage spawns a process per
    ONNX Runtime row (compare.isolate_onnx), which must not rerun the command line."""
    cfg = tmp_path / "c.yaml"
    tiny_config.with_overrides({"student.train_soft_no_aug": False, "student.epochs": 1,
                                "compare.isolate_onnx": True}).save(cfg)
    p = subprocess.run([sys.executable, "-m", "kdstudio", "--runs-dir", str(tmp_path / "r"),
                        "run", "--config", str(cfg)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "| student ONNX int8 |" in p.stdout
    assert len(list_runs(tmp_path / "r")) == 1


def test_cli_reports_bad_config_without_traceback(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("augment:\n  p_mask: 0.7\n  p_pos: 0.6\n")
    p = subprocess.run([sys.executable, "-m", "kdstudio", "--runs-dir", str(tmp_path), "run",
                        "--config", str(cfg)], capture_output=True, text=True)
    assert p.returncode == 2
    assert "error: p_mask + p_pos must be at most 1" in p.stderr
    assert "Traceback" not in p.stderr
    assert list_runs(tmp_path) == []


def test_cli_rejects_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["student", str(tmp_path)]) == 2
    assert "is not a run folder" in capsys.readouterr().err


def test_set_reads_exponent_numbers_as_numbers():
    from kdstudio.cli import _parse_sets
    from kdstudio.config import RunConfig

    cfg = RunConfig().with_overrides(_parse_sets(
        ["student.learning_rate=4e-3", "name=run1e5x", "student.epochs=2",
         "data.dataset=1e5"]))
    assert (cfg.student.learning_rate, cfg.name, cfg.student.epochs, cfg.data.dataset) == \
        (0.004, "run1e5x", 2, "1e5")


def test_resume_runs_the_stages_a_cancelled_run_did_not_finish(tiny_config, tmp_path,
                                                               capsys):
    import hashlib

    import pytest

    from kdstudio.pipeline import run_stages
    from kdstudio.runs import Run, stages_left

    cfg = tiny_config.with_overrides({"student.train_soft_no_aug": False,
                                      "quantize.teacher": False, "student.epochs": 1})
    run = Run.create(cfg, tmp_path / "r")

    def cancel_in_student(p):
        if p.stage.startswith("student"):
            run.request_cancel()

    assert run_stages(run, None, cancel_in_student) == "cancelled"
    assert stages_left(run) == ["student", "quantize", "compare"]
    saved = {f: hashlib.sha256((run.path / f).read_bytes()).hexdigest()
             for f in ("transfer.parquet", "teacher/model.safetensors")}
    assert main(["resume", str(run.path)]) == 0
    assert "resuming" in capsys.readouterr().out
    assert run.status()["status"] == "done" and run.results() is not None
    # What the finished stages saved is reused, not made again.
    assert saved == {f: hashlib.sha256((run.path / f).read_bytes()).hexdigest()
                     for f in saved}
    finished = [e["stage"] for e in run.events("stage_finished")]
    assert finished == ["teacher", "augment", "student", "quantize", "compare"]
    # A finished run has nothing to resume.
    with pytest.raises(ValueError, match="only a failed or cancelled run can be resumed"):
        stages_left(run)
    assert main(["resume", str(run.path)]) == 2
