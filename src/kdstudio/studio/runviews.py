"""Run views: which runs exist, what state they are in, and the one to open on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .. import jobs
from .. import runs as R
from ..runs import Run
from .errors import UserInputError


def runs_root() -> Path:
    return R.default_runs_root()


def get_run(run_id: str | None, root: Path | None = None) -> Run:
    """The run folder named ``run_id`` directly under the runs folder (no paths accepted)."""
    root = root or runs_root()
    if not run_id:
        raise UserInputError(
            "No run selected: run the quick demo or start a distillation first")
    if "/" in run_id or "\\" in run_id or run_id.startswith("."):
        raise UserInputError(f"{run_id!r} is not a run id")
    path = root / run_id
    if not (path / "config.yaml").exists():
        raise UserInputError(f"run {run_id!r} does not exist under {root}")
    return Run(path)


def teacher_metrics(run: Run) -> dict | None:
    """The teacher's ``teacher.json`` once the teacher stage has finished, else None."""
    d = run.file(R.TEACHER_DIR)
    if not ((d / "config.json").exists() and (d / "teacher.json").exists()):
        return None
    try:
        return json.loads((d / "teacher.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


def has_models(run: Run) -> bool:
    return (teacher_metrics(run) is not None
            and (run.file(R.STUDENTS_DIR) / "distilled" / "model.safetensors").exists())


def default_run(root: Path | None = None) -> Run | None:
    """The run to open on: the latest finished one, else the newest with trained models."""
    fin = R.latest_finished(root or runs_root())
    if fin is not None:
        return fin
    return next((r for r in R.list_runs(root or runs_root()) if has_models(r)), None)


def run_choices(root: Path | None = None) -> list[tuple[str, str]]:
    """(label, run id) for a dropdown, newest first."""
    out = []
    for run in R.list_runs(root or runs_root()):
        st = jobs.reconcile(run)
        acc = _best_student_accuracy(run)
        extra = f" · {acc:.1%}" if acc is not None else ""
        out.append((f"{run.id} · {st.get('status')}{extra}", run.id))
    return out


def _best_student_accuracy(run: Run) -> float | None:
    res = read_results(run)
    if not res:
        return None
    row = next((r for r in res["rows"] if r.get("kind") == "student-int8"), None)
    return None if row is None else float(row["accuracy"])


def run_rows(root: Path | None = None, limit: int = 30) -> list[list[Any]]:
    """Rows for the runs table: id, status, stage, teacher acc., int8 student acc., message."""
    rows = []
    for run in R.list_runs(root or runs_root())[:limit]:
        st = jobs.reconcile(run)
        t = teacher_metrics(run)
        s = _best_student_accuracy(run)
        rows.append([run.id, st.get("status"), st.get("stage") or "",
                     "" if not t else f"{t.get('val_accuracy', 0):.1%}",
                     "" if s is None else f"{s:.1%}", (st.get("message") or "")[:120]])
    return rows


def read_results(run: Run) -> dict | None:
    try:
        return run.results()
    except (OSError, json.JSONDecodeError):
        return None


def active_job(root: Path | None = None) -> Run | None:
    """The run whose job is running now, if any (one job at a time)."""
    return jobs.active_job(root or runs_root())
