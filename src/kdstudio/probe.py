"""A fixed workload timed on this host, to tell a slow host from a slow model.

Speed-ups in a comparison are ratios of two timings on one machine, and the two can suffer
differently when the host slows down: the int8 student's many small kernels more than the
teacher's large matrix products. :func:`host_probe` times one workload
of each kind that never changes (fixed shapes, fixed random weights and inputs), so two runs'
probes say whether their hosts were as fast, and a probe before and after a run's timing
says whether the host changed during it.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

#: The student-shaped graph: vocabulary, embedding, hidden and ReLU-layer widths.
PROBE_SHAPE = (12_000, 200, 150, 200)
#: The teacher-shaped product: a 64-token sequence through a MiniLM feed-forward layer.
MATMUL_SHAPE = (64, 384, 1536)
#: Probes whose slower reading exceeds the faster by more than this ratio disagree.
DRIFT = 1.25


def median_call_ms(fn, calls: int, warmup: int) -> float:
    """Median milliseconds of ``fn(i)`` over ``calls`` calls, after ``warmup`` untimed ones."""
    for i in range(warmup):
        fn(i)
    times = []
    for i in range(calls):
        start = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def host_probe(threads: int = 2, calls: int = 300, warmup: int = 30, seed: int = 0) -> dict:
    """Median milliseconds of two fixed workloads on ``threads`` threads.

    ``int8_bilstm_b1_ms``: an untrained BiLSTM of the default student's shape (one table,
    as when the probe was first used, so readings stay comparable), exported and quantized
    to int8 as the pipeline does, one sentence of 5-39 tokens per call in
    ONNX Runtime (the int8 student's batch-1 kernels). ``torch_matmul_ms``: a 64x384 by
    384x1536 float product in PyTorch (the teacher's kernels).
    """
    from .quantize import check_quantized, export_student, quantize_int8, run_student_onnx
    from .quantize import session as ort_session
    from .student import BiLSTMClassifier

    vocab, emb, hidden, fc = PROBE_SHAPE
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, 40, size=calls + warmup)
    inputs = [rng.integers(1, vocab, size=(1, int(n)), dtype=np.int64) for n in lengths]
    with tempfile.TemporaryDirectory() as tmp:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = BiLSTMClassifier(vocab, emb, hidden, fc, 2, dropout=0.0).eval()
        fp32 = export_student(model, Path(tmp) / "probe.onnx")
        int8 = quantize_int8(fp32, Path(tmp) / "probe.int8.onnx")
        check_quantized(int8)
        sess = ort_session(int8, threads)
        lstm_ms = median_call_ms(lambda i: run_student_onnx(sess, inputs[i % len(inputs)]),
                                 calls, warmup)

    n, d, f = MATMUL_SHAPE
    gen = torch.Generator().manual_seed(seed)
    a, b = torch.randn(n, d, generator=gen), torch.randn(d, f, generator=gen)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.no_grad():
            mm_ms = median_call_ms(lambda i: torch.mm(a, b), calls, warmup)
    finally:
        torch.set_num_threads(before)
    return {"int8_bilstm_b1_ms": lstm_ms, "torch_matmul_ms": mm_ms, "threads": threads,
            "calls": calls}


def host_probe_in_fresh_process(**kwargs) -> dict:
    """:func:`host_probe` in a new process: ONNX Runtime's calls can be slow for the life of
    a process, more often one that has run PyTorch on several threads (see
    ``CompareConfig.isolate_onnx``), which would read as a slow host."""
    from .jobs import in_fresh_process

    return in_fresh_process(host_probe, **kwargs)


def drift(a: dict, b: dict) -> dict[str, float]:
    """For each workload, the slower of two probes' readings over the faster (≥ 1)."""
    return {k: max(a[k], b[k]) / min(a[k], b[k])
            for k in ("int8_bilstm_b1_ms", "torch_matmul_ms") if a.get(k) and b.get(k)}
