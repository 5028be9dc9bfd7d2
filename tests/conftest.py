"""Shared fixtures: tiny data the tests write, a tiny BERT built from a config, a finished run.

Everything here is offline: the tiny teacher backbone is a randomly initialised BERT with a
WordPiece vocabulary made from the test sentences.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

POS_WORDS = ["good", "great", "wonderful", "charming", "moving", "funny", "brilliant"]
NEG_WORDS = ["bad", "awful", "boring", "dull", "terrible", "clumsy", "tedious"]
FILLER = ["the", "movie", "film", "story", "was", "is", "a", "very", "quite", "and", "plot",
          "acting", "really", "so", "it"]


def make_sentences(n: int, seed: int) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.randint(0, 1)
        words = [rng.choice(FILLER) for _ in range(rng.randint(2, 7))]
        for _ in range(rng.randint(1, 2)):
            words.insert(rng.randint(0, len(words)), rng.choice(POS_WORDS if label else NEG_WORDS))
        rows.append((" ".join(words), label))
    return rows


def write_tsv(path: Path, rows: list[tuple[str, int]]) -> None:
    path.write_text("sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in rows),
                    encoding="utf-8")


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory) -> Path:
    """A folder with train.tsv (160 rows) and validation.tsv (40 rows)."""
    d = tmp_path_factory.mktemp("data") / "tiny"
    d.mkdir()
    write_tsv(d / "train.tsv", make_sentences(160, 1))
    write_tsv(d / "validation.tsv", make_sentences(40, 2))
    return d


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT with its own WordPiece vocabulary, saved like a Hub model."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    d = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(
        set(POS_WORDS + NEG_WORDS + FILLER + ["not", "fine"])) + [f"##{c}" for c in
                                                                   "abcdefghijklmnopqrstuvwxyz"] \
        + list("abcdefghijklmnopqrstuvwxyz.,!?'")
    (d / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    tok = BertTokenizerFast(vocab=str(d / "vocab.txt"), do_lower_case=True)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2,
                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    import torch

    torch.manual_seed(0)
    BertForSequenceClassification(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d


def tiny_run_config(data_dir: Path, backbone: Path, teacher_epochs: float = 2,
                    teacher_lr: float = 1e-3):
    """Settings for a whole pipeline run on the tiny data in a few seconds."""
    from kdstudio.config import RunConfig

    return RunConfig.from_dict({
        "name": "tiny", "seed": 0, "device": "cpu",
        "data": {"dataset": str(data_dir)},
        "teacher": {"backbone": str(backbone), "epochs": teacher_epochs, "batch_size": 16,
                    "learning_rate": teacher_lr, "max_length": 32},
        "augment": {"n_iter": 2},
        "student": {"hidden_size": 16, "fc_size": 16, "epochs": 2, "batch_size": 16,
                    "evals_per_epoch": 1, "patience": 0, "train_soft_no_aug": True},
        "quantize": {"teacher": True},
        "compare": {"latency_samples": 10, "warmup": 2},
    })


@pytest.fixture
def tiny_config(tiny_data_dir, tiny_backbone):
    return tiny_run_config(tiny_data_dir, tiny_backbone)


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """Runs and caches of one test never leak into another or into the repository."""
    monkeypatch.setenv("KDSTUDIO_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("KDSTUDIO_CACHE_DIR", raising=False)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


#: The shared run's settings. They must learn: the teacher reaches 1.0 on the tiny validation
#: set after its second epoch and the distilled student about 0.95 (test_shared_run_learns),
#: so that checks of accuracy, agreement and int8 parity read a model that predicts, not a
#: constant guess (2e-3 for 3 epochs left the teacher at 0.5, every student at 0.5).
SHARED_TEACHER_EPOCHS, SHARED_TEACHER_LR = 4, 5e-3
SHARED_STUDENT = {"student.epochs": 3, "student.learning_rate": 1e-2,
                  "student.families": ["bilstm", "static", "transformer"],
                  "student.fasttext_baseline": True, "student.model2vec_baseline": True,
                  "static.learning_rate": 1e-2,
                  "transformer.learning_rate": 1e-3, "transformer.epochs": 2,
                  "transformer.layers": 1}


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory, tiny_data_dir, tiny_backbone):
    """One full pipeline run on the tiny data, shared by the tests that only read it."""
    from kdstudio.pipeline import run_stages
    from kdstudio.runs import Run

    cfg = tiny_run_config(tiny_data_dir, tiny_backbone, teacher_epochs=SHARED_TEACHER_EPOCHS,
                          teacher_lr=SHARED_TEACHER_LR).with_overrides(SHARED_STUDENT)
    root = tmp_path_factory.mktemp("runs")
    run = Run.create(cfg, root)
    status = run_stages(run)
    assert status == "done", run.status()
    return run
