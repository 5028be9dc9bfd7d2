"""Read the user's data files (CSV, TSV, JSON, JSONL, Parquet) into data frames, with
messages a user can act on; :mod:`kdstudio.data` turns them into a task."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

FILE_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".parquet")


class DataError(ValueError):
    """The user's data cannot be used as it is; the message says why and what to do."""


def _check_text(path: Path, suffix: str) -> None:
    """Refuse a binary or non-UTF-8 file before pandas reads it."""
    raw = path.read_bytes()
    if b"\0" in raw[:8192]:
        raise DataError(
            f"{path.name} looks like a binary file, not {suffix[1:].upper()} text; "
            "check that you picked the right file"
        )
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path.name} is not UTF-8 text (bad byte at position {e.start}); "
            "re-save it as UTF-8"
        ) from None


def _read_json(path: Path) -> pd.DataFrame:
    try:
        return pd.read_json(path)
    except ValueError:
        return pd.read_json(path, lines=True)


_READERS = {
    ".csv": lambda p, header=0: pd.read_csv(p, keep_default_na=False, header=header),
    # SST-2 style TSVs contain quote characters that are literal text.
    ".tsv": lambda p, header=0: pd.read_csv(p, sep="\t", quoting=3, keep_default_na=False,
                                            header=header),
    ".jsonl": lambda p: pd.read_json(p, lines=True),
    ".json": _read_json,
    ".parquet": pd.read_parquet,
}


def read_table(path: str | Path, header: bool | str = "auto") -> pd.DataFrame:
    """Read one CSV/TSV/JSON/JSONL/Parquet file, with messages a user can act on.

    ``header`` (CSV/TSV only): whether the first row names the columns; "auto" decides by
    :func:`header_missing`. A file without one gets columns ``column_1``, ``column_2``...
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise DataError(
            f"{path.name}: unsupported file type {suffix or '(none)'}; "
            f"use one of {', '.join(FILE_SUFFIXES)}"
        )
    if path.stat().st_size == 0:
        raise DataError(f"{path.name} is empty")
    if suffix != ".parquet":
        _check_text(path, suffix)
    try:
        df = _READERS[suffix](path)
    except Exception as e:  # pandas/pyarrow raise many types for malformed input
        raise DataError(
            f"{path.name} could not be read as {suffix[1:].upper()}: {str(e).splitlines()[0]}"
        ) from None
    if suffix in (".csv", ".tsv") and (header is False or (header == "auto"
                                                          and header_missing(df))):
        df = _READERS[suffix](path, header=None)
        df.columns = [f"column_{i + 1}" for i in range(df.shape[1])]
    if len(df) == 0:
        raise DataError(f"{path.name} has no rows")
    df.columns = [str(c) for c in df.columns]
    return df


def header_missing(df: pd.DataFrame) -> bool:
    """Whether the names pandas took from the first row are really data: a name that
    recurs as a value of its column (a label such as "positive"), or a number heading a
    numeric column."""
    for name in df.columns:
        col = df[name]
        if not pd.api.types.is_numeric_dtype(col) and (col.astype(str) == str(name)).any():
            return True
        if pd.api.types.is_numeric_dtype(col) and _is_number(str(name)):
            return True
    return False


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def find_split_files(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for split, stems in (("train", ("train",)),
                         ("validation", ("validation", "valid", "val", "dev", "test"))):
        for stem in stems:
            for suffix in FILE_SUFFIXES:
                p = folder / f"{stem}{suffix}"
                if p.exists() and split not in found:
                    found[split] = p
    return found
