"""Models of a run, loaded once and shared by every browser session; predictions on typed text.

Ten people predicting at once load the teacher once: the models are cached by run folder and
reloaded only when the run's model files change.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import runs as R
from ..machine import cpu_info
from ..runs import Run
from .cache import VersionedCache
from .errors import UserInputError
from .runviews import read_results, teacher_metrics

#: Texts typed into the studio are cut to this many characters: the models read at most
#: ``max_length`` tokens anyway, and a megabyte of text must not tie up a CPU core.
MAX_TEXT_CHARS = 2000


@dataclass
class ModelAnswer:
    """One model's answer to one text."""

    name: str
    kind: str  # one of MODEL_KINDS
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
               ("student-int8", "Student int8 (ONNX)"),
               ("static-int8", "Static student int8 (ONNX)"),
               ("transformer-int8", "Tiny transformer int8 (ONNX)"),
               ("baseline:fasttext", "fastText baseline"),
               ("baseline:model2vec", "Model2Vec baseline"))
#: Shown whether or not the run has them; the others only when it does.
CORE_KINDS = ("teacher", "student", "student-int8")
_MODELS: VersionedCache[RunModels] = VersionedCache(3)


def model_version(run: Run) -> tuple:
    """Changes whenever one of the run's model files is written again."""
    from ..baselines import BASELINES
    from ..families import REGISTRY  # here: it imports torch, which start-up does not need

    files = [run.file(R.TEACHER_DIR) / "teacher.json",
             run.file(R.STUDENTS_DIR) / "distilled" / "model.safetensors",
             *(run.file(R.ONNX_DIR) / f"{f.variant}.int8.onnx" for f in REGISTRY.values()),
             *(run.file(R.STUDENTS_DIR) / name / marker
               for name, (marker, _) in BASELINES.items())]
    return tuple(f.stat().st_mtime_ns if f.exists() else 0 for f in files)


def run_models(run: Run) -> RunModels:
    """The run's teacher, student and int8 student, loaded once and cached by run folder."""
    return _MODELS.get(str(run.path), model_version(run), lambda: _load_models(run))


def _load_models(run: Run) -> RunModels:
    from transformers.utils import logging as hf_logging

    from ..compare import onnx_student_predictor, student_predictor
    from ..families import REGISTRY
    from ..student import read_student_files
    from ..teacher import load_teacher

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
    L = cfg.student.max_length
    sdir = run.file(R.STUDENTS_DIR) / "distilled"
    if (sdir / "model.safetensors").exists():
        preds["student"] = student_predictor("student", sdir, teacher.tokenizer, L)
        vocab = read_student_files(sdir)[0]
    # The int8 graph of each family (student folder = ONNX file stem).
    for fam in REGISTRY.values():
        int8 = run.file(R.ONNX_DIR) / f"{fam.variant}.int8.onnx"
        sdir = run.file(R.STUDENTS_DIR) / fam.variant
        if int8.exists() and (sdir / "student.json").exists():
            svocab, meta = read_student_files(sdir)
            preds[fam.int8_kind] = onnx_student_predictor(
                fam.int8_kind, fam.int8_kind, int8, svocab, teacher.tokenizer, L,
                meta["params"], threads=live_threads(run, fam.int8_kind))
    from ..baselines import BASELINES, trained_baselines

    for name, path in trained_baselines(run.file(R.STUDENTS_DIR)).items():
        preds[f"baseline:{name}"] = BASELINES[name][1](path)
    return RunModels(teacher, preds, list(teacher.label_names), vocab, L)


def live_threads(run: Run, kind: str) -> int:
    """Threads for one sentence at a time: what the compare stage measured fastest at batch
    1 for ``kind`` on this CPU, else one (a single sentence gains little from more, and
    multi-threaded calls beside PyTorch sometimes run slower: docs/decisions.md)."""
    res = read_results(run) or {}
    env = res.get("environment", {})
    # Measured on another machine: one model name covers CPUs with and without AVX-512.
    if (env.get("cpu"), env.get("cpu_flags")) != tuple(cpu_info()):
        return 1
    row = next((r for r in res.get("rows", []) if r.get("kind") == kind), {})
    return int(row.get("threads_b1") or 1)


def teacher_for(run: Run):
    """The run's teacher (shared with predictions), or None if it has none yet."""
    if teacher_metrics(run) is None:
        return None
    return run_models(run).teacher


def softmax(logits: np.ndarray) -> np.ndarray:
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
    from ..student import UNK

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
            probs = softmax(np.asarray(logits, dtype=np.float64))[0]
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
    return models.label_names, softmax(logits.astype(np.float64))
