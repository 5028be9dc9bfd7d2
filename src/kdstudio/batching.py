"""Length-bucketed batching shared by the teacher and student loops."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def length_batches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator,
                   bucket: int = 50) -> list[np.ndarray]:
    """Shuffle, sort within chunks of ``bucket`` batches by length, shuffle the batches.

    Batches then hold sentences of similar length (little padding) and still come in a
    random order each epoch.
    """
    lengths = np.asarray(lengths)
    idx = rng.permutation(len(lengths))
    chunk = batch_size * bucket
    batches: list[np.ndarray] = []
    for s in range(0, len(idx), chunk):
        part = idx[s:s + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[b:b + batch_size] for b in range(0, len(part), batch_size)]
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]
