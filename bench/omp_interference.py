"""How often ONNX Runtime's batch-1 calls run slow in a process, before and after PyTorch work.

    python bench/omp_interference.py runs/bench-cold/<run>/onnx/distilled.int8.onnx \
        [--repeats 8] [--out bench/results/omp-interference.jsonl]

Each case runs ``--repeats`` times, each time in a fresh process of its own: the graph's
median batch-1 call (as ``bench/onnx_b1.py`` times it), once before and once after 2,000
float products of a teacher's feed-forward shape in PyTorch. The slowdown does not come in
every process, so the summary counts the processes in which a reading was more than 1.5x
the case's fastest. Cases: PyTorch on 2 threads (what a process that
timed the teacher has done), ONNX Runtime on 1 thread, and PyTorch's
OpenMP threads told to sleep at once (``OMP_WAIT_POLICY=PASSIVE``, which has to be set
before PyTorch loads). Also times the PyTorch product itself, since a setting that speeds
the student up by slowing the teacher down would flatter the speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CASES = {
    "torch 2 threads, ORT 2 threads": {"torch_threads": 2, "ort_threads": 2},
    "torch 2 threads, ORT 1 thread": {"torch_threads": 2, "ort_threads": 1},
    "torch 2 threads, ORT 2 threads, OMP_WAIT_POLICY=PASSIVE": {
        "torch_threads": 2, "ort_threads": 2, "env": {"OMP_WAIT_POLICY": "PASSIVE"}},
}


def one_case(graph: str, torch_threads: int, ort_threads: int) -> dict:
    import torch
    from onnx_b1 import median_ms

    from kdstudio.probe import MATMUL_SHAPE, median_call_ms

    torch.set_num_threads(torch_threads)
    before = median_ms(graph, threads=ort_threads)
    n, d, f = MATMUL_SHAPE  # (64, 384, 1536): a teacher's feed-forward product
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, d, generator=gen), torch.randn(d, f, generator=gen)
    matmul_ms = median_call_ms(lambda i: torch.mm(a, b), 2000, warmup=0)
    after = median_ms(graph, threads=ort_threads)
    return {"ort_b1_ms_before_torch": before, "ort_b1_ms_after_torch": after,
            "torch_matmul_ms": matmul_ms}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("graph")
    ap.add_argument("--out")
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--case", help=argparse.SUPPRESS)  # internal: run one case here
    args = ap.parse_args()
    if args.case:
        spec = CASES[args.case]
        print(json.dumps(one_case(args.graph, spec["torch_threads"], spec["ort_threads"])))
        return 0
    rows = []
    for name, spec in CASES.items():
        env = {**os.environ, **spec.get("env", {})}
        got = []
        for _ in range(args.repeats):
            out = subprocess.run([sys.executable, __file__, args.graph, "--case", name],
                                 env=env, check=True, capture_output=True, text=True).stdout
            got.append({"case": name, **json.loads(out.strip().splitlines()[-1])})
        rows += got
        fastest = min(min(g["ort_b1_ms_before_torch"], g["ort_b1_ms_after_torch"]) for g in got)

        def slow(key, got=got, fastest=fastest):
            return sum(g[key] > 1.5 * fastest for g in got)

        print(f"{name}: fastest {fastest:.3f} ms; slow (> 1.5x) in "
              f"{slow('ort_b1_ms_before_torch')} of {len(got)} processes before PyTorch ran, "
              f"{slow('ort_b1_ms_after_torch')} after; ONNX Runtime b1 after, per process: "
              + " ".join(f"{g['ort_b1_ms_after_torch']:.3f}" for g in got)
              + "; PyTorch matmul median "
              f"{sorted(g['torch_matmul_ms'] for g in got)[len(got) // 2]:.3f} ms", flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.writelines(json.dumps({"graph": args.graph, **r}) + "\n" for r in rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
