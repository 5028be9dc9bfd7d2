"""Progress snapshots read from a run folder."""

from __future__ import annotations

import pytest

from kdstudio import studio


def test_snapshot_reads_stages_and_curves(finished_run):
    import json

    s = studio.snapshot(finished_run)
    assert s.status == "done" and [st for _, st in s.stages] == ["done"] * 5
    c = s.curves["student:distilled"]
    assert c["loss"] and len(c["steps"]) == len(c["loss"])
    # One point per evaluation: the steps and accuracies the training history recorded.
    meta = json.loads((finished_run.path / "students" / "distilled" / "student.json")
                      .read_text())
    assert c["val_steps"] == [h["step"] for h in meta["history"]]
    assert c["val_accuracy"] == [h["val_accuracy"] for h in meta["history"]]


def test_a_running_job_says_how_long_the_whole_job_has_left(finished_run, tmp_path):
    import os
    import shutil

    from kdstudio.runs import Run

    root = tmp_path / "runs"
    shutil.copytree(finished_run.path, root / finished_run.id)
    run = Run.create(finished_run.config(), root)  # the same settings' name
    run.set_status("running", stage="augment", started=0.0, pid=os.getpid())
    run.log("run_started", stages=["teacher", "augment", "student", "quantize", "compare"])
    run.log("stage_finished", stage="teacher", seconds=3.0)
    run.log("progress", stage="augment", step=5, total=10, eta=10.0)
    past = {e["stage"]: e["seconds"] for e in Run(root / finished_run.id).events()
            if e["kind"] == "stage_finished"}
    s = studio.snapshot(run)
    assert s.job_remaining == pytest.approx(10.0 + past["student"] + past["quantize"]
                                            + past["compare"])
    # With no finished run of the same name, the whole job's time left is not guessed.
    other = Run.create(finished_run.config().with_overrides({"name": "other"}), root)
    other.set_status("running", stage="augment", started=0.0, pid=os.getpid())
    other.log("run_started", stages=["teacher", "augment", "student"])
    other.log("progress", stage="augment", step=5, total=10, eta=10.0)
    assert studio.snapshot(other).job_remaining is None


def test_the_device_line_says_when_training_runs_in_bfloat16(finished_run, tmp_path):
    import os
    import shutil

    from kdstudio.runs import Run

    root = tmp_path / "runs"
    shutil.copytree(finished_run.path, root / finished_run.id)
    run = Run(root / finished_run.id)
    run.set_status("running", stage="student", started=0.0, pid=os.getpid())
    run.log("progress", stage="student:distilled", step=1, total=10, device="cpu",
            precision="bf16")
    assert studio.snapshot(run).device == "CPU, bfloat16"
    run.log("progress", stage="student:distilled", step=2, total=10, device="cpu",
            precision="fp32")
    assert studio.snapshot(run).device == "CPU"
