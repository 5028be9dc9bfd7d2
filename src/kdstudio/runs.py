"""Run folders: the single source of truth for a pipeline run.

A run folder holds ``config.yaml``, ``status.json`` (one of :data:`Status`, the current
stage, a message), an append-only ``events.jsonl`` (stage start/finish, progress, losses,
metrics, errors) and the artifacts each stage writes. Whoever shows a run (CLI, UI, a second
browser after a restart) reads it from here.

Under a distributed launcher (``accelerate launch``, ``torchrun``, ``mpirun``) several
processes share one run folder: only the main one (rank 0) writes the status, the events and
the cancel flag; the others' calls are no-ops (see :func:`process_rank`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from .config import RunConfig
from .files import write_text_atomic

Status = Literal["created", "running", "done", "failed", "cancelled"]
STAGES = ("teacher", "augment", "student", "quantize", "compare")

#: Artifact paths inside a run folder, relative to it.
TEACHER_DIR = "teacher"
TRANSFER_FILE = "transfer.parquet"
STUDENTS_DIR = "students"
ONNX_DIR = "onnx"
RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
#: The teacher's and the distilled student's validation logits, saved by the compare stage.
PREDICTIONS = "predictions.npz"
CANCEL_FLAG = "CANCEL"


def default_runs_root() -> Path:
    return Path(os.environ.get("KDSTUDIO_RUNS_DIR", "runs")).resolve()


#: (rank, world size) variables of the launchers: torchrun / accelerate launch, Open MPI,
#: MPICH / Intel MPI, MVAPICH.
_RANK_VARS = (("RANK", "WORLD_SIZE"), ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
              ("PMI_RANK", "PMI_SIZE"), ("MV2_COMM_WORLD_RANK", "MV2_COMM_WORLD_SIZE"))


def process_rank() -> tuple[int, int]:
    """(rank, number of processes) of this process under a distributed launcher; (0, 1) in
    a plain process. Read from the environment, so it is known before any process group."""
    for rank, size in _RANK_VARS:
        if os.environ.get(size):
            return int(os.environ.get(rank) or 0), int(os.environ[size])
    return 0, 1


def is_main_process() -> bool:
    return process_rank()[0] == 0


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Run:
    """A handle on one run folder."""

    path: Path

    # ---- creation and lookup -------------------------------------------------------
    @classmethod
    def create(cls, config: RunConfig, root: str | Path | None = None) -> Run:
        root = Path(root) if root else default_runs_root()
        root.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in config.name)[:40]
        path = root / f"{stamp}-{safe}"
        n = 1
        while path.exists():
            n += 1
            path = root / f"{stamp}-{safe}-{n}"
        path.mkdir()
        run = cls(path)
        config.save(path / "config.yaml")
        run.set_status("created", stage=None, message="")
        return run

    @property
    def id(self) -> str:
        return self.path.name

    def config(self) -> RunConfig:
        return RunConfig.load(self.path / "config.yaml")

    def file(self, rel: str) -> Path:
        return self.path / rel

    # ---- status --------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        p = self.path / "status.json"
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return {"status": "created", "stage": None, "message": ""}

    def set_status(self, status: Status, stage: str | None = None, message: str = "",
                   **extra: Any) -> None:
        if not is_main_process():
            return
        d = self.status() if (self.path / "status.json").exists() else {}
        d.update({"status": status, "stage": stage, "message": message, "updated": _now()})
        d.update(extra)
        write_text_atomic(self.path / "status.json", json.dumps(d, indent=1))

    # ---- events --------------------------------------------------------------------
    def log(self, kind: str, **data: Any) -> None:
        """Append one event; each line is a complete JSON object (safe to tail while written)."""
        if not is_main_process():
            return
        data = {"time": time.time(), "kind": kind, **data}
        line = json.dumps(data, default=_json_default)
        with open(self.path / "events.jsonl", "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        return list(self.iter_events(kind))

    def iter_events(self, kind: str | None = None) -> Iterator[dict[str, Any]]:
        p = self.path / "events.jsonl"
        if not p.exists():
            return
        with open(p, encoding="utf-8") as f:
            for line in f:
                if not line.endswith("\n"):
                    break  # a line still being written
                try:
                    ev = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if kind is None or ev.get("kind") == kind:
                    yield ev

    # ---- cancellation --------------------------------------------------------------
    def request_cancel(self) -> None:
        (self.path / CANCEL_FLAG).write_text(_now())

    def cancel_requested(self) -> bool:
        return (self.path / CANCEL_FLAG).exists()

    def clear_cancel(self) -> None:
        if not is_main_process():
            return
        (self.path / CANCEL_FLAG).unlink(missing_ok=True)

    # ---- results -------------------------------------------------------------------
    def results(self) -> dict[str, Any] | None:
        p = self.path / RESULTS_JSON
        if not p.exists():
            return None
        return json.loads(p.read_text(encoding="utf-8"))


def _json_default(o: Any) -> Any:
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
    except ImportError:  # pragma: no cover
        pass
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def list_runs(root: str | Path | None = None) -> list[Run]:
    """Runs under ``root``, newest first."""
    root = Path(root) if root else default_runs_root()
    if not root.exists():
        return []
    runs = [Run(p) for p in root.iterdir() if (p / "config.yaml").exists()]
    # Folder names start with a timestamp, so name order is creation order.
    return sorted(runs, key=lambda r: r.path.name, reverse=True)


def latest_finished(root: str | Path | None = None) -> Run | None:
    for run in list_runs(root):
        if run.status().get("status") == "done" and run.results() is not None:
            return run
    return None


def stages_left(run: Run) -> list[str]:
    """The stages a failed or cancelled run still has to run, in order: those of its first
    plan from the first one that never finished (what the finished ones saved is reused)."""
    status = run.status().get("status")
    if status not in ("failed", "cancelled"):
        raise ValueError(f"run {run.id} is {status}: only a failed or cancelled run can be "
                         "resumed")
    events = run.events()
    plan = next((e.get("stages") for e in events if e["kind"] == "run_started"), None)
    plan = list(plan or STAGES)
    finished = {e["stage"] for e in events if e["kind"] == "stage_finished"}
    first = next((i for i, s in enumerate(plan) if s not in finished), len(plan))
    return plan[first:]
