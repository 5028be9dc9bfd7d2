"""What the browser studio needs beyond the pipeline stages, as a plain library (no Gradio).

Loaded models are cached once per run folder and shared by every browser session, so ten
people predicting at once load the teacher once; uploads are checked and stored under the
runs folder; a run's progress is summarised from its ``events.jsonl``; a finished run's
numbers are turned into the tables the studio shows; a model card and a student bundle are
written beside the runs, never inside them. Everything is read from the run folder, so a
page reload, a second browser or a restarted server sees the same state.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
import time
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import jobs
from . import runs as R
from .config import DataConfig, RunConfig
from .data import FILE_SUFFIXES, DataError, TaskData, load_task, read_table
from .runs import Run

#: Uploads larger than this are refused before anything is read (override for tests/Spaces).
DEFAULT_MAX_UPLOAD_MB = 50.0
#: Texts typed into the studio are cut to this many characters: the models read at most
#: ``max_length`` tokens anyway, and a megabyte of text must not tie up a CPU core.
MAX_TEXT_CHARS = 2000
#: Sentences tagged for the augmentation preview's POS dictionary when the full training
#: corpus has not been tagged yet (tagging all of SST-2 takes minutes on a small CPU).
PREVIEW_POS_SENTENCES = 2000
UPLOADS_DIR = "_uploads"
EXPORTS_DIR = "_exports"
#: Stages run on a new run that reuses a finished teacher.
AFTER_TEACHER = ["augment", "student", "quantize", "compare"]


class UserInputError(ValueError):
    """Input the studio cannot use as it is; the message says what to do instead."""


# ---------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------
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
    res = _results(run)
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


def _results(run: Run) -> dict | None:
    try:
        return run.results()
    except (OSError, json.JSONDecodeError):
        return None


# ---------------------------------------------------------------------------------------
# Uploads and data
# ---------------------------------------------------------------------------------------
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
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
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


_TASKS: OrderedDict[str, TaskData] = OrderedDict()
_TASKS_LOCK = threading.Lock()


def load_task_cached(cfg: DataConfig, seed: int = 42) -> TaskData:
    """:func:`data.load_task`, remembered for the last few configs (SST-2 parses in ~1 s)."""
    key = json.dumps([cfg.to_dict(), cfg.resolved_data_dir(), seed, _mtime(cfg.dataset)],
                     sort_keys=True)
    with _TASKS_LOCK:
        if key in _TASKS:
            _TASKS.move_to_end(key)
            return _TASKS[key]
    task = load_task(cfg, seed)
    with _TASKS_LOCK:
        _TASKS[key] = task
        while len(_TASKS) > 4:
            _TASKS.popitem(last=False)
    return task


def _mtime(path: str) -> float | None:
    try:
        return Path(path).expanduser().stat().st_mtime
    except OSError:
        return None


# ---------------------------------------------------------------------------------------
# Models, loaded once per run and shared
# ---------------------------------------------------------------------------------------
@dataclass
class ModelAnswer:
    """One model's answer to one text."""

    name: str
    kind: str  # "teacher" | "student" | "student-int8"
    available: bool
    label: str | None = None
    probs: dict[str, float] = field(default_factory=dict)
    ms: float | None = None
    note: str = ""


@dataclass
class RunModels:
    teacher: Any | None  # kdstudio.teacher.Teacher
    predictors: dict[str, Any]  # kind → compare.Predictor
    label_names: list[str]
    vocab: Any | None  # StudentVocab of the distilled student
    max_length: int
    # Fast tokenizers are not safe to call from several threads at once ("Already
    # borrowed"), and two requests on two cores only slow each other down: one at a time.
    lock: threading.Lock = field(default_factory=threading.Lock)


MODEL_KINDS = (("teacher", "Teacher"), ("student", "Student (PyTorch)"),
               ("student-int8", "Student int8 (ONNX)"))
_MODELS: OrderedDict[str, tuple[tuple, RunModels]] = OrderedDict()
_MODELS_LOCK = threading.Lock()  # held while loading, so concurrent first calls load once
_MAX_CACHED_RUNS = 3


def _version(run: Run) -> tuple:
    files = [run.file(R.TEACHER_DIR) / "teacher.json",
             run.file(R.STUDENTS_DIR) / "distilled" / "model.safetensors",
             run.file(R.ONNX_DIR) / "distilled.int8.onnx"]
    return tuple(f.stat().st_mtime_ns if f.exists() else 0 for f in files)


def run_models(run: Run) -> RunModels:
    """The run's teacher, student and int8 student, loaded once and cached by run folder."""
    key, version = str(run.path), _version(run)
    with _MODELS_LOCK:
        hit = _MODELS.get(key)
        if hit is not None and hit[0] == version:
            _MODELS.move_to_end(key)
            return hit[1]
        models = _load_models(run)
        _MODELS[key] = (version, models)
        while len(_MODELS) > _MAX_CACHED_RUNS:
            _MODELS.popitem(last=False)
        return models


def _load_models(run: Run) -> RunModels:
    from transformers.utils import logging as hf_logging

    from .compare import onnx_student_predictor, student_predictor
    from .student import load_student
    from .teacher import load_teacher

    hf_logging.disable_progress_bar()  # a "Loading weights" bar per load only clutters the log
    cfg = run.config()
    if teacher_metrics(run) is None:
        raise UserInputError(
            f"run {run.id} has no finished teacher yet ({run.status().get('status')}); pick "
            "a finished run or wait for this one")
    teacher = load_teacher(str(run.file(R.TEACHER_DIR)), None, device="cpu",
                           max_length=cfg.teacher.max_length)
    preds: dict[str, Any] = {}
    vocab = None
    sdir = run.file(R.STUDENTS_DIR) / "distilled"
    L = cfg.student.max_length
    if (sdir / "model.safetensors").exists():
        preds["student"] = student_predictor("student", sdir, teacher.tokenizer, L)
        _, vocab, meta = load_student(sdir)
        int8 = run.file(R.ONNX_DIR) / "distilled.int8.onnx"
        if int8.exists():
            # One thread: a single sentence gains little from more, and 2-thread calls ran
            # 2.4x slower in some processes, more often beside PyTorch as here; one thread
            # never did in 8 processes, 16 readings (bench/NOTES.md, omp_interference.py).
            preds["student-int8"] = onnx_student_predictor(
                "student int8", "student-int8", int8, vocab, teacher.tokenizer, L,
                meta["params"], threads=1)
    return RunModels(teacher, preds, list(teacher.label_names), vocab, L)


def teacher_for(run: Run):
    """The run's teacher (shared with predictions), or None if it has none yet."""
    if teacher_metrics(run) is None:
        return None
    return run_models(run).teacher


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def clean_text(text: str | None) -> tuple[str, list[str]]:
    """Strip and cap a typed text; raise on empty. Returns (text, notes for the user)."""
    text = (text or "").strip()
    if not text:
        raise UserInputError("Type a sentence first")
    notes = []
    if len(text) > MAX_TEXT_CHARS:
        notes.append(f"the text has {len(text):,} characters; only the first "
                     f"{MAX_TEXT_CHARS:,} were used")
        text = text[:MAX_TEXT_CHARS]
    return text, notes


def predict(run: Run, text: str) -> tuple[list[ModelAnswer], list[str]]:
    """Every model of ``run`` on one text: label, class probabilities, time of the call
    (tokenisation included). Returns (answers, notes for the user)."""
    from .student import UNK

    text, notes = clean_text(text)
    models = run_models(run)
    answers = []
    with models.lock:
        for kind, title in MODEL_KINDS:
            if kind == "teacher":
                t0 = time.perf_counter()
                logits = models.teacher.predict_logits([text], batch_size=1)
                ms = (time.perf_counter() - t0) * 1e3
            elif kind in models.predictors:
                p = models.predictors[kind]
                t0 = time.perf_counter()
                logits = p.predict([text])
                ms = (time.perf_counter() - t0) * 1e3
            else:
                answers.append(ModelAnswer(title, kind, False,
                                           note="not in this run (stage not finished)"))
                continue
            probs = _softmax(np.asarray(logits, dtype=np.float64))[0]
            names = models.label_names
            answers.append(ModelAnswer(title, kind, True, names[int(probs.argmax())],
                                       {n: float(p) for n, p in zip(names, probs, strict=True)},
                                       ms))
        n_tok = len(models.teacher.tokenizer(text, add_special_tokens=False)["input_ids"])
        if n_tok > models.max_length:
            notes.append(f"{n_tok} tokens: the models read only the first {models.max_length}")
        if models.vocab is not None:
            ids = models.vocab.encode(models.teacher.tokenizer, [text], models.max_length)[0]
            ids = ids[ids > 0]
            unk = int((ids == UNK).sum())
            if ids.size and unk / ids.size >= 0.3:
                notes.append(f"{unk} of {ids.size} tokens are outside the student's vocabulary "
                             "(words the training data never used): expect the student to "
                             "guess")
    return answers, notes


def soft_labels(run: Run, texts: list[str]) -> tuple[list[str], np.ndarray]:
    """The teacher's class probabilities (N, C) for ``texts``: the targets the student
    learns from (it fits the logits; these are their softmax)."""
    models = run_models(run)
    with models.lock:
        logits = models.teacher.predict_logits(texts, batch_size=32)
    return models.label_names, _softmax(logits.astype(np.float64))


# ---------------------------------------------------------------------------------------
# Augmentation preview
# ---------------------------------------------------------------------------------------
_POS: OrderedDict[str, tuple[Any, str]] = OrderedDict()
_POS_LOCK = threading.Lock()


def preview_pos_dictionary(task: TaskData, spacy_model: str, cache_dir: Path
                           ) -> tuple[Any, str]:
    """(PosDictionary, a note on where it comes from) for previewing augmentation.

    The pipeline builds it from every training sentence; if that is already cached, use it.
    Otherwise tag a fixed random sample, so the first preview takes seconds, not minutes,
    and say so.
    """
    from .augment import PosDictionary, build_tagged_corpus, corpus_key

    texts = task.train.texts
    full_key = corpus_key(texts, spacy_model)
    with _POS_LOCK:
        if full_key in _POS:
            return _POS[full_key]
        full = cache_dir / f"pos-{full_key}.json"
        if full.exists():
            d = json.loads(full.read_text(encoding="utf-8"))
            out = (PosDictionary(d["pos_words"], d["pos_counts"]),
                   f"POS dictionary from all {len(texts):,} training sentences")
        elif len(texts) <= PREVIEW_POS_SENTENCES:
            corpus = build_tagged_corpus(texts, spacy_model, cache_dir)
            out = (corpus.pos, f"POS dictionary from all {len(texts):,} training sentences")
        else:
            pick = np.sort(np.random.default_rng(0).choice(len(texts), PREVIEW_POS_SENTENCES,
                                                           replace=False))
            corpus = build_tagged_corpus([texts[i] for i in pick], spacy_model, cache_dir)
            out = (corpus.pos, f"POS dictionary from {PREVIEW_POS_SENTENCES:,} of "
                               f"{len(texts):,} training sentences (the run uses all)")
        _POS[full_key] = out
        while len(_POS) > 4:
            _POS.popitem(last=False)
        return out


# ---------------------------------------------------------------------------------------
# Starting jobs
# ---------------------------------------------------------------------------------------
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
    from .transfer import link_or_copy

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


# ---------------------------------------------------------------------------------------
# Progress
# ---------------------------------------------------------------------------------------
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
    return Snapshot(run.id, status, cur, st.get("message") or "", stages, last, elapsed,
                    _device(run, last), curves, reused)


def _updated_ts(st: dict) -> float | None:
    from datetime import datetime

    try:
        return datetime.fromisoformat(st["updated"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return None


def _device(run: Run, last: dict) -> str:
    dev = last.get("device")
    if dev:
        return "GPU" if str(dev).startswith("cuda") else "CPU"
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


def cancel(run: Run, grace: float = 15.0) -> str:
    st = jobs.reconcile(run)
    if st.get("status") != "running":
        raise UserInputError(f"run {run.id} is not running ({st.get('status')}); nothing to "
                             "cancel")
    jobs.cancel(run, grace=grace)
    return (f"Cancel requested for {run.id}: it stops at the next step and keeps what it has "
            f"saved (forced after {grace:.0f} s)")


# ---------------------------------------------------------------------------------------
# Comparison
# ---------------------------------------------------------------------------------------
def finished_results(run: Run | None) -> dict:
    if run is None:
        raise UserInputError(
            "No finished run yet: run the quick demo or start a distillation")
    res = _results(run)
    if res is None:
        st = run.status()
        raise UserInputError(
            f"Run {run.id} has no comparison yet ({st.get('status')}"
            f"{', ' + st['stage'] if st.get('stage') else ''}); pick a finished run, or wait "
            "for this one to finish")
    return res


def comparison_table(res: dict) -> list[dict[str, Any]]:
    """One row per model, in the units people read."""
    out = []
    for r in res["rows"]:
        agree = r.get("agreement_with_teacher")
        out.append({
            "model": r["name"], "backend": r["backend"],
            "accuracy": f"{r['accuracy']:.1%}",
            "agrees with teacher": "—" if agree is None else f"{agree:.1%}",
            "params": f"{r['params'] / 1e6:.2f} M",
            "size": f"{r['size_mb']:.2f} MB",
            "latency p50, batch 1": f"{r['latency_b1_ms_p50']:.2f} ms",
            "throughput, batch 32": f"{r['throughput_per_s']:,.0f} /s",
            "speed-up": _ratio(r.get("speedup_b1")),
            "smaller by": _ratio(r.get("size_ratio")),
        })
    return out


def _ratio(x: float | None) -> str:
    return "—" if x is None else f"{x:.1f}×"


def seed_table(res: dict) -> list[dict[str, Any]]:
    """Tang et al.'s table: baseline / + soft labels / + augmentation / teacher."""
    by_kind = {r["kind"]: r for r in res["rows"]}
    n_val = res.get("validation_size")
    spec = [("BiLSTM (baseline, hard labels)", "student:baseline"),
            ("BiLSTM + soft labels", "student:distilled-noaug"),
            ("BiLSTM + soft labels + augmentation", "student:distilled"),
            ("BiLSTM + soft labels + augmentation, int8 ONNX", "student-int8"),
            ("Teacher", "teacher")]
    out = []
    for name, kind in spec:
        r = by_kind.get(kind)
        if r is None:
            out.append({"model": name, "accuracy": "not trained in this run",
                        "params": "", "inference, batch 1 (p50)": "",
                        f"validation set, batch 32 ({n_val} sentences)": ""})
            continue
        out.append({"model": name, "accuracy": f"{r['accuracy']:.1%}",
                    "params": f"{r['params'] / 1e6:.2f} M",
                    "inference, batch 1 (p50)": f"{r['latency_b1_ms_p50']:.2f} ms",
                    f"validation set, batch 32 ({n_val} sentences)": f"{r['b32_total_s']:.2f} s"})
    return out


_DISAGREE: dict[str, tuple[tuple, list[dict]]] = {}
_DISAGREE_LOCK = threading.Lock()


def disagreements(run: Run, n: int = 8) -> tuple[list[dict[str, Any]], int, int]:
    """Validation sentences where the distilled student and the teacher disagree.
    Returns (up to ``n`` examples, number of disagreements, validation size)."""
    key, version = str(run.path), _version(run)
    with _DISAGREE_LOCK:
        hit = _DISAGREE.get(key)
    if hit is None or hit[0] != version:
        models = run_models(run)
        if "student" not in models.predictors:
            raise UserInputError(f"run {run.id} has no trained student yet")
        cfg = run.config()
        task = load_task_cached(cfg.data, cfg.seed)
        texts, gold = task.validation.texts, task.validation.labels
        with models.lock:
            t = _softmax(models.teacher.predict_logits(texts).astype(np.float64))
            p = models.predictors["student"]
            s = _softmax(np.concatenate([p.predict(texts[i:i + 64])
                                         for i in range(0, len(texts), 64)]).astype(np.float64))
        names = models.label_names
        rows = []
        for i in np.flatnonzero(t.argmax(-1) != s.argmax(-1)):
            ti, si = int(t[i].argmax()), int(s[i].argmax())
            rows.append({"sentence": texts[i], "gold": names[int(gold[i])],
                         "teacher": f"{names[ti]} ({t[i, ti]:.0%})",
                         "student": f"{names[si]} ({s[i, si]:.0%})",
                         "_margin": float(abs(t[i, ti] - s[i, ti]))})
        rows.sort(key=lambda r: -r["_margin"])  # the sharpest disagreements first
        for r in rows:
            r.pop("_margin")
        hit = (version, rows + [{"_n_val": len(texts)}])
        with _DISAGREE_LOCK:
            _DISAGREE[key] = hit
    rows = hit[1][:-1]
    return rows[:n], len(rows), hit[1][-1]["_n_val"]


# ---------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------
USAGE = '''```python
import json, numpy as np, onnxruntime as ort
from transformers import AutoTokenizer

tok = AutoTokenizer.from_pretrained("tokenizer")          # the teacher's WordPiece tokenizer
v = json.load(open("vocab.json"))                         # teacher token id -> student id
lut = np.ones(v["teacher_vocab_size"], np.int64)          # 1 = unknown, 0 = padding
lut[v["teacher_ids"]] = np.arange(2, len(v["teacher_ids"]) + 2)

def encode(texts, max_length={max_length}):
    rows = tok(texts, add_special_tokens=False, truncation=True, max_length=max_length)["input_ids"]
    x = np.zeros((len(rows), max(1, max(map(len, rows)))), np.int64)
    for i, r in enumerate(rows):
        if r:
            x[i, :len(r)] = lut[r]
        else:
            x[i, 0] = 1                                       # an empty text: one unknown token
    return x

sess = ort.InferenceSession("distilled.int8.onnx")
logits = sess.run(["logits"], {{"input_ids": encode(["a gripping, funny film"])}})[0]
print({labels}[int(logits.argmax(-1)[0])])
```'''


def model_card(run: Run) -> str:
    """A Markdown model card: what was distilled from what, on which data, measured how."""
    from .compare import markdown_table

    res = finished_results(run)
    cfg = run.config()
    t = teacher_metrics(run) or {}
    sc, ac = cfg.student, cfg.augment
    teacher_src = cfg.teacher.pretrained or cfg.teacher.backbone
    how = ("loaded already fine-tuned" if cfg.teacher.pretrained
           else f"fine-tuned here for {cfg.teacher.epochs:g} epoch(s)")
    rows = {r["kind"]: r for r in res["rows"]}
    s8, te = rows.get("student-int8"), rows.get("teacher")
    headline = ""
    if s8 and te:
        headline = (f"The int8 student reaches **{s8['accuracy']:.1%}** validation accuracy "
                    f"against the teacher's **{te['accuracy']:.1%}**, agrees with the teacher on "
                    f"{(s8.get('agreement_with_teacher') or 0):.1%} of validation sentences, is "
                    f"{_ratio(s8.get('size_ratio'))} smaller on disk and "
                    f"{_ratio(s8.get('speedup_b1'))} faster at batch 1 on this machine.\n\n")
    env = res.get("environment", {})
    timing = res.get("timing", {})
    return f"""---
library_name: onnxruntime
tags: [knowledge-distillation, bilstm, text-classification, onnx, int8]
---

# BiLSTM student distilled from `{teacher_src}`

Made with the knowledge-distillation studio (`kdstudio`), run `{run.id}`.

{headline}## What was distilled

- **Teacher**: `{teacher_src}` ({how}); {t.get('parameters', 0) / 1e6:.1f} M parameters;
  validation accuracy {t.get('val_accuracy', float('nan')):.1%} when it was trained/loaded.
- **Student**: a BiLSTM (Tang et al. 2019): hidden size {sc.hidden_size} per direction, a
  {sc.fc_size}-unit ReLU layer, {'embeddings initialised from the teacher’s input embeddings' if sc.embedding_init == 'teacher' else 'randomly initialised embeddings'};
  trained for up to {sc.epochs} epoch(s) with loss `{sc.loss}` (α = {sc.alpha:g}, T = {sc.temperature:g}), learning rate
  {sc.learning_rate:g}, batch size {sc.batch_size}.
- **Transfer set**: the training sentences plus up to {ac.n_iter} augmented copies each
  (masking p = {ac.p_mask:g}, POS-guided swaps p = {ac.p_pos:g}, n-gram sampling p = {ac.p_ng:g}),
  labelled with the teacher's logits.
- **Quantization**: ONNX export, then ONNX Runtime dynamic int8 quantization (weights int8,
  activations quantized on the fly).

## Data

`{res.get('dataset')}`; labels: {', '.join(res.get('label_names', []))}; validation set of
{res.get('validation_size')} sentences{(f"; at most {cfg.data.max_train_examples:,} training sentences") if cfg.data.max_train_examples else ''}.

## Measured

{markdown_table(res['rows'])}
Timing: {timing.get('what', '')}; latency at {timing.get('latency', '')}; throughput at
{timing.get('throughput', '')}. Machine: {env.get('cpu', '?')}, {env.get('threads', '?')}
threads, torch {env.get('torch', '?')}, onnxruntime {env.get('onnxruntime', '?')}. Numbers from
another machine will differ; the ratios travel better than the milliseconds.

## Use

The student reads the teacher's WordPiece tokens mapped to its own compact vocabulary, so it
needs `vocab.json` and the teacher's tokenizer (both in the bundle):

{USAGE.format(max_length=sc.max_length, labels=json.dumps(res.get('label_names', [])))}

## Limits

Trained on one dataset; a sentence made of words the training data never used maps to
unknown tokens and gets a guess. Accuracy above is on the validation split named here, not on
your data.
"""


_EXPORT_LOCK = threading.Lock()


def export_files(run: Run, root: Path | None = None) -> dict[str, Path | None]:
    """Files to download for a finished run: int8 and fp32 ONNX students, results.json, the
    model card, and a zip with everything needed to run the int8 student. The card and the
    zip are written to ``<runs>/_exports/<run id>/`` (the run folder stays as the run left it).
    """
    res_file = run.file(R.RESULTS_JSON)
    finished_results(run)
    out = (root or runs_root()) / EXPORTS_DIR / run.id
    stamp = str(res_file.stat().st_mtime_ns)
    card, bundle = out / "MODEL_CARD.md", out / f"{run.id}-student.zip"
    with _EXPORT_LOCK:  # two browsers opening the same run must not write the zip at once
        out.mkdir(parents=True, exist_ok=True)
        if not ((out / ".stamp").exists() and (out / ".stamp").read_text() == stamp
                and card.exists() and bundle.exists()):
            card.write_text(model_card(run), encoding="utf-8")
            _write_bundle(run, card, bundle)
            (out / ".stamp").write_text(stamp)
    onnx = run.file(R.ONNX_DIR)
    return {"int8": _existing(onnx / "distilled.int8.onnx"),
            "fp32": _existing(onnx / "distilled.onnx"), "results": res_file,
            "card": card, "bundle": bundle}


def _existing(p: Path) -> Path | None:
    return p if p.exists() else None


def _write_bundle(run: Run, card: Path, bundle: Path) -> None:
    tmp = bundle.with_name(f".{bundle.name}.tmp")
    teacher = run.file(R.TEACHER_DIR)
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(card, "README.md")
        for name in ("distilled.int8.onnx", "distilled.onnx"):
            if run.file(R.ONNX_DIR).joinpath(name).exists():
                z.write(run.file(R.ONNX_DIR) / name, name)
        sdir = run.file(R.STUDENTS_DIR) / "distilled"
        for name in ("vocab.json", "student.json"):
            if (sdir / name).exists():
                z.write(sdir / name, name)
        for f in sorted(teacher.iterdir()):
            if f.is_file() and (f.name.startswith(("tokenizer", "special_tokens"))
                                or f.name in ("vocab.txt",)):
                z.write(f, f"tokenizer/{f.name}")
        z.write(run.file(R.RESULTS_JSON), "results.json")
    os.replace(tmp, bundle)

