"""Measure a teacher setting on SST-2: one fine-tune per seed, and their logit average.

    KDSTUDIO_DATA_DIR=../shared/data python bench/teacher_sweep.py lr5e-5 \\
        --set teacher.learning_rate=5e-5 --seeds 42 43 44

Each seed is the benchmark's teacher stage (``bench/sst2.yaml`` plus ``--set``) in its own
run folder; a fine-tune already in the runs folder's cache is reused. The script reports each
seed's validation accuracy, their mean ± sd, and the accuracy of the seeds' averaged logits
(what an ensemble teacher of those seeds would score), and records them under the setting's
name in ``bench/results/teacher-sweep.json``. The validation split chooses nothing here.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from kdstudio import runs as R
from kdstudio.cli import _parse_sets
from kdstudio.config import RunConfig
from kdstudio.data import load_task
from kdstudio.machine import cpu_description, environment
from kdstudio.pipeline import run_stages
from kdstudio.teacher import load_teacher

ROOT = Path(__file__).resolve().parent


def fine_tune_seed(config: str, sets: dict, seed: int, runs_dir: str
                   ) -> tuple[dict, np.ndarray, np.ndarray]:
    """(teacher.json of the seed's fine-tune, its validation logits, the labels)."""
    cfg = RunConfig.load(config).with_overrides({**sets, "seed": seed})
    cfg.name = f"teacher-s{seed}"
    run = R.Run.create(cfg, runs_dir)
    if run_stages(run, ["teacher"]) != "done":
        raise SystemExit(f"the teacher stage of {run.path} did not finish: {run.status()}")
    metrics = json.loads((run.file(R.TEACHER_DIR) / "teacher.json").read_text())
    task = load_task(cfg.data, cfg.seed)
    teacher = load_teacher(str(run.file(R.TEACHER_DIR)), task, "cpu", cfg.teacher.max_length)
    return metrics, teacher.predict_logits(task.validation.texts), task.validation.labels


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("name", help="the setting's name in the results file")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    ap.add_argument("--config", default=str(ROOT / "sst2.yaml"))
    ap.add_argument("--runs-dir", default="runs/teacher-sweep")
    ap.add_argument("--out", default=str(ROOT / "results" / "teacher-sweep.json"))
    args = ap.parse_args(argv)

    t0 = time.time()
    sets = _parse_sets(args.set)
    per_seed, logits, labels = [], [], None
    for seed in args.seeds:
        metrics, lg, labels = fine_tune_seed(args.config, sets, seed, args.runs_dir)
        acc = 100 * float((lg.argmax(-1) == labels).mean())
        per_seed.append({"seed": seed, "val_accuracy": round(acc, 2),
                         "best_epoch": metrics.get("best_epoch"),
                         "chosen_by": metrics.get("chosen_by"),
                         "seconds": metrics.get("seconds")})
        logits.append(lg)
        print(f"seed {seed}: {acc:.2f} (epoch {metrics.get('best_epoch')}, "
              f"{metrics.get('chosen_by')}, {metrics.get('seconds')} s)", flush=True)
    accs = [r["val_accuracy"] for r in per_seed]
    ensemble = 100 * float((np.mean(logits, axis=0).argmax(-1) == labels).mean())
    entry = {
        "sets": sets, "seeds": per_seed, "accuracy_mean": round(statistics.mean(accs), 2),
        "accuracy_sd": round(statistics.stdev(accs), 2) if len(accs) > 1 else None,
        "ensemble_accuracy": round(ensemble, 2) if len(logits) > 1 else None,
        "machine": cpu_description(environment()), "seconds": round(time.time() - t0, 1),
    }
    print(f"{args.name}: {entry['accuracy_mean']} ± {entry['accuracy_sd']} over "
          f"{len(accs)} seeds; the seeds' averaged logits: {entry['ensemble_accuracy']}")
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() else {}
    results[args.name] = entry
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
