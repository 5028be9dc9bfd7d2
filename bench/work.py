"""Multiply-adds per validation sentence for the teacher and the BiLSTM student, and the rate
each committed benchmark run got through them: what bounds the int8 speed-ups.

    KDSTUDIO_DATA_DIR=../shared/data python bench/work.py <benchmark run folder> \
        [--out bench/results/work.json]

A dense layer does one multiply-add per weight per input row, so the counts come from the
run's own models and the inputs Compare times: each sentence alone (batch 1), and the
validation set in Compare's length buckets of 32, padding included as the graphs compute it.
Attention adds 2·L²·d per layer and sentence (scores and weighted sum). Lookups, norms and
activations are left out. The rates come from every committed run whose student has the run's
shape (``bench/speed_range.py``): a speed-up is the teacher's work over the student's times
the student's rate over the teacher's. Runs from before Compare's length buckets are left out:
they timed batches in the split's order, which these counts do not describe.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from kdstudio.compare import length_buckets
from kdstudio.config import RunConfig
from kdstudio.data import load_task
from kdstudio.student import load_student
from kdstudio.teacher import load_teacher
from kdstudio.tokens import model_inputs

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))  # bench/speed_range.py, also when loaded by file path
from speed_range import runs_of_shape  # noqa: E402


def dense_weights(modules) -> int:
    """Multiply-adds per input row of these modules' matrices: one per weight."""
    return sum(p.numel() for m in modules for name, p in m.named_parameters()
               if p.dim() == 2 and "embed" not in name)


def teacher_macs(model, shape: tuple[int, int]) -> float:
    """Multiply-adds of a BERT-style classifier on a (batch, length) input."""
    b, length = shape
    base = model.base_model
    per_token = dense_weights([base.encoder])
    per_sentence = dense_weights([model]) - per_token  # pooler and classifier
    cfg = model.config
    attention = cfg.num_hidden_layers * 2 * length * length * cfg.hidden_size
    return b * (length * per_token + attention + per_sentence)


def student_macs(model, shape: tuple[int, int]) -> float:
    """Multiply-adds of the BiLSTM classifier on a (batch, length) input."""
    b, length = shape
    per_token = dense_weights([model.fwd, model.bwd])
    return b * (length * per_token + dense_weights([model.fc, model.out]))


def per_sentence(macs, encode, texts: list[str], batch_size: int) -> tuple[float, float]:
    """Mean multiply-adds per sentence at batch 1 and in Compare's length buckets."""
    b1 = np.mean([macs(encode([t]).shape) for t in texts])
    buckets = length_buckets(texts, batch_size)
    return float(b1), sum(macs(encode(b).shape) for b in buckets) / len(texts)


def count(run: Path) -> dict:
    cfg = RunConfig.load(run / "config.yaml")
    texts = load_task(cfg.data, cfg.seed).validation.texts
    teacher = load_teacher(str(run / "teacher"), max_length=cfg.teacher.max_length)
    student, vocab, _ = load_student(run / "students" / "distilled")
    tok, n = teacher.tokenizer, cfg.compare.throughput_batch_size
    t = per_sentence(lambda s: teacher_macs(teacher.model, s),
                     lambda x: model_inputs(tok, x, teacher.max_length)["input_ids"], texts, n)
    s = per_sentence(lambda s: student_macs(student, s),
                     lambda x: vocab.encode(tok, x, cfg.student.max_length), texts, n)
    return {"run": run.name, "shape": [cfg.student.hidden_size, cfg.student.embedding_dim],
            "batch_size": n, "sentences": len(texts),
            "teacher_macs_b1": t[0], "teacher_macs_b32": t[1],
            "student_macs_b1": s[0], "student_macs_b32": s[1]}


def rates(work: dict, runs: list[dict]) -> list[dict]:
    """Each run's multiply-adds per second, teacher and int8 student, at batch 1 (median call)
    and batch 32."""
    return [{"file": r["file"], "machine": r["machine"],
             "teacher_gmacs_b1": work["teacher_macs_b1"] / r["teacher_b1_ms"] / 1e6,
             "int8_gmacs_b1": work["student_macs_b1"] / r["int8_b1_ms"] / 1e6,
             "teacher_gmacs_b32": work["teacher_macs_b32"] * r["teacher_b32_per_s"] / 1e9,
             "int8_gmacs_b32": work["student_macs_b32"] * r["int8_b32_per_s"] / 1e9,
             "speedup_b1": r["speedup_b1"], "speedup_b32": r["speedup_b32"]}
            for r in runs if r["buckets"]]


def render(work: dict, rows: list[dict], targets: tuple[float, float] = (50, 100)) -> str:
    n = work["batch_size"]
    r1 = work["teacher_macs_b1"] / work["student_macs_b1"]
    r32 = work["teacher_macs_b32"] / work["student_macs_b32"]
    lines = [
        f"Multiply-adds per sentence ({work['sentences']} validation sentences):",
        f"  teacher  {work['teacher_macs_b1'] / 1e6:8.1f} M at batch 1, "
        f"{work['teacher_macs_b32'] / 1e6:8.1f} M at batch {n}",
        f"  student  {work['student_macs_b1'] / 1e6:8.2f} M at batch 1, "
        f"{work['student_macs_b32'] / 1e6:8.2f} M at batch {n}",
        f"  the student does 1/{r1:.1f} of the teacher's work at batch 1 and 1/{r32:.1f} at "
        f"batch {n}: {targets[0]:g}x at batch 1 needs it to get through {targets[0] / r1:.2f}x "
        f"the teacher's multiply-adds per second, {targets[1]:g}x at batch {n} "
        f"{targets[1] / r32:.2f}x", "",
        "| results file | CPU | teacher, b1 (GMAC/s) | int8, b1 (GMAC/s) | int8 / teacher, b1 "
        f"| teacher, b{n} | int8, b{n} | int8 / teacher, b{n} | speed-up, b1 | speed-up, b{n} |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['file']} | {r['machine']} | {r['teacher_gmacs_b1']:.1f} "
              f"| {r['int8_gmacs_b1']:.1f} | {r['int8_gmacs_b1'] / r['teacher_gmacs_b1']:.2f}x "
              f"| {r['teacher_gmacs_b32']:.1f} | {r['int8_gmacs_b32']:.1f} "
              f"| {r['int8_gmacs_b32'] / r['teacher_gmacs_b32']:.2f}x "
              f"| {r['speedup_b1']:.1f}x | {r['speedup_b32']:.1f}x |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a benchmark run folder (bench/sst2.py --runs-dir)")
    ap.add_argument("--results", default=str(ROOT / "results"))
    ap.add_argument("--out", type=Path, help="also write the counts and rates as JSON")
    args = ap.parse_args(argv)
    work = count(args.run)
    rows = rates(work, runs_of_shape(list(Path(args.results).glob("sst2*.json")),
                                     tuple(work["shape"])))
    print(render(work, rows))
    if args.out:
        args.out.write_text(json.dumps({"work": work, "runs": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
