"""Add the outside baselines to finished benchmark runs and compare them beside the students.

    KDSTUDIO_DATA_DIR=../shared/data python bench/baselines.py RUN [RUN ...] \
        [--families static ...] [--set KEY=VALUE ...] --out bench/results/baselines-sst2.json

Each RUN is a run folder that ``bench/sst2.py`` wrote. The baselines its config lacks
(fastText, Model2Vec's classifier) are trained on the gold labels of its training split, as
``student.fasttext_baseline`` / ``student.model2vec_baseline`` would have in the run itself;
a baseline already in the run is kept. ``--families`` (re)trains those student families on
the run's own transfer set and soft labels, as if the run had listed them in
``student.families``. Then the run's quantize and compare stages run again, so every graph is
this version's export and every row of its table (teacher, students, baselines) is timed in
the same sitting. Prints and writes the rows a shipping choice rests on, per run and as the
mean over the runs.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from kdstudio import runs as R
from kdstudio.baselines import BASELINES, train_baselines, trained_baselines
from kdstudio.cli import _parse_sets
from kdstudio.data import load_task
from kdstudio.families import REGISTRY
from kdstudio.machine import environment
from kdstudio.pipeline import run_stages

KINDS = ("teacher", "student-int8", "static-int8", "transformer-int8", "baseline:fasttext",
         "baseline:model2vec")
KEYS = ("accuracy", "latency_b1_ms_p50", "latency_b1_e2e_ms_p50", "throughput_b32_per_s",
        "speedup_b1", "size_mb")


def add_baselines(run: R.Run) -> dict:
    """Train the baselines ``run`` lacks; returns what each training reported."""
    cfg = run.config()
    have = trained_baselines(run.file(R.STUDENTS_DIR))
    cfg = cfg.with_overrides({f"student.{b}_baseline": b not in have for b in BASELINES})
    task = load_task(cfg.data, cfg.seed)
    seed = cfg.seed if cfg.student.seed is None else cfg.student.seed
    trained = train_baselines(run, cfg, task, seed)
    # The run's own config says it has both now.
    run.config().with_overrides({f"student.{b}_baseline": True for b in BASELINES}).save(
        run.path / "config.yaml")
    return trained


def add_families(run: R.Run, names: list[str]) -> dict:
    """Train the student families ``names`` on ``run``'s transfer set (again, if it has
    them); returns each one's training result."""
    cfg = run.config()
    families = list(dict.fromkeys([*cfg.student.families, *names]))
    cfg.with_overrides({"student.families": families}).save(run.path / "config.yaml")
    variants = [REGISTRY[n].variant for n in names]
    if run_stages(run, ["student"], variants=variants) != "done":
        raise RuntimeError(f"training {', '.join(names)} failed: {run.status()}")
    done = [e for e in run.events("stage_finished") if e["stage"] == "student"][-1]
    return done["metrics"]["students"]


def summary(per_run: list[dict[str, dict]]) -> dict[str, dict]:
    """Mean (and sd over runs, for accuracy) of each kind's figures."""
    out = {}
    for kind in KINDS:
        rows = [r[kind] for r in per_run if kind in r]
        if not rows:
            continue
        s = {k: float(np.mean([r[k] for r in rows])) for k in KEYS
             if all(r.get(k) is not None for r in rows)}
        acc = [r["accuracy"] for r in rows]
        s["accuracy_sd"] = float(np.std(acc, ddof=1)) if len(acc) > 1 else None
        s["runs"] = len(rows)
        s["name"] = rows[0]["name"]
        out[kind] = s
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--families", nargs="+", default=[], choices=sorted(set(REGISTRY) - {"bilstm"}),
                    help="student families to (re)train in each run before comparing")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="change a setting in each run's config first (as bench/sst2.yaml "
                         "would have it now)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    command = "python bench/baselines.py " + " ".join(
        shlex.quote(a) for a in (argv or sys.argv[1:]))
    per_run, trained = [], {}
    for path in args.runs:
        run = R.Run(path)
        if run.results() is None:
            print(f"{path} has no results yet: run bench/sst2.py first", file=sys.stderr)
            return 1
        if args.set:
            run.config().with_overrides(_parse_sets(args.set)).save(run.path / "config.yaml")
        t0 = time.time()
        fams = add_families(run, args.families) if args.families else {}
        trained[str(path)] = {**fams, **add_baselines(run), "seconds": round(time.time() - t0, 1)}
        if run_stages(run, ["quantize", "compare"]) != "done":
            print(f"quantize or compare failed: {run.status()}", file=sys.stderr)
            return 1
        rows = {r["kind"]: {k: r.get(k) for k in ("name", *KEYS)}
                for r in run.results()["rows"] if r["kind"] in KINDS}
        per_run.append(rows)
        for kind, r in rows.items():
            print(f"{path.name}  {kind:20s} {100 * r['accuracy']:6.2f}%  "
                  f"b1 {r['latency_b1_ms_p50']:.3f} ms (e2e {r['latency_b1_e2e_ms_p50']:.3f})  "
                  f"{r['speedup_b1']:.1f}x  {r['size_mb']:.2f} MB", flush=True)
    res = {"command": command, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "environment": environment(), "runs": [str(p) for p in args.runs],
           "trained": trained, "per_run": per_run, "summary": summary(per_run)}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
