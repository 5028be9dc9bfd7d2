"""Start pipeline stages as a child process, see whether it runs, cancel it.

The child is ``python -m kdstudio stages <run> --stages ...`` in a new process group, so a
crash, an out-of-memory kill or a hard cancel costs the job and never the caller (the web
server); its output goes to ``job.log`` in the run folder. Cancel is cooperative first (the
run's CANCEL flag, which the loops check every step) and forceful after a grace period
(SIGTERM, then SIGKILL, to the whole group). One job at a time per runs folder.
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from . import runs as R
from .runs import Run


def in_fresh_process(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` in a newly spawned Python process; its result (or its
    exception) comes back here. ``fn`` and the arguments must pickle."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as ex:
        return ex.submit(fn, *args, **kwargs).result()


class JobBusy(RuntimeError):
    """Another job is already running under the same runs folder."""


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited; only its parent has not reaped it yet
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def is_running(run: Run) -> bool:
    st = run.status()
    return st.get("status") == "running" and pid_alive(st.get("pid"))


def reconcile(run: Run) -> dict:
    """Status of ``run``, corrected if it says running but its process is gone."""
    st = run.status()
    if st.get("status") == "running" and not pid_alive(st.get("pid")):
        if run.cancel_requested():
            run.set_status("cancelled", stage=st.get("stage"),
                           message="cancelled (the job process was stopped)")
        else:
            run.set_status("failed", stage=st.get("stage"),
                           message="the job process ended unexpectedly; see job.log")
        run.log("error", stage=st.get("stage"), message=run.status()["message"])
        st = run.status()
    return st


def active_job(root: str | Path | None = None) -> Run | None:
    for run in R.list_runs(root):
        if is_running(run):
            return run
    return None


@contextmanager
def _root_lock(root: Path):
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".jobs.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def start(run: Run, stages: list[str] | None = None, env: dict | None = None
          ) -> subprocess.Popen:
    """Start ``stages`` of ``run`` in a child process. Raises :class:`JobBusy` if another
    job runs under the same runs folder."""
    stages = list(stages or R.STAGES)
    root = run.path.parent
    with _root_lock(root):
        busy = active_job(root)
        if busy is not None:
            raise JobBusy(f"run {busy.id} is still running ({busy.status().get('stage')}); "
                          "wait for it to finish or cancel it first")
        run.clear_cancel()
        log = open(run.path / "job.log", "ab")
        child_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        proc = subprocess.Popen(
            [sys.executable, "-m", "kdstudio", "stages", str(run.path), "--stages",
             ",".join(stages)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, env=child_env, cwd=os.getcwd())
        log.close()
        # Say "running" now, so a page polling right after Start sees the job.
        run.set_status("running", stage=stages[0], message="starting", pid=proc.pid,
                       started=time.time())
    threading.Thread(target=_reap, args=(proc, run), daemon=True).start()
    return proc


def _reap(proc: subprocess.Popen, run: Run) -> None:
    proc.wait()
    reconcile(run)


def cancel(run: Run, grace: float = 15.0, wait: bool = False) -> None:
    """Ask the job to stop; terminate its process group if it has not after ``grace`` s."""
    run.request_cancel()
    pid = run.status().get("pid")
    if not pid_alive(pid):
        reconcile(run)
        return

    def force() -> None:
        deadline = time.time() + grace
        while time.time() < deadline:
            if not pid_alive(pid):
                return
            time.sleep(0.2)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                break
            t_end = time.time() + 5
            while time.time() < t_end and pid_alive(pid):
                time.sleep(0.1)
            if not pid_alive(pid):
                break
        reconcile(run)

    if wait:
        force()
    else:
        threading.Thread(target=force, daemon=True).start()
