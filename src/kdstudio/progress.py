"""Progress reports that loops hand to their ``on_step`` callback, and the cancel signal.

Loops know nothing about who listens: the CLI turns a :class:`Progress` into a terminal bar,
the pipeline into ``progress`` events in the run folder, the UI reads those events.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


class StopRequested(Exception):
    """Raised when a stage is cancelled before it has anything worth keeping."""


@dataclass
class Progress:
    stage: str
    total: int
    step: int = 0
    started: float = field(default_factory=time.time)
    metrics: dict[str, Any] = field(default_factory=dict)

    def update(self, step: int, **metrics: Any) -> None:
        self.step = step
        self.metrics.update(metrics)

    @property
    def elapsed(self) -> float:
        return time.time() - self.started

    @property
    def eta(self) -> float | None:
        if self.step <= 0 or self.total <= 0:
            return None
        return self.elapsed / self.step * max(0, self.total - self.step)

    def as_event(self) -> dict[str, Any]:
        return {"stage": self.stage, "step": self.step, "total": self.total,
                "elapsed": round(self.elapsed, 2),
                "eta": None if self.eta is None else round(self.eta, 2), **self.metrics}
