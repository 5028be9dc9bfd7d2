"""Time ONNX student graphs at batch 1 on this host, to tell a slow host from a slow graph.

    python bench/onnx_b1.py runs/bench-cold/<run>/onnx/distilled.int8.onnx [more.onnx ...]

Each graph gets 872 calls (the size of SST-2 validation) on random token ids of 5-39 tokens,
the same inputs for every graph, after 50 warm-up calls, on 2 intra-op threads; prints the
median per call. Run each graph in its own process when comparing runtimes' thread pools.
"""
from __future__ import annotations

import sys

import numpy as np

from kdstudio.probe import median_call_ms
from kdstudio.quantize import run_student_onnx, session


def median_ms(path: str, calls: int = 872, threads: int = 2) -> float:
    """Median batch-1 call of one graph, through the session the benchmark's int8 row uses."""
    sess = session(path, threads)
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 40, size=calls)
    inputs = [rng.integers(1000, 5000, size=(1, int(n)), dtype=np.int64) for n in lengths]
    # Warm-up: the first 50 inputs; then every input is timed once.
    return median_call_ms(lambda i: run_student_onnx(sess, inputs[i]), calls, warmup=50)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for graph in sys.argv[1:]:
        print(f"{graph}: p50 {median_ms(graph):.3f} ms at batch 1")
