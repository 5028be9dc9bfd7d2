"""The POS dictionary the Augmentation tab previews with."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..augment import AugmentedCopy
from ..augment import preview as augment_preview
from ..data import TaskData
from ..runs import Run
from .cache import VersionedCache
from .runviews import runs_root

#: Sentences tagged for the augmentation preview's POS dictionary when the full training
#: corpus has not been tagged yet (tagging all of SST-2 takes minutes on a small CPU).
PREVIEW_POS_SENTENCES = 2000
__all__ = ["AugmentedCopy", "augment_preview", "preview_pos_dictionary"]

_POS: VersionedCache[tuple[Any, str]] = VersionedCache(4)


def preview_pos_dictionary(task: TaskData, spacy_model: str, run: Run | None = None
                           ) -> tuple[Any, str]:
    """(PosDictionary, a note on where it comes from) for previewing augmentation.

    The pipeline builds it from every training sentence; if that is already cached, use it.
    Otherwise tag a fixed random sample, so the first preview takes seconds, not minutes,
    and say so.
    """
    from ..augment import corpus_key
    from ..pipeline import cache_dir_for

    cache_dir = cache_dir_for(run) if run is not None else Path(
        os.environ.get("KDSTUDIO_CACHE_DIR") or runs_root() / "_cache")
    texts = task.train.texts
    full_key = corpus_key(texts, spacy_model)
    return _POS.get(full_key, None, lambda: _pos_dictionary(texts, full_key, spacy_model,
                                                            cache_dir))


def _pos_dictionary(texts: list[str], full_key: str, spacy_model: str, cache_dir: Path
                    ) -> tuple[Any, str]:
    from ..augment import PosDictionary, build_tagged_corpus

    full = cache_dir / f"pos-{full_key}.json"
    if full.exists():
        d = json.loads(full.read_text(encoding="utf-8"))
        return (PosDictionary(d["pos_words"], d["pos_counts"]),
                f"POS dictionary from all {len(texts):,} training sentences")
    if len(texts) <= PREVIEW_POS_SENTENCES:
        corpus = build_tagged_corpus(texts, spacy_model, cache_dir)
        return corpus.pos, f"POS dictionary from all {len(texts):,} training sentences"
    pick = np.sort(np.random.default_rng(0).choice(len(texts), PREVIEW_POS_SENTENCES,
                                                   replace=False))
    corpus = build_tagged_corpus([texts[i] for i in pick], spacy_model, cache_dir)
    return corpus.pos, (f"POS dictionary from {PREVIEW_POS_SENTENCES:,} of {len(texts):,} "
                        "training sentences (the run uses all)")
