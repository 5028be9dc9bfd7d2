"""Slow tests on the real packaged MiniLM teacher and spaCy model, on a few hundred SST-2
sentences from ../shared/data (or $KDSTUDIO_DATA_DIR)."""

import os
from pathlib import Path

import pytest

from kdstudio.config import RunConfig
from kdstudio.pipeline import run_stages
from kdstudio.runs import Run

DATA = Path(os.environ.get("KDSTUDIO_DATA_DIR", Path(__file__).parents[2] / "shared" / "data"))
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (DATA / "sst2" / "train.tsv").exists(),
                                 reason=f"SST-2 not found under {DATA}")]


def test_quick_pipeline_on_sst2_subset(tmp_path):
    cfg = RunConfig.load("quick").with_overrides({
        "device": "cpu",
        "data.data_dir": str(DATA), "data.max_train_examples": 400,
        "data.max_validation_examples": 200, "teacher.max_train_examples": 400,
        "teacher.epochs": 2, "augment.n_iter": 2, "student.epochs": 2,
        "compare.latency_samples": 30,
    })
    run = Run.create(cfg, tmp_path)
    assert run_stages(run) == "done", run.status()
    rows = {r["kind"]: r for r in run.results()["rows"]}
    assert rows["teacher"]["params"] > 20_000_000  # the real 22.7M MiniLM
    assert rows["teacher"]["accuracy"] > 0.6  # fine-tuned on 400 sentences: above chance
    assert rows["student-int8"]["size_mb"] * 25 < rows["teacher"]["size_mb"]
    assert rows["student-int8"]["latency_b1_ms_p50"] < rows["teacher"]["latency_b1_ms_p50"]


def test_real_pos_dictionary_on_sst2():
    from kdstudio.augment import build_tagged_corpus
    from kdstudio.config import DataConfig
    from kdstudio.data import load_task

    task = load_task(DataConfig(dataset="sst2", data_dir=str(DATA), max_train_examples=300))
    corpus = build_tagged_corpus(task.train.texts, RunConfig().augment.spacy_model)
    assert len(corpus.words) == 300
    assert {"NN", "JJ", "DT"} <= set(corpus.pos.words)
    assert all(len(w) == len(t) for w, t in zip(corpus.words, corpus.tags, strict=True))
