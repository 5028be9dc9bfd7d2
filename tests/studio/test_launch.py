"""Launching jobs: when a finished teacher can be reused."""

from __future__ import annotations

from kdstudio import studio


def test_reusable_teacher_needs_the_same_data(finished_run):
    cfg = finished_run.config()
    assert studio.reusable_teacher(finished_run, cfg)
    assert studio.reusable_teacher(  # naming the detected columns is the same data
        finished_run, cfg.with_overrides({"data.text_column": "sentence", "seed": 7}))
    assert not studio.reusable_teacher(
        finished_run, cfg.with_overrides({"data.max_train_examples": 50}))
    assert not studio.reusable_teacher(None, cfg)
