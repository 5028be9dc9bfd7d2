"""How the teacher's labelling engines compare on a sample of a run's transfer set.

    KDSTUDIO_DATA_DIR=../shared/data python bench/label_engines.py runs/bench-cold/<run> \
        --sample 6000 --out bench/results/label-engines-cpu.json

For each engine (PyTorch eager, ONNX Runtime fp32, ONNX Runtime int8 with per-channel
weights) it labels the same random sample of the run's transfer-set sentences and the
validation split, in a fresh process each (a thread pool left spinning by another session
slows the next one on a 2-core machine, bench/NOTES.md), and reports sentences per second,
validation accuracy, and how the logits differ from PyTorch's: mean squared difference,
largest difference, and the share of sentences whose argmax agrees. The run needs a teacher
(the ONNX graphs are taken from, or written to, the run's cache folder).
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

ENGINES = ("torch", "onnx", "onnx-int8")


def _label(run_dir: str, engine: str, sample: int, out: str) -> None:
    import torch

    from kdstudio import runs as R
    from kdstudio.data import load_task
    from kdstudio.pipeline import use_label_engine
    from kdstudio.teacher import fingerprint, load_teacher
    from kdstudio.transfer import read_transfer_set

    torch.set_num_threads(2)
    run = R.Run(Path(run_dir))
    cfg = run.config()
    task = load_task(cfg.data, cfg.seed)
    teacher = load_teacher(str(run.file(R.TEACHER_DIR)), task, "cpu", cfg.teacher.max_length)
    use_label_engine(run, teacher, engine, fingerprint(run.file(R.TEACHER_DIR)))
    texts, _, _ = read_transfer_set(run.file(R.TRANSFER_FILE))
    pick = np.random.default_rng(0).choice(len(texts), min(sample, len(texts)), replace=False)
    texts = [texts[i] for i in np.sort(pick)]
    bs = cfg.teacher.eval_batch_size
    teacher.predict_logits(texts[:256], bs)  # warm-up
    t0 = time.perf_counter()
    logits = teacher.predict_logits(texts, bs)
    seconds = time.perf_counter() - t0
    val = teacher.predict_logits(task.validation.texts, bs)
    np.savez(out, logits=logits, seconds=seconds,
             val_accuracy=float((val.argmax(1) == task.validation.labels).mean()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a run folder with a teacher and a transfer set")
    ap.add_argument("--sample", type=int, default=6000)
    ap.add_argument("--out", help="write the JSON here too")
    ap.add_argument("--_engine", help=argparse.SUPPRESS)
    ap.add_argument("--_to", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._engine:
        _label(args.run, args._engine, args.sample, args._to)
        return 0
    got = {}
    with tempfile.TemporaryDirectory() as tmp:
        for engine in ENGINES:
            to = str(Path(tmp) / f"{engine}.npz")
            subprocess.run([sys.executable, __file__, args.run, "--sample", str(args.sample),
                            "--_engine", engine, "--_to", to], check=True)
            got[engine] = dict(np.load(to))
    ref = got["torch"]["logits"]
    rows = []
    for engine in ENGINES:
        g = got[engine]
        d = g["logits"] - ref
        rows.append({"engine": engine, "sentences": len(ref),
                     "sentences_per_second": round(len(ref) / float(g["seconds"]), 1),
                     "val_accuracy": round(float(g["val_accuracy"]), 4),
                     "mse_vs_torch": float((d ** 2).mean()),
                     "max_abs_diff_vs_torch": float(np.abs(d).max()),
                     "argmax_agreement_vs_torch": float(
                         (g["logits"].argmax(1) == ref.argmax(1)).mean())})
    text = json.dumps({"run": args.run, "rows": rows}, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
