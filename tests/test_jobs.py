import time

import pytest

from kdstudio import jobs
from kdstudio.runs import Run


def _wait(pred, timeout=120.0):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.2)
    return False


def test_job_runs_in_child_process_and_cancels(tiny_config, tmp_path):
    run = Run.create(tiny_config.with_overrides({"student.epochs": 500,
                                                 "student.patience": 0}), tmp_path)
    proc = jobs.start(run)
    assert proc.pid != 0 and run.status()["status"] == "running"
    assert jobs.active_job(tmp_path).id == run.id
    other = Run.create(tiny_config, tmp_path)
    with pytest.raises(jobs.JobBusy, match=f"run {run.id} is still running"):
        jobs.start(other)
    assert _wait(lambda: any(e.get("stage", "").startswith("student")
                             for e in run.events("progress")))
    jobs.cancel(run, grace=20, wait=True)
    assert _wait(lambda: run.status()["status"] == "cancelled", 30)
    assert not jobs.pid_alive(proc.pid)
    assert (run.path / "teacher" / "model.safetensors").exists()
    assert (run.path / "transfer.parquet").exists()
    assert jobs.active_job(tmp_path) is None


def test_hard_cancel_kills_the_process_group_after_the_grace_period(tiny_config, tmp_path):
    run = Run.create(tiny_config.with_overrides({"teacher.epochs": 500}), tmp_path)
    proc = jobs.start(run)
    assert _wait(lambda: bool(run.events("progress")))
    jobs.cancel(run, grace=0.0, wait=True)  # no time to stop cooperatively: forced
    assert not jobs.pid_alive(proc.pid)
    st = run.status()
    assert st["status"] == "cancelled"
    assert "stopped" in st["message"]


def test_reconcile_marks_a_dead_job_failed(tmp_path, tiny_config):
    run = Run.create(tiny_config, tmp_path)
    run.set_status("running", stage="student", pid=999_999_999)
    assert jobs.reconcile(run)["status"] == "failed"
    assert "ended unexpectedly" in run.status()["message"]
