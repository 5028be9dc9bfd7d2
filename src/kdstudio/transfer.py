"""The transfer set: training sentences plus augmented copies, each with the teacher's logits.

Built once per (teacher fingerprint, training data, augmentation settings, seed) and cached
as Parquet under that content key, so a second run with the same inputs reuses it instead of
relabelling. Columns: ``text``, ``source`` (index of the training sentence it came from),
``label`` (the hard label for originals, -1 for augmented copies), ``logit_0..logit_{C-1}``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from .augment import build_tagged_corpus, build_transfer_texts
from .config import AugmentConfig
from .data import TaskData
from .files import atomic_path
from .progress import Progress, StopRequested
from .teacher import Teacher


def cache_key(teacher_fp: str, task: TaskData, cfg: AugmentConfig, seed: int,
              max_length: int, int8_labels: bool = False) -> str:
    fields = {"teacher": teacher_fp, "data": task.fingerprint(), "augment": cfg.to_dict(),
              "seed": seed, "max_length": max_length}
    if int8_labels:  # only then, so that sets labelled in fp32 keep their cached keys
        fields["labels"] = "int8"
    payload = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def link_or_copy(src: Path, dst: Path) -> None:
    """Make ``dst`` a hard link to ``src`` (a copy where links are not possible), replacing
    whatever ``dst`` was in one rename.

    A hard link is the same file under two names, so this is safe only because nothing
    rewrites a linked file in place: the files linked between runs and the cache (a saved
    teacher, ``teacher.json``, transfer sets) are only ever replaced by writing a new file
    and renaming it over the old name (``teacher.save_teacher``, ``files.write_text_atomic``,
    ``build_transfer_set``), which gives that folder a file of its own and leaves the other
    names' content as it was.
    """
    with atomic_path(dst) as tmp:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copy2(src, tmp)


# Every input below keys the cache or the job's progress, so each stays a named argument.
def build_transfer_set(  # noqa: PLR0913
        task: TaskData, teacher: Teacher, teacher_fp: str, cfg: AugmentConfig,
        out_file: str | Path, *, seed: int = 42, batch_size: int = 128,
        cache_dir: str | Path | None = None, on_step: Callable[[Progress], None] | None = None,
        should_stop: Callable[[], bool] | None = None) -> dict:
    """Write the transfer set to ``out_file`` (from the cache when it holds it)."""
    out_file = Path(out_file)
    int8 = teacher.labeller == "onnx-int8"
    key = cache_key(teacher_fp, task, cfg, seed, teacher.max_length, int8)
    cached = Path(cache_dir) / f"transfer-{key}.parquet" if cache_dir else None
    if cached is not None and cached.exists():
        link_or_copy(cached, out_file)
        meta_file = cached.with_suffix(".json")
        meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
        # "seconds" etc. describe the original build, which this run did not repeat.
        return {**meta, "cached": True, "key": key}

    t0 = time.time()
    progress = Progress(stage="augment", total=len(task.train))

    def report(done: int, total: int, phase: str) -> None:
        if should_stop is not None and should_stop():
            raise StopRequested(f"cancelled while {phase}")
        progress.total = total
        progress.update(done, phase=phase)
        if on_step is not None:
            on_step(progress)

    corpus = build_tagged_corpus(task.train.texts, cfg.spacy_model, cache_dir,
                                 on_progress=lambda d, t: report(d, t, "POS tagging"))
    t_tag = time.time() - t0
    texts, source = build_transfer_texts(
        corpus, task.train.texts, cfg, seed, teacher.mask_token,
        on_progress=lambda d, t: report(d, t, "augmenting"))
    t1 = time.time()
    logits = teacher.predict_logits(
        texts, batch_size, on_batch=lambda d, t: report(d, t, "teacher labelling"))
    t_label = time.time() - t1
    n_orig = len(task.train)
    labels = np.full(len(texts), -1, dtype=np.int64)
    labels[:n_orig] = task.train.labels
    df = pd.DataFrame({"text": texts, "source": np.asarray(source, dtype=np.int64),
                       "label": labels})
    for c in range(logits.shape[1]):
        df[f"logit_{c}"] = logits[:, c]
    out_file.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_file) as tmp:
        df.to_parquet(tmp, index=False)
    meta = {"rows": len(df), "augmented": len(df) - n_orig,
            "pos_tags": len(corpus.pos.words), "tagging_seconds": round(t_tag, 2),
            "labelling_seconds": round(t_label, 2),
            "sentences_per_second": round(len(df) / max(t_label, 1e-9), 1),
            "labeller": teacher.labeller,
            "seconds": round(time.time() - t0, 2)}
    if cached is not None:
        link_or_copy(out_file, cached)
        cached.with_suffix(".json").write_text(json.dumps(meta))
    return {**meta, "cached": False, "key": key}


def read_transfer_set(path: str | Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(texts, labels with -1 for augmented rows, teacher logits (N, C))."""
    df = pd.read_parquet(path)
    cols = sorted((c for c in df.columns if c.startswith("logit_")),
                  key=lambda c: int(c.split("_")[1]))
    return df["text"].tolist(), df["label"].to_numpy(), df[cols].to_numpy(dtype=np.float32)
