"""The student training loop: soft labels (distillation) or hard labels only (baseline).

The loop reports through ``on_step(progress)``, stops when ``should_stop()`` says so, keeps
the best checkpoint by validation accuracy (handed to ``on_best`` as soon as it improves, so
a cancelled run keeps it), stops early after ``patience`` evaluations without improvement,
and is seeded (deterministic on the CPU).

It runs through Hugging Face Accelerate, so the same code runs on the CPU, on one GPU, and
data-parallel in several processes under ``accelerate launch --multi_gpu --num_processes N
-m kdstudio student <run>`` (GPUs, or gloo on the CPU when the run's device is "cpu"). There
every process builds the same length-bucketed batches and trains on every N-th of them
(padded by wrapping around, so all take the same number of steps); each evaluates its share
of the validation set and the counts are summed, so every process sees the same accuracy and
takes the same early-stopping and cancel decisions (a cancel seen by any process stops all);
only the main process calls ``on_step`` and ``on_best``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .batching import length_batches
from .config import StudentConfig
from .losses import LOSSES
from .machine import native_bf16
from .progress import Progress
from .student import BiLSTMClassifier, pad_batch


@dataclass
class TrainSet:
    ids: list[np.ndarray]  # ragged student token ids, one array per sentence
    labels: np.ndarray  # (N,) hard labels; -1 where none (augmented copies)
    teacher_logits: np.ndarray | None  # (N, C) soft labels; None for the baseline


class _Batches(torch.utils.data.Dataset):
    """A dataset whose items are whole pre-bucketed batches."""

    def __init__(self, data: TrainSet, batches: list[np.ndarray]):
        self.data, self.batches = data, batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        b = self.batches[i]
        item = {"input_ids": pad_batch([self.data.ids[j] for j in b]),
                "labels": torch.as_tensor(self.data.labels[b], dtype=torch.long)}
        if self.data.teacher_logits is not None:
            item["teacher"] = torch.as_tensor(self.data.teacher_logits[b], dtype=torch.float32)
        return item


def make_optimizer(cfg: StudentConfig, params) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if cfg.optimizer == "adadelta":
        return torch.optim.Adadelta(params, lr=cfg.learning_rate, rho=0.95)
    return torch.optim.Adam(params, lr=cfg.learning_rate)


def use_cpu(device: str) -> bool:
    return device == "cpu" or (device == "auto" and not torch.cuda.is_available())


def distributed_state(device: str = "auto"):
    """Accelerate's process state (it joins the process group under a launcher); create it
    before the first :func:`agreed` call so that the collective has a group to run in."""
    from accelerate import PartialState

    return PartialState(cpu=use_cpu(device))


def agreed(flag: bool) -> bool:
    """``flag`` if this is the only process; otherwise True in every process when it is true
    in any (a collective: every process must call it at the same point)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    from accelerate import PartialState

    t = torch.tensor([1.0 if flag else 0.0], device=PartialState().device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


@torch.no_grad()
def predict(model: BiLSTMClassifier, ids: list[np.ndarray], batch_size: int = 256,
            device: torch.device | str = "cpu") -> np.ndarray:
    """Logits (N, C) for ragged id arrays, batched by length."""
    model.eval()
    order = np.argsort([len(x) for x in ids], kind="stable")
    out = None
    for s in range(0, len(ids), batch_size):
        idx = order[s:s + batch_size]
        logits = model(pad_batch([ids[i] for i in idx]).to(device)).float().cpu().numpy()
        if out is None:
            out = np.zeros((len(ids), logits.shape[1]), dtype=np.float32)
        out[idx] = logits
    return out if out is not None else np.zeros((0, model.out.out_features), np.float32)


@dataclass
class Hooks:
    """Who listens to a training loop: progress, cancel, and each new best checkpoint (handed
    over as soon as it improves, so a cancelled run keeps it)."""

    stage: str = "student"
    on_step: Callable[[Progress], None] | None = None
    should_stop: Callable[[], bool] | None = None
    on_best: Callable[[BiLSTMClassifier, dict], None] | None = None


def _objective(train: TrainSet, cfg: StudentConfig, mode: str) -> tuple[TrainSet, Callable,
                                                                         float]:
    """(the rows that train, the loss, its hard-label weight) for ``mode``."""
    if mode == "baseline" or cfg.loss == "ce":
        # Hard labels only: augmented copies have none, so only the originals train.
        keep = np.flatnonzero(train.labels >= 0)
        return (TrainSet([train.ids[i] for i in keep], train.labels[keep], None),
                LOSSES["ce"], 1.0)
    if train.teacher_logits is None:
        raise ValueError("distillation needs the teacher's logits")
    return train, LOSSES[cfg.loss], cfg.alpha


class _Loop:
    """One student's training: the steps, the evaluations and the weights kept."""

    def __init__(self, model, train: TrainSet, val: TrainSet, cfg: StudentConfig, mode: str,
                 seed: int, device: str, hooks: Hooks):
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        set_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.train, self.loss_fn, self.alpha = _objective(train, cfg, mode)
        self.val, self.cfg, self.mode, self.hooks = val, cfg, mode, hooks
        self.acc = Accelerator(cpu=use_cpu(device))
        # On CPUs with bfloat16 in hardware the forward pass runs in it (weights, gradients
        # and the optimizer stay float32): steps about 1.5x faster, accuracy unchanged
        # (docs/decisions.md, "training precision").
        self.bf16 = self.acc.device.type == "cpu" and native_bf16()
        opt = make_optimizer(cfg, model.parameters())
        self.model, self.opt = self.acc.prepare(model, opt)
        self.n_proc, self.rank = self.acc.num_processes, self.acc.process_index
        self.lengths = [len(x) for x in self.train.ids]
        # length_batches cuts chunks of batch_size * bucket rows into batches, so an epoch
        # has exactly ceil(N / batch_size) batches; each process takes every n_proc-th.
        self.steps_per_epoch = math.ceil(math.ceil(len(self.lengths) / cfg.batch_size)
                                         / self.n_proc)
        self.total = self.steps_per_epoch * cfg.epochs
        self.eval_every = max(1, self.steps_per_epoch // cfg.evals_per_epoch)
        self.sched = None
        if cfg.lr_schedule == "linear":
            self.sched = torch.optim.lr_scheduler.LambdaLR(
                self.opt, lambda s: max(0.0, 1.0 - s / max(1, self.total)))
        self.progress = Progress(stage=hooks.stage, total=self.total)
        self.progress.update(0, device=str(self.acc.device), mode=mode,
                             precision="bf16" if self.bf16 else "fp32")
        self.best = {"val_accuracy": -1.0, "step": 0, "epoch": 0}
        self.best_state = None
        # keep: average: the running mean of the float weights after each step of the
        # second half of training.
        self.average: dict[str, torch.Tensor] | None = None
        self.n_averaged = 0
        self.history: list[dict] = []
        self.bad_evals = self.step = 0
        self.stopped = False
        self.running, self.n_run = 0.0, 0

    @property
    def net(self) -> BiLSTMClassifier:
        return self.acc.unwrap_model(self.model)

    @property
    def out_of_patience(self) -> bool:
        return bool(self.cfg.patience and self.bad_evals >= self.cfg.patience)

    def evaluate(self) -> float:
        # Each process predicts every n_proc-th validation sentence; the correct counts are
        # summed, so all processes get the same accuracy (one process: the plain mean).
        val_ids, val_labels = self.val.ids, np.asarray(self.val.labels)
        part = np.arange(self.rank, len(val_ids), self.n_proc)
        logits = predict(self.net, [val_ids[i] for i in part], device=self.acc.device)
        self.net.train()
        correct = float((logits.argmax(-1) == val_labels[part]).sum())
        if self.n_proc > 1:
            correct = float(self.acc.reduce(torch.tensor([correct], device=self.acc.device),
                                            "sum"))
        return correct / max(1, len(val_ids))

    def stop_requested(self) -> bool:
        stop = self.hooks.should_stop
        if stop is None:
            return False
        return agreed(bool(stop())) if self.n_proc > 1 else bool(stop())

    def my_batches(self) -> list[np.ndarray]:
        # The same batches in every process (same seed); this process's share, wrapped
        # around so that every process takes steps_per_epoch steps (DDP needs them all).
        batches = length_batches(self.lengths, self.cfg.batch_size, self.rng)
        mine = batches[self.rank::self.n_proc]
        return (mine + batches[:max(0, self.steps_per_epoch - len(mine))]
                )[:self.steps_per_epoch]

    def run(self) -> None:
        for epoch in range(1, self.cfg.epochs + 1):
            self.epoch = epoch
            data = _Batches(self.train, self.my_batches())
            # A DataLoader over these batches drew its base seed from the global generator
            # each epoch; drawing it here keeps the dropout masks, and so trained students,
            # as they were.
            torch.empty((), dtype=torch.int64).random_()
            self.model.train()
            self.running, self.n_run = 0.0, 0
            for i in range(len(data)):
                if self.stop_requested():
                    self.stopped = True
                    break
                self.train_step(data[i])
                if self.out_of_patience:
                    break
            if self.stopped or self.out_of_patience:
                break

    def train_step(self, item: dict[str, torch.Tensor]) -> None:
        acc, cfg = self.acc, self.cfg
        batch = {k: v.to(acc.device) for k, v in item.items()}
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            logits = self.model(batch["input_ids"])  # (B, C)
        loss = self.loss_fn(logits.float(), batch.get("teacher"), batch["labels"], self.alpha,
                            cfg.temperature)
        self.opt.zero_grad(set_to_none=True)
        acc.backward(loss)
        acc.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.opt.step()
        if self.sched is not None:
            self.sched.step()
        self.step += 1
        if cfg.keep == "average" and self.step > self.total // 2:
            self.accumulate()
        loss_value = float(loss.detach())
        self.running += loss_value
        self.n_run += 1
        self.progress.update(self.step, loss=loss_value, epoch=self.epoch)
        if self.step % self.eval_every == 0 or self.step == self.total:
            self.evaluation()
        if self.hooks.on_step is not None and acc.is_main_process:
            self.hooks.on_step(self.progress)

    @torch.no_grad()
    def accumulate(self) -> None:
        weights = {k: v for k, v in self.net.state_dict().items() if v.is_floating_point()}
        self.n_averaged += 1
        if self.average is None:
            self.average = {k: v.detach().clone() for k, v in weights.items()}
            return
        for k, v in weights.items():
            self.average[k].add_(v - self.average[k], alpha=1.0 / self.n_averaged)

    def evaluation(self) -> None:
        val_acc = self.evaluate()
        self.history.append({"step": self.step, "epoch": self.epoch,
                             "train_loss": self.running / max(1, self.n_run),
                             "val_accuracy": val_acc})
        self.running, self.n_run = 0.0, 0
        # eval_step tells listeners which step this accuracy belongs to (progress events
        # repeat the latest value until the next evaluation).
        self.progress.update(self.step, val_accuracy=val_acc, eval_step=self.step,
                             best_val_accuracy=max(val_acc, self.best["val_accuracy"]))
        if val_acc <= self.best["val_accuracy"]:
            self.bad_evals += 1
            return
        self.best = {"val_accuracy": val_acc, "step": self.step, "epoch": self.epoch}
        self.bad_evals = 0
        self.best_state = copy.deepcopy(self.net.state_dict())
        if self.hooks.on_best is not None and self.acc.is_main_process:
            self.hooks.on_best(self.net, self.best)

    def finish(self) -> dict:
        net, hist = self.net, self.history
        if self.cfg.keep == "average" and not self.stopped and self.average is not None:
            net.load_state_dict(self.average, strict=False)
            best = {"val_accuracy": self.evaluate(), "step": self.step, "epoch": self.epoch,
                    "kept": "average", "averaged_steps": self.n_averaged,
                    "best_seen": self.best}
        elif self.cfg.keep in ("last", "average") and not self.stopped:
            # The weights training ended with; the accuracy is the final evaluation's.
            final = hist[-1]["val_accuracy"] if hist and hist[-1]["step"] == self.step \
                else self.evaluate()
            best = {"val_accuracy": final, "step": self.step, "epoch": self.epoch,
                    "kept": "last", "best_seen": self.best}
        elif self.best_state is None:  # cancelled or no evaluation yet: evaluate what we have
            best = {"val_accuracy": self.evaluate(), "step": self.step, "epoch": 0}
            if self.hooks.on_best is not None and self.acc.is_main_process and self.step > 0:
                self.hooks.on_best(net, best)
        else:
            best = self.best
            net.load_state_dict(self.best_state)
        net.eval()
        return {"best": best, "history": hist, "steps": self.step, "cancelled": self.stopped,
                "early_stopped": self.out_of_patience, "train_examples": len(self.lengths),
                "mode": self.mode, "device": str(self.acc.device), "processes": self.n_proc,
                "precision": "bf16" if self.bf16 else "fp32"}


def train_student(model: BiLSTMClassifier, train: TrainSet, val: TrainSet,
                  cfg: StudentConfig, *, mode: str = "distill", seed: int = 42,
                  device: str = "auto", hooks: Hooks | None = None) -> dict:
    """Train ``model`` in place (it ends holding the kept weights); returns the history.

    ``mode`` "distill" uses ``cfg.loss`` against the teacher's logits; "baseline" trains on
    hard labels only (cross-entropy), on the rows that have one. ``val`` holds the
    validation ids and labels (no logits).
    """
    loop = _Loop(model, train, val, cfg, mode, seed, device, hooks or Hooks())
    loop.epoch = 0
    loop.run()
    return loop.finish()
