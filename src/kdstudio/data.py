"""Load a text-classification task: Hub ids, local folders, single files and uploads.

Everything ends up as a :class:`TaskData`: training and validation texts with integer labels
and the label names. Problems with the user's data raise :class:`DataError` with a message
that says what is wrong and how to fix it; nothing here writes to disk.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .config import DataConfig
from .datafiles import FILE_SUFFIXES, DataError, find_split_files, read_table

#: Datasets the studio knows by name: local file stem layout and Hub fallback.
KNOWN_DATASETS = {
    "sst2": {"hub": "stanfordnlp/sst2", "text": "sentence", "label": "label",
             "label_names": ["negative", "positive"]},
}
TEXT_CANDIDATES = ("text", "sentence", "sentences", "review", "content", "document", "tweet",
                   "comment", "body", "utterance", "question", "input")
LABEL_CANDIDATES = ("label", "labels", "class", "category", "target", "sentiment", "y", "gold")
#: The label of a training text without one: the teacher labels it for the students.
UNLABELLED = -1


@dataclass
class Split:
    texts: list[str]
    labels: np.ndarray  # (N,) int64; UNLABELLED in the training split for unlabelled text

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class TaskData:
    train: Split
    validation: Split
    label_names: list[str]
    text_column: str
    label_column: str
    source: str
    notes: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)  # every column the source has

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def label_name(self, label: int) -> str:
        return "(unlabelled)" if label == UNLABELLED else self.label_names[int(label)]

    @property
    def unlabelled(self) -> int:
        """How many training texts have no label."""
        return int((self.train.labels == UNLABELLED).sum())

    def fingerprint(self) -> str:
        """Content hash: same texts, labels and label names → same fingerprint."""
        h = hashlib.sha256()
        h.update(json.dumps(self.label_names).encode())
        for split in (self.train, self.validation):
            h.update(str(len(split)).encode())
            for t in split.texts:
                h.update(t.encode("utf-8", "replace"))
                h.update(b"\0")
            h.update(np.asarray(split.labels, dtype=np.int64).tobytes())
        return h.hexdigest()[:16]

    def class_balance(self) -> dict[str, dict[str, int]]:
        out = {}
        for name, split in (("train", self.train), ("validation", self.validation)):
            counts = np.bincount(split.labels[split.labels >= 0], minlength=self.num_labels)
            out[name] = {self.label_names[i]: int(c) for i, c in enumerate(counts)}
        return out


# ---------------------------------------------------------------------------------------
# Columns and labels
# ---------------------------------------------------------------------------------------
def detect_columns(df: pd.DataFrame, text_column: str | None = None,
                   label_column: str | None = None) -> tuple[str, str]:
    """Pick the text and label columns (or check the ones given)."""
    cols = list(df.columns)
    for given, what in ((text_column, "text"), (label_column, "label")):
        if given is not None and given not in cols:
            raise DataError(
                f"{what} column {given!r} not found; the file has columns: {', '.join(cols)}"
            )
    lower = {c.lower(): c for c in cols}
    text = text_column or next((lower[c] for c in TEXT_CANDIDATES if c in lower), None)
    label = label_column or next((lower[c] for c in LABEL_CANDIDATES if c in lower), None)
    if text is None:
        # Fall back to the string column with the longest values.
        str_cols = [c for c in cols
                    if c != label and not pd.api.types.is_numeric_dtype(df[c])]
        if str_cols:
            text = max(str_cols, key=lambda c: df[c].astype(str).str.len().mean())
    if label is None:
        rest = [c for c in cols if c != text and 2 <= df[c].nunique() <= max(2, len(df) // 2)]
        if rest:
            label = min(rest, key=lambda c: df[c].nunique())
    if text is None or label is None:
        raise DataError(
            f"could not tell which column holds the {'text' if text is None else 'label'}; "
            f"the file has columns: {', '.join(cols)}. Name the text and label columns "
            "(e.g. 'text' and 'label') or set them in the settings"
        )
    if text == label:
        raise DataError(f"text and label columns must differ (both are {text!r})")
    return text, label


def missing_labels(values: pd.Series) -> np.ndarray:
    """Rows whose label cell is empty (NaN, or only spaces)."""
    blank = np.array(values.isna(), dtype=bool)
    if not pd.api.types.is_numeric_dtype(values):
        blank |= (values.astype(str).str.strip() == "").to_numpy(dtype=bool)
    return blank


def _integral(values: pd.Series) -> pd.Series:
    """Whole numbers as ints: a column with an empty cell reads as text ("1") or floats."""
    if not len(values) or pd.api.types.is_integer_dtype(values):
        return values
    nums = pd.to_numeric(values, errors="coerce")
    if nums.notna().all() and bool((nums == nums.round()).all()):
        return nums.astype(np.int64)
    return values


def _labels_only(values: pd.Series) -> pd.Series:
    """The filled label cells, whole numbers as ints."""
    return _integral(values[~missing_labels(values)])


def encode_labels(values: pd.Series, label_names: list[str] | None = None,
                  allow_missing: bool = False) -> tuple[np.ndarray, list[str]]:
    """Map label values to ids 0..K-1. Integer labels keep their values; strings are sorted.
    With ``allow_missing`` an empty label cell gives UNLABELLED (text the teacher labels)."""
    missing = missing_labels(values)
    if missing.any() and not allow_missing:
        raise DataError(f"{int(missing.sum())} row(s) have no label; fill or remove them")
    if missing.any():
        ids = np.full(len(values), UNLABELLED, dtype=np.int64)
        if (~missing).any():
            ids[~missing], label_names = encode_labels(values[~missing], label_names)
        return ids, label_names or []
    values = _integral(values)
    if label_names is not None:
        if pd.api.types.is_integer_dtype(values):
            ids = values.to_numpy(dtype=np.int64)
            bad = sorted({int(v) for v in ids if not 0 <= v < len(label_names)})
            if bad:
                raise DataError(
                    f"label value(s) {bad[:5]} are outside the label set 0..{len(label_names) - 1}"
                    f" ({', '.join(label_names)})"
                )
            return ids, label_names
        index = {n: i for i, n in enumerate(label_names)}
        strs = values.astype(str).str.strip()
        bad = sorted(set(strs) - set(index))
        if bad:
            raise DataError(
                f"label value(s) {bad[:5]} are not in the label set ({', '.join(label_names)})"
            )
        return strs.map(index).to_numpy(dtype=np.int64), label_names
    if pd.api.types.is_integer_dtype(values):
        uniq = sorted(int(v) for v in values.unique())
        if uniq[0] < 0:
            raise DataError(f"integer labels must be 0 or more; found {uniq[0]}")
        if uniq == list(range(len(uniq))):
            names = [str(v) for v in uniq]
            return values.to_numpy(dtype=np.int64), names
        names = [str(v) for v in uniq]
    else:
        names = sorted(values.astype(str).str.strip().unique())
    index = {n: i for i, n in enumerate(names)}
    return values.astype(str).str.strip().map(index).to_numpy(dtype=np.int64), names


def frame_to_split(df: pd.DataFrame, text: str, label: str,
                   label_names: list[str] | None, source: str,
                   unlabelled_ok: bool = False) -> tuple[Split, list[str]]:
    """A split from ``df``; with ``unlabelled_ok`` (training data) empty label cells mark
    text for the teacher to label, elsewhere they are refused."""
    for col in (text, label):
        if col not in df.columns:
            raise DataError(
                f"{source}: column {col!r} not found; it has columns: {', '.join(df.columns)}"
            )
    texts = df[text]
    if texts.isna().any():
        raise DataError(f"{source}: {int(texts.isna().sum())} row(s) have no text")
    texts = texts.astype(str).str.strip()
    try:
        ids, names = encode_labels(df[label], label_names, allow_missing=unlabelled_ok)
    except DataError as e:
        raise DataError(f"{source}: {e}") from None
    return Split(texts.tolist(), ids), names


def _labelled_first(df: pd.DataFrame, label: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows with a label, rows without): validation rows are drawn from the first only."""
    missing = missing_labels(df[label])
    return (df[~missing].reset_index(drop=True), df[missing].reset_index(drop=True))


def _unlabelled_note(train: Split) -> list[str]:
    n = int((train.labels == UNLABELLED).sum())
    return [f"{n:,} training rows have no label: the teacher labels them for the "
            "distilled students"] if n else []


def _check_task(task: TaskData) -> TaskData:
    if task.num_labels < 2:
        raise DataError(
            f"the data has a single class ({task.label_names[0]!r}); a classifier needs at "
            "least two"
        )
    present = np.unique(task.train.labels[task.train.labels >= 0])
    if len(present) < 2:
        which = (f"a single class ({task.label_names[int(present[0])]!r})" if len(present)
                 else "no labelled rows")
        raise DataError(f"the training split has {which}; a classifier needs at least two "
                        "classes")
    if len(task.train) < 2 or len(task.validation) < 1:
        raise DataError("the data needs at least 2 training and 1 validation rows")
    empty = sum(1 for t in task.train.texts if not t)
    if empty == len(task.train):
        raise DataError("every training text is empty")
    return task


def split_off_validation(df: pd.DataFrame, fraction: float, seed: int
                         ) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(df))
    n_val = max(1, int(round(len(df) * fraction)))
    if len(df) - n_val < 2:
        raise DataError(f"only {len(df)} rows: too few to hold out a validation split")
    return df.iloc[idx[n_val:]].reset_index(drop=True), df.iloc[idx[:n_val]].reset_index(drop=True)


# ---------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------
def load_task(cfg: DataConfig, seed: int = 42) -> TaskData:
    """Load the task the config names, subsample as asked, and check it is usable."""
    task = _load_source(cfg, seed)
    rng = np.random.default_rng(seed)
    for split_name, cap in (("train", cfg.max_train_examples),
                            ("validation", cfg.max_validation_examples)):
        split = getattr(task, split_name)
        if cap is not None and len(split) > cap:
            keep = np.sort(rng.choice(len(split), size=cap, replace=False))
            setattr(task, split_name, Split([split.texts[i] for i in keep], split.labels[keep]))
    cap = cfg.max_labelled_examples
    if cap is not None and len(task.train) > cap:
        hide = rng.permutation(len(task.train))[cap:]
        task.train.labels = task.train.labels.copy()
        task.train.labels[hide] = UNLABELLED
        task.notes.append(f"{cap:,} training rows keep their labels; the other "
                          f"{len(hide):,} are unlabelled text that the teacher labels")
    return _check_task(task)


def _load_source(cfg: DataConfig, seed: int) -> TaskData:
    name = cfg.dataset.strip()
    known = KNOWN_DATASETS.get(name.lower())
    if known is not None:
        data_dir = cfg.resolved_data_dir()
        if data_dir:
            folder = Path(data_dir) / name.lower()
            if not folder.is_dir():
                raise DataError(
                    f"data folder {str(folder)!r} does not exist; point data_dir (or "
                    f"KDSTUDIO_DATA_DIR) at the folder that holds {name.lower()}/"
                )
            return _from_folder(folder, cfg, seed, known["label_names"], known)
        return _from_hub(known["hub"], cfg, seed, known)
    path = Path(name).expanduser()
    if path.is_dir():
        return _from_folder(path, cfg, seed, None, None)
    if path.suffix.lower() in FILE_SUFFIXES or path.exists():
        return _from_file(path, cfg, seed)
    if "/" in name and not name.startswith((".", "/")):
        return _from_hub(name, cfg, seed, None)
    raise DataError(
        f"dataset {name!r} is neither a known name ({', '.join(KNOWN_DATASETS)}), an existing "
        "folder or file, nor a Hub id of the form owner/name"
    )


def _from_file(path: Path, cfg: DataConfig, seed: int) -> TaskData:
    df = read_table(path, cfg.header)
    text, label = detect_columns(df, cfg.text_column, cfg.label_column)
    labelled, unlabelled = _labelled_first(df, label)
    if len(labelled) == 0:
        raise DataError(f"{path.name}: no row has a label in column {label!r}")
    train_df, val_df = split_off_validation(labelled, cfg.validation_fraction, seed)
    train_df = pd.concat([train_df, unlabelled], ignore_index=True)
    _, names = encode_labels(labelled[label])  # label set from the whole file
    train, _ = frame_to_split(train_df, text, label, names, path.name, unlabelled_ok=True)
    val, _ = frame_to_split(val_df, text, label, names, path.name)
    notes = [f"validation split: {len(val)} labelled rows held out with seed {seed}",
             *_unlabelled_note(train)]
    if df.columns[0] == "column_1":
        notes.append("no header row: the first row is data")
    return TaskData(train, val, names, text, label, str(path), notes, list(df.columns))


def _from_folder(folder: Path, cfg: DataConfig, seed: int, label_names: list[str] | None,
                 known: dict | None) -> TaskData:
    files = find_split_files(folder)
    if "train" not in files:
        raise DataError(
            f"folder {str(folder)!r} has no train file; expected train.csv/.tsv/.json/.jsonl/"
            ".parquet (and optionally validation.*)"
        )
    train_df = read_table(files["train"], cfg.header)
    text, label = detect_columns(
        train_df, cfg.text_column or (known or {}).get("text"),
        cfg.label_column or (known or {}).get("label"),
    )
    notes = []
    if "validation" in files:
        val_df = read_table(files["validation"], cfg.header)
    else:
        labelled, unlabelled = _labelled_first(train_df, label)
        train_df, val_df = split_off_validation(labelled, cfg.validation_fraction, seed)
        train_df = pd.concat([train_df, unlabelled], ignore_index=True)
        notes.append(f"validation split: {len(val_df)} labelled rows held out with seed {seed}")
    if label_names is None:
        both = pd.concat([train_df[label], val_df[label]])
        _, label_names = encode_labels(both[~missing_labels(both)])
        if _labels_only(val_df[label]).dtype != _labels_only(train_df[label]).dtype:
            raise DataError("train and validation label columns hold different kinds of values")
    train, _ = frame_to_split(train_df, text, label, label_names, files["train"].name,
                              unlabelled_ok=True)
    val, _ = frame_to_split(val_df, text, label, label_names,
                            files.get("validation", files["train"]).name)
    if train_df.columns[0] == "column_1":
        notes.append("no header row: the first row is data")
    notes += _unlabelled_note(train)
    return TaskData(train, val, label_names, text, label, str(folder), notes,
                    list(train_df.columns))


def _from_hub(hub_id: str, cfg: DataConfig, seed: int, known: dict | None) -> TaskData:
    import datasets

    from .hub import require_hub

    try:
        require_hub(f"the dataset {hub_id!r}", "give a local file or folder, or set data_dir "
                    "(KDSTUDIO_DATA_DIR) to a folder holding a copy")
    except ValueError as e:
        raise DataError(str(e)) from None
    try:
        ds = datasets.load_dataset(hub_id)
    except Exception as e:
        raise DataError(
            f"could not load {hub_id!r} from the Hugging Face Hub ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}). Offline? Set data_dir / "
            "KDSTUDIO_DATA_DIR to a local copy, or give a local file"
        ) from None
    if "train" not in ds:
        raise DataError(f"{hub_id} has no 'train' split (it has: {', '.join(ds)})")
    train_df = ds["train"].to_pandas()
    text, label = detect_columns(
        train_df, cfg.text_column or (known or {}).get("text"),
        cfg.label_column or (known or {}).get("label"),
    )
    label_names = (known or {}).get("label_names")
    feat = ds["train"].features.get(label)
    if label_names is None and getattr(feat, "names", None):
        label_names = list(feat.names)
    notes = []
    val_key = next((k for k in ("validation", "valid", "dev", "test") if k in ds), None)
    val_df = ds[val_key].to_pandas() if val_key else None
    # GLUE-style test splits carry label -1 (hidden); those cannot be used for validation.
    if (val_df is not None and pd.api.types.is_integer_dtype(val_df[label])
            and (val_df[label] < 0).all()):
        val_df = None
    if val_df is None:
        train_df, val_df = split_off_validation(train_df, cfg.validation_fraction, seed)
        notes.append(f"validation split: {len(val_df)} rows held out with seed {seed}")
    if label_names is None:
        _, label_names = encode_labels(pd.concat([train_df[label], val_df[label]]))
    train, _ = frame_to_split(train_df, text, label, label_names, hub_id)
    val, _ = frame_to_split(val_df, text, label, label_names, hub_id)
    return TaskData(train, val, label_names, text, label, hub_id, notes, list(train_df.columns))


def preview(task: TaskData, n: int = 5) -> list[dict[str, str]]:
    return [{"text": t, "label": task.label_name(y)}
            for t, y in zip(task.train.texts[:n], task.train.labels[:n], strict=False)]
