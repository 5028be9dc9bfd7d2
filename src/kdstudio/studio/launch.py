"""Starting and cancelling jobs from the studio: one job at a time, each in its own process."""

from __future__ import annotations

import shutil
from pathlib import Path

from .. import jobs
from .. import runs as R
from ..config import RunConfig
from ..runs import Run
from .errors import UserInputError
from .runviews import runs_root, teacher_metrics
from .uploads import load_task_cached

#: Stages run on a new run that reuses a finished teacher.
AFTER_TEACHER = ["augment", "student", "quantize", "compare"]


def _busy_message(root: Path) -> str | None:
    busy = jobs.active_job(root)
    if busy is None:
        return None
    st = busy.status()
    return (f"Run {busy.id} is still running ({st.get('stage') or 'starting'}). One job at "
            "a time: wait for it to finish or cancel it on the Distillation tab")


def _start(run: Run, stages: list[str], root: Path) -> None:
    try:
        jobs.start(run, stages)
    except jobs.JobBusy:
        # Lost a race with another Start: leave no half-made run folder behind.
        shutil.rmtree(run.path, ignore_errors=True)
        raise UserInputError(_busy_message(root) or "another job is running") from None


def start_run(cfg: RunConfig, stages: list[str] | None = None, root: Path | None = None
              ) -> Run:
    """Create a run folder for ``cfg`` and start ``stages`` (default: all) as a child job."""
    root = root or runs_root()
    msg = _busy_message(root)
    if msg:
        raise UserInputError(msg)
    run = Run.create(cfg, root)
    _start(run, list(stages or R.STAGES), root)
    return run


def reusable_teacher(parent: Run | None, cfg: RunConfig) -> bool:
    """Whether ``parent`` has a finished teacher trained on the data ``cfg`` asks for (the
    same texts and labels, by content: naming a detected column explicitly changes nothing)."""
    if parent is None or teacher_metrics(parent) is None:
        return False
    try:
        pcfg = parent.config()
        mine = load_task_cached(cfg.data, cfg.seed)
        theirs = load_task_cached(pcfg.data, pcfg.seed)
    except (ValueError, OSError):
        return False
    return (mine.fingerprint() == theirs.fingerprint()
            and mine.label_names == theirs.label_names)


def start_distillation(cfg: RunConfig, parent: Run | None = None, root: Path | None = None
                       ) -> tuple[Run, str]:
    """Start distilling into a new run. If ``parent`` holds a finished teacher for the same
    data, the new run links its files and skips fine-tuning. Returns (run, what happens)."""
    from ..transfer import link_or_copy

    root = root or runs_root()
    if not reusable_teacher(parent, cfg):
        run = start_run(cfg, None, root)
        how = ("loading the fine-tuned teacher" if cfg.teacher.pretrained
               else "fine-tuning the teacher") + ", then augment, student, quantize, compare"
        return run, how
    msg = _busy_message(root)
    if msg:
        raise UserInputError(msg)
    assert parent is not None
    src = parent.file(R.TEACHER_DIR)
    cfg = cfg.with_overrides({"teacher.pretrained": str(src)})
    run = Run.create(cfg, root)
    for f in src.iterdir():
        if f.is_file():
            link_or_copy(f, run.file(R.TEACHER_DIR) / f.name)
    run.log("teacher_reused", source_run=parent.id, metrics=teacher_metrics(parent))
    _start(run, AFTER_TEACHER, root)
    return run, f"reusing the teacher of run {parent.id}, then " + ", ".join(AFTER_TEACHER)


def cancel(run: Run, grace: float = 15.0) -> str:
    st = jobs.reconcile(run)
    if st.get("status") != "running":
        raise UserInputError(f"run {run.id} is not running ({st.get('status')}); nothing to "
                             "cancel")
    jobs.cancel(run, grace=grace)
    return (f"Cancel requested for {run.id}: it stops at the next step and keeps what it has "
            f"saved (forced after {grace:.0f} s)")


def cancel_active(root: Path | None = None) -> str | None:
    """Cancel the running job; None when nothing runs."""
    run = jobs.active_job(root or runs_root())
    return None if run is None else cancel(run)


def resume(run: Run, root: Path | None = None) -> str:
    """Start the stages a failed or cancelled run did not finish, in that run's folder."""
    root = root or runs_root()
    msg = _busy_message(root)
    if msg:
        raise UserInputError(msg)
    try:
        stages = R.stages_left(run)
    except ValueError as e:
        raise UserInputError(str(e)) from None
    try:
        jobs.start(run, stages)
    except jobs.JobBusy:
        raise UserInputError(_busy_message(root) or "another job is running") from None
    return f"Resumed run {run.id}: {', '.join(stages)} (what it saved before is reused)"
