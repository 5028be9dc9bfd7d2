"""bench/errors_by_length.py on the tiny pipeline run."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_buckets_cover_the_split_and_identical_students_vote_as_one(finished_run):
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "errors_by_length.py"),
                          str(finished_run.path), str(finished_run.path)],
                         check=True, capture_output=True, text=True).stdout
    rows = {m[0]: [float(x) for x in m[1:]] for m in re.findall(
        r"^\| (\S+) \| (\d+) \| ([\d.]+)% \| ([\d.]+)% \| ([\d.]+)% \|$", out, re.M)}
    total = rows.pop("all")
    assert rows and sum(r[0] for r in rows.values()) == total[0]
    # The same student twice: no ties, so the vote is that student's accuracy.
    vote, alone = re.search(r"majority vote of the students: ([\d.]+)% "
                            r"\(each alone: ([\d.]+)%, ", out).groups()
    assert vote == alone == f"{total[2]:.2f}"
