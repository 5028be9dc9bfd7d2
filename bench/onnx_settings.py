"""Which ONNX Runtime session settings run a run's student graphs fastest on this CPU.

    python bench/onnx_settings.py runs/<id> [--rounds 3]

For the run's fp32 and int8 distilled-student graphs it times every combination of intra-op
threads (1, all cores), thread spinning (on, off), graph optimisation level (basic,
extended, all) and execution mode (sequential; parallel, with one inter-op thread per core so
that the two LSTM directions can run at once): at batch 1 over 100 validation
sentences, and at batch 32 over the whole validation set in length buckets. Rounds
alternate over the settings and each keeps its best round. Writes
``bench/results/onnx-settings-<cpu>.json`` with the machine it ran on.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent


def make_session(path: Path, threads: int, spin: bool, level: str, mode: str):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = (os.cpu_count() or 1) if mode == "PARALLEL" else 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, f"ORT_ENABLE_{level}")
    so.execution_mode = getattr(ort.ExecutionMode, f"ORT_{mode}")
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def inputs(run_dir: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(100 single sentences, the validation set in length-bucketed batches of 32)."""
    from kdstudio.config import RunConfig
    from kdstudio.data import load_task
    from kdstudio.student import load_student
    from kdstudio.teacher import load_teacher

    cfg = RunConfig.load(run_dir / "config.yaml")
    task = load_task(cfg.data, cfg.seed)
    tok = load_teacher(str(run_dir / "teacher")).tokenizer
    _, vocab, _ = load_student(run_dir / "students" / "distilled")
    texts = task.validation.texts
    L = cfg.student.max_length
    singles = [vocab.encode(tok, [t], L) for t in texts[:100]]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i].split()))
    batches = [vocab.encode(tok, [texts[i] for i in order[s:s + 32]], L)
               for s in range(0, len(texts), 32)]
    return singles, batches


def timed(sess, xs: list[np.ndarray]) -> float:
    sess.run(["logits"], {"input_ids": xs[0]})
    t0 = time.perf_counter()
    for x in xs:
        sess.run(["logits"], {"input_ids": x})
    return time.perf_counter() - t0


def main() -> int:
    from kdstudio.machine import environment

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None,
                    help="default: bench/results/onnx-settings-<cpu>.json (two CPUs with one "
                         "model name but different instruction sets need their own)")
    args = ap.parse_args()
    singles, batches = inputs(args.run)
    grid = list(itertools.product(sorted({1, os.cpu_count() or 1}), (True, False),
                                  ("BASIC", "EXTENDED", "ALL"), ("SEQUENTIAL", "PARALLEL")))
    rows = []
    for graph in ("distilled.onnx", "distilled.int8.onnx"):
        path = args.run / "onnx" / graph
        sessions = {g: make_session(path, *g) for g in grid}
        best = {g: [float("inf"), float("inf")] for g in grid}
        for _ in range(args.rounds):
            for g, sess in sessions.items():
                best[g][0] = min(best[g][0], timed(sess, singles) / len(singles) * 1e3)
                best[g][1] = min(best[g][1], timed(sess, batches))
        n = sum(len(b) for b in batches)
        for g, (b1_ms, b32_s) in best.items():
            rows.append({"graph": graph, "threads": g[0], "spinning": g[1], "level": g[2],
                         "mode": g[3], "b1_ms": round(b1_ms, 4),
                         "b32_per_s": round(n / b32_s, 1)})
        for key, better in (("b1_ms", min), ("b32_per_s", max)):
            top = better((r for r in rows if r["graph"] == graph), key=lambda r: r[key])
            print(f"{graph}: fastest {key} {top[key]} with {top}")
    env = environment()
    out = args.out or (ROOT / "results" /
                       f"onnx-settings-{re.sub(r'[^a-z0-9]+', '-', env['cpu'].lower())}.json")
    out.write_text(json.dumps({"command": f"python bench/onnx_settings.py <run> --rounds "
                                          f"{args.rounds}" + (f" --out {out}" if args.out else ""),
                               "date": time.strftime("%Y-%m-%d"), "environment": env,
                               "rows": rows}, indent=1) + "\n")
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
