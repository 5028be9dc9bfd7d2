"""Uploads and data: check and keep uploaded files, read a file's columns, load a task once."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

from ..config import DataConfig
from ..data import FILE_SUFFIXES, DataError, TaskData, load_task, read_table
from ..files import atomic_path
from .cache import VersionedCache
from .errors import UserInputError
from .runviews import runs_root

#: Uploads larger than this are refused before anything is read (override for tests/Spaces).
DEFAULT_MAX_UPLOAD_MB = 50.0
UPLOADS_DIR = "_uploads"


def max_upload_bytes() -> int:
    mb = float(os.environ.get("KDSTUDIO_MAX_UPLOAD_MB", DEFAULT_MAX_UPLOAD_MB))
    return int(mb * 1e6)


def check_upload(path: str | Path) -> Path:
    """Refuse an uploaded file that is missing, too large or of a type we cannot read."""
    p = Path(path)
    if not p.is_file():
        raise UserInputError("the upload did not arrive; upload the file again")
    if p.suffix.lower() not in FILE_SUFFIXES:
        raise UserInputError(
            f"{p.name}: unsupported file type {p.suffix or '(none)'}; upload one of "
            f"{', '.join(FILE_SUFFIXES)}")
    size, limit = p.stat().st_size, max_upload_bytes()
    if size > limit:
        raise UserInputError(
            f"{p.name} is {size / 1e6:.1f} MB; the limit is {limit / 1e6:.0f} MB. Upload a "
            "smaller sample, or give a Hub id or a path on the server instead")
    return p


def is_stored_upload(path: str | Path, root: Path | None = None) -> bool:
    root = (root or runs_root()).resolve()
    try:
        Path(path).resolve().relative_to(root / UPLOADS_DIR)
        return True
    except ValueError:
        return False


def store_upload(path: str | Path, root: Path | None = None) -> Path:
    """Copy an upload to ``<runs>/_uploads/<content hash>/<name>`` (idempotent), so the job
    child and later sessions can read it after the web server's temp files are gone."""
    src = check_upload(path)
    if is_stored_upload(src, root):
        return src
    h = hashlib.sha256()
    with open(src, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    name = re.sub(r"[^A-Za-z0-9._-]", "_", src.name) or f"upload{src.suffix}"
    dst = (root or runs_root()) / UPLOADS_DIR / h.hexdigest()[:16] / name
    if not dst.exists():
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)
    return dst


def table_columns(dataset: str) -> list[str]:
    """Column names of a data file, or of a data folder's train file; [] for Hub ids."""
    p = Path(dataset).expanduser()
    if p.is_dir():
        p = next((p / f"train{s}" for s in FILE_SUFFIXES if (p / f"train{s}").exists()), p)
    if not p.is_file():
        return []
    try:
        return list(read_table(p).columns)
    except DataError:
        return []


_TASKS: VersionedCache[TaskData] = VersionedCache(4)


def load_task_cached(cfg: DataConfig, seed: int = 42) -> TaskData:
    """:func:`data.load_task`, remembered for the last few configs (SST-2 parses in ~1 s)."""
    key = json.dumps([cfg.to_dict(), cfg.resolved_data_dir(), seed], sort_keys=True)
    return _TASKS.get(key, _mtime(cfg.dataset), lambda: load_task(cfg, seed))


def _mtime(path: str) -> float | None:
    try:
        return Path(path).expanduser().stat().st_mtime
    except OSError:
        return None


def dataset_title(dataset: str) -> str:
    """A data source's name for the screen: a built-in name, or a file's name (no path)."""
    from ..data import KNOWN_DATASETS

    if dataset.lower() in KNOWN_DATASETS:
        return "SST-2"
    return Path(dataset).name or dataset


def check_model_ref(ref: str) -> None:
    """Fail now, before any job starts, on a local teacher path that does not exist."""
    from ..teacher import resolve_model_ref

    resolve_model_ref(ref)
