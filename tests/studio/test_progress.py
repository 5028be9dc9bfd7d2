"""Progress snapshots read from a run folder."""

from __future__ import annotations

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
