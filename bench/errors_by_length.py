"""Where the distilled students and the teacher part ways: accuracy by sentence length.

    KDSTUDIO_DATA_DIR=../shared/data python bench/errors_by_length.py \
        runs/bench-cold/<run>-s1 runs/bench-cold/<run>-s2 ... [--student distilled]

Reads each run's student (``students/<name>``) and the first run's teacher, predicts the
validation split, and prints per length bucket (in words): the teacher's accuracy, the
students' mean accuracy and their agreement with the teacher, then the accuracy of the
students' majority vote (ties count as wrong), which says how much of the gap to the
teacher is the students' variance and how much they share.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

#: Length buckets in words: (name, lowest, one past the highest).
BUCKETS = (("0-9", 0, 10), ("10-19", 10, 20), ("20-29", 20, 30), ("30+", 30, None))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--student", default="distilled")
    args = ap.parse_args(argv)

    import torch

    from kdstudio import runs as R
    from kdstudio.compare import student_predictor, teacher_predictor
    from kdstudio.data import load_task
    from kdstudio.teacher import load_teacher

    torch.set_num_threads(2)
    first = R.Run(args.runs[0])
    cfg = first.config()
    task = load_task(cfg.data, cfg.seed)
    texts, y = list(task.validation.texts), np.asarray(task.validation.labels)
    teacher = load_teacher(str(first.file(R.TEACHER_DIR)), task)
    t = teacher_predictor(teacher).predict(texts).argmax(1)
    s = np.stack([student_predictor(args.student, run / "students" / args.student,
                                    teacher.tokenizer, cfg.student.max_length
                                    ).predict(texts).argmax(1) for run in args.runs])
    words = np.array([len(x.split()) for x in texts])
    print(f"{len(args.runs)} students ({args.student}), {len(texts)} validation sentences")
    print("| words | sentences | teacher | students (mean) | agreement with the teacher |")
    print("| --- | --- | --- | --- | --- |")
    for name, lo, hi in (*BUCKETS, ("all", 0, None)):
        m = (words >= lo) & (words < (hi or words.max() + 1))
        print(f"| {name} | {m.sum()} | {(t[m] == y[m]).mean():.2%} | "
              f"{(s[:, m] == y[m]).mean():.2%} | {(s[:, m] == t[m]).mean():.2%} |")
    counts = np.stack([(s == c).sum(0) for c in range(int(s.max()) + 1)])
    top = counts.max(0)
    vote = np.where((counts == top).sum(0) == 1, counts.argmax(0), -1)  # -1: a tie
    print(f"majority vote of the students: {(vote == y).mean():.2%} "
          f"(each alone: {', '.join(f'{a:.2%}' for a in (s == y).mean(1))})")


if __name__ == "__main__":
    main()
