"""What the progress panel shows about a run, read from its status and events."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import jobs
from .. import runs as R
from ..runs import Run
from .runviews import runs_root


@dataclass
class Snapshot:
    """What the Distillation tab shows about one run, read from its folder."""

    run_id: str
    status: str
    stage: str | None
    message: str
    stages: list[tuple[str, str]]  # (stage, "done" | "running" | "pending" | "failed" ...)
    progress: dict[str, Any]  # the latest progress event of the current stage
    elapsed: float | None  # seconds since the job started
    device: str
    curves: dict[str, dict[str, list[float]]]  # stage → steps/loss/val_steps/val_accuracy
    teacher_reused_from: str | None = None
    #: Seconds the whole job still needs: this stage's estimate plus the stages to come as
    #: long as they took in the newest finished run of the same settings' name; None when
    #: there is nothing to go by.
    job_remaining: float | None = None


def snapshot(run: Run) -> Snapshot:
    st = jobs.reconcile(run)
    events = run.events()
    started_at = max((i for i, e in enumerate(events) if e["kind"] == "run_started"),
                     default=None)
    recent = events[started_at:] if started_at is not None else events
    planned = (recent[0].get("stages") if recent and recent[0]["kind"] == "run_started"
               else None) or list(R.STAGES)
    finished = {e["stage"] for e in recent if e["kind"] == "stage_finished"}
    status, cur = st.get("status", "created"), st.get("stage")
    stages = []
    for s in planned:
        if s in finished:
            state = "done"
        elif s == cur and status == "running":
            state = "running"
        elif s == cur and status in ("failed", "cancelled"):
            state = status
        else:
            state = "pending"
        stages.append((s, state))
    progress = [e for e in recent if e["kind"] == "progress"]
    last = progress[-1] if progress else {}
    if cur and last and not str(last.get("stage", "")).startswith(cur):
        last = {}  # the current stage has not reported yet
    curves: dict[str, dict[str, list[float]]] = {}
    for e in progress:
        c = curves.setdefault(e["stage"], {"steps": [], "loss": [], "val_steps": [],
                                           "val_accuracy": []})
        if e.get("loss") is not None:
            c["steps"].append(e["step"])
            c["loss"].append(e["loss"])
        # Every event repeats the last validation accuracy; eval_step says which step it
        # was measured at, so each evaluation becomes one point.
        val, at = e.get("val_accuracy"), e.get("eval_step", e["step"])
        if val is not None and (not c["val_steps"] or c["val_steps"][-1] != at):
            c["val_steps"].append(at)
            c["val_accuracy"].append(val)
    t_start = st.get("started")
    end = None if status == "running" else _updated_ts(st)
    elapsed = None if not t_start else max(0.0, (end or time.time()) - t_start)
    reused = next((e.get("source_run") for e in events if e["kind"] == "teacher_reused"), None)
    remaining = None
    if status == "running":
        pending = [s for s, state in stages if state == "pending"]
        remaining = _job_remaining(run, last.get("eta"), pending)
    return Snapshot(run.id, status, cur, st.get("message") or "", stages, last, elapsed,
                    _device(run, last), curves, reused, remaining)


def _job_remaining(run: Run, stage_eta: float | None, pending: list[str]) -> float | None:
    if stage_eta is None:
        return None
    if not pending:
        return float(stage_eta)
    past = _stage_seconds_of_a_like_run(run)
    if not all(s in past for s in pending):
        return None
    return float(stage_eta) + sum(past[s] for s in pending)


def _stage_seconds_of_a_like_run(run: Run) -> dict[str, float]:
    """Stage → seconds in the newest finished run with the same settings' name."""
    try:
        name = run.config().name
    except ValueError:
        return {}
    for other in R.list_runs(run.path.parent):
        if other.path == run.path or other.status().get("status") != "done":
            continue
        try:
            if other.config().name != name:
                continue
        except ValueError:
            continue
        return {e["stage"]: float(e.get("seconds") or 0)
                for e in other.events() if e["kind"] == "stage_finished"}
    return {}


def _updated_ts(st: dict) -> float | None:
    from datetime import datetime

    try:
        return datetime.fromisoformat(st["updated"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return None


def _device(run: Run, last: dict) -> str:
    dev = last.get("device")
    if dev:
        name = "GPU" if str(dev).startswith("cuda") else "CPU"
        return f"{name}, bfloat16" if last.get("precision") == "bf16" else name
    try:
        want = run.config().device
    except ValueError:
        want = "auto"
    if want == "cpu":
        return "CPU"
    import torch

    return "GPU" if torch.cuda.is_available() else "CPU"


def watch_target(watched: str | None, root: Path | None = None) -> Run | None:
    """The run the progress panel follows: the running job, else the session's last
    started run, else the newest run."""
    root = root or runs_root()
    active = jobs.active_job(root)
    if active is not None:
        return active
    if watched and (root / watched / "config.yaml").exists():
        return Run(root / watched)
    all_runs = R.list_runs(root)
    return all_runs[0] if all_runs else None
