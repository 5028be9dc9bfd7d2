"""Batch-32 throughput of int8 students of several shapes, each timed in its own process.

    KDSTUDIO_DATA_DIR=../shared/data python bench/student_speed.py \
        --try hidden_size=150 --try hidden_size=100 --try pooling=max --rounds 3

Random weights (speed does not depend on them), the student vocabulary of SST-2 train, the
real validation sentences in their order, batches of 32, ONNX Runtime on 2 threads: the
setting of the benchmark's int8 row. Every (setting, round) runs in a fresh process with
only one session alive, because a thread pool left spinning by another session measurably
slows the next one on a 2-core machine (bench/NOTES.md). Prints one JSON line per setting:
the median over rounds of each round's median of ``--passes`` passes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _validation_batches(batch_size: int):
    """The student vocabulary of SST-2 train and the validation set in batches of ids."""
    from transformers import AutoTokenizer

    from kdstudio.config import DataConfig
    from kdstudio.data import load_task
    from kdstudio.student import StudentVocab
    from kdstudio.teacher import packaged_minilm_path

    tok = AutoTokenizer.from_pretrained(packaged_minilm_path())
    task = load_task(DataConfig(dataset="sst2"), 42)
    vocab = StudentVocab.build(tok, task.train.texts, 64)
    texts = task.validation.texts
    return vocab, [vocab.encode(tok, texts[s:s + batch_size], 64)
                   for s in range(0, len(texts), batch_size)]


def time_one(path: str, batches_file: str, passes: int, threads: int) -> float:
    """Sentences per second of one graph: the median of ``passes`` passes over the batches."""
    from kdstudio.quantize import run_student_onnx, session

    data = np.load(batches_file)
    batches = [data[k] for k in sorted(data.files, key=int)]
    n = sum(len(b) for b in batches)
    sess = session(path, threads)
    run_student_onnx(sess, batches[0])
    times = []
    for _ in range(passes):
        t0 = time.perf_counter()
        for b in batches:
            run_student_onnx(sess, b)
        times.append(time.perf_counter() - t0)
    return n / float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--try", dest="tries", action="append", default=[],
                    help="StudentConfig keys: hidden_size, embedding_dim, pooling")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--passes", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--time-one", nargs=2, metavar=("GRAPH", "BATCHES"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.time_one:
        print(time_one(*args.time_one, args.passes, args.threads))
        return 0

    import torch

    from kdstudio.cli import _parse_sets
    from kdstudio.config import StudentConfig
    from kdstudio.quantize import export_student, quantize_int8
    from kdstudio.student import BiLSTMClassifier

    vocab, batches = _validation_batches(args.batch_size)
    tries = [_parse_sets(t.split(",")) for t in (args.tries or ["hidden_size=150"])]
    with tempfile.TemporaryDirectory() as d:
        # Encoded once here; each timing process only loads them.
        batches_file = str(Path(d) / "batches.npz")
        np.savez(batches_file, **{str(k): b for k, b in enumerate(batches)})
        paths = []
        for k, s in enumerate(tries):
            cfg = StudentConfig(**s)
            torch.manual_seed(0)
            m = BiLSTMClassifier(len(vocab), cfg.embedding_dim or 384, cfg.hidden_size,
                                 cfg.fc_size, 2, 0.0, cfg.pooling).eval()
            fp32 = export_student(m, Path(d) / f"s{k}.onnx")
            paths.append(str(quantize_int8(fp32, Path(d) / f"s{k}.int8.onnx")))
        speeds: list[list[float]] = [[] for _ in tries]
        for _ in range(args.rounds):  # rounds interleave the settings
            for k, p in enumerate(paths):
                out = subprocess.run(
                    [sys.executable, __file__, "--time-one", p, batches_file,
                     "--passes", str(args.passes), "--threads", str(args.threads)],
                    capture_output=True, text=True, check=True)
                speeds[k].append(float(out.stdout.strip().splitlines()[-1]))
        for s, v in zip(tries, speeds, strict=True):
            print(json.dumps({"setting": s, "per_s_median": round(float(np.median(v))),
                              "per_s_rounds": [round(x) for x in v],
                              "batch_size": args.batch_size, "threads": args.threads}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
