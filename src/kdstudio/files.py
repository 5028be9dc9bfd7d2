"""Writing files so that no reader ever sees half of one, and no write reaches another run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed onto it when the block succeeds.

    Readers (the studio, another process) see the old file or the new one, never a part;
    and the rename replaces a hard-linked file rather than writing through the link into
    the run or cache it came from. The temporary file keeps ``path``'s suffix, which some
    writers read the format from.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
