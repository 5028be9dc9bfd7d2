"""The int8 BiLSTM's speed-up over the teacher in every committed SST-2 benchmark run.

    python bench/speed_range.py

Reads ``bench/results/sst2*.json`` and keeps the runs whose BiLSTM has the shape
``bench/sst2.yaml`` trains (hidden and embedding sizes): timings of another shape say nothing
about this one. Prints one row per run with the CPU that ran it, then the range over them:
README's cross-machine figure. The batch-32 range covers the runs timed in length buckets
(every model's batches sorted alike); older runs timed batches in the split's order.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kdstudio.config import RunConfig
from kdstudio.machine import cpu_description

ROOT = Path(__file__).resolve().parent


def shape(student: dict) -> tuple:
    return student.get("hidden_size", 150), student.get("embedding_dim", 200)


def cpu_kind(env: dict) -> tuple:
    """(model name, instruction sets) that tell CPUs apart for int8 speed: one name covers an
    AMD EPYC with AVX-512 and VNNI and one with AVX2 alone. BF16 is left out (it speeds
    training, not these timings, and older files lack it); None: no sets recorded."""
    flags = env.get("cpu_flags")
    return env.get("cpu", "?"), tuple(f for f in flags if f != "BF16") if flags else None


def cpu_count(kinds: set) -> int:
    """Distinct CPUs; a file without sets counts only where no file names the model with them."""
    named = {name for name, flags in kinds if flags is not None}
    return len({k for k in kinds if k[1] is not None or k[0] not in named})


def runs_of_shape(files: list[Path], want: tuple) -> list[dict]:
    """One record per results file whose int8 BiLSTM has the shape ``want``."""
    out = []
    for f in sorted(files):
        res = json.loads(f.read_text())
        if shape(res["config"]["student"]) != want:
            continue
        by = {r["kind"]: r for r in res["rows"]}
        t, q = by["teacher"], by["student-int8"]
        out.append({"file": f.name, "machine": cpu_description(res["environment"]),
                    "cpu": cpu_kind(res["environment"]),
                    "date": res.get("date", "?"),
                    "teacher_b1_ms": t["latency_b1_ms_p50"], "int8_b1_ms": q["latency_b1_ms_p50"],
                    "teacher_b32_per_s": t["throughput_b32_per_s"],
                    "int8_b32_per_s": q["throughput_b32_per_s"],
                    "speedup_b1": q["speedup_b1"], "speedup_b32": q["speedup_b32"],
                    # Recorded since the commit (aee639d) that timed batch 32 in length buckets.
                    "buckets": "threads_b32" in q})
    return out


def render(runs: list[dict]) -> str:
    lines = ["| results file | CPU | date | teacher, batch 1 (ms) | int8, batch 1 (ms) "
             "| speed-up, batch 1 | speed-up, batch 32 |", "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['file']} | {r['machine']} | {r['date']} | {r['teacher_b1_ms']:.2f} "
              f"| {r['int8_b1_ms']:.3f} | {r['speedup_b1']:.1f}x | {r['speedup_b32']:.1f}x"
              f"{'' if r['buckets'] else ' (no length buckets)'} |" for r in runs]
    if runs:
        cpus = cpu_count({r["cpu"] for r in runs})
        b1 = [r["speedup_b1"] for r in runs]
        line = f"{len(runs)} runs on {cpus} CPUs: {min(b1):.1f}x to {max(b1):.1f}x at batch 1"
        bucketed = [r for r in runs if r["buckets"]]
        if bucketed:
            b32 = [r["speedup_b32"] for r in bucketed]
            line += (f", {min(b32):.1f}x to {max(b32):.1f}x at batch 32 (the "
                     f"{len(bucketed)} runs timed in length buckets)")
        lines += ["", line + "."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=str(ROOT / "results"))
    ap.add_argument("--config", default=str(ROOT / "sst2.yaml"))
    args = ap.parse_args(argv)
    student = RunConfig.load(args.config).student
    want = (student.hidden_size, student.embedding_dim)
    runs = runs_of_shape(list(Path(args.results).glob("sst2*.json")), want)
    print(f"int8 BiLSTM, hidden {want[0]}, embeddings {want[1]}, against the PyTorch teacher\n")
    print(render(runs))
    return 0 if runs else 1


if __name__ == "__main__":
    raise SystemExit(main())
