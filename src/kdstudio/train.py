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


def train_student(model: BiLSTMClassifier, train: TrainSet, val_ids: list[np.ndarray],
                  val_labels: np.ndarray, cfg: StudentConfig, *, mode: str = "distill",
                  seed: int = 42, device: str = "auto",
                  on_step: Callable[[Progress], None] | None = None,
                  should_stop: Callable[[], bool] | None = None,
                  on_best: Callable[[BiLSTMClassifier, dict], None] | None = None,
                  stage: str = "student") -> dict:
    """Train ``model`` in place (it ends holding the best weights); returns the history.

    ``mode`` "distill" uses ``cfg.loss`` against the teacher's logits; "baseline" trains on
    hard labels only (cross-entropy), on the rows that have one.
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    set_seed(seed)
    rng = np.random.default_rng(seed)
    if mode == "baseline" or cfg.loss == "ce":
        # Hard labels only: augmented copies have none, so only the originals train.
        keep = np.flatnonzero(train.labels >= 0)
        train = TrainSet([train.ids[i] for i in keep], train.labels[keep], None)
        loss_fn, alpha = LOSSES["ce"], 1.0
    else:
        if train.teacher_logits is None:
            raise ValueError("distillation needs the teacher's logits")
        loss_fn, alpha = LOSSES[cfg.loss], cfg.alpha
    acc = Accelerator(cpu=use_cpu(device))
    opt = make_optimizer(cfg, model.parameters())
    model, opt = acc.prepare(model, opt)
    n_proc, rank = acc.num_processes, acc.process_index

    lengths = [len(x) for x in train.ids]
    # length_batches cuts chunks of batch_size * bucket rows into batches, so an epoch has
    # exactly ceil(N / batch_size) batches; each process takes every n_proc-th of them.
    steps_per_epoch = math.ceil(math.ceil(len(lengths) / cfg.batch_size) / n_proc)
    total = steps_per_epoch * cfg.epochs
    eval_every = max(1, steps_per_epoch // cfg.evals_per_epoch)
    sched = None
    if cfg.lr_schedule == "linear":
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: max(0.0, 1.0 - s / max(1, total)))
    progress = Progress(stage=stage, total=total)
    progress.update(0, device=str(acc.device), mode=mode)
    best = {"val_accuracy": -1.0, "step": 0, "epoch": 0}
    best_state = None
    history: list[dict] = []
    bad_evals, step, stopped = 0, 0, False

    def evaluate() -> float:
        # Each process predicts every n_proc-th validation sentence; the correct counts are
        # summed, so all processes get the same accuracy (one process: the plain mean).
        net = acc.unwrap_model(model)
        part = np.arange(rank, len(val_ids), n_proc)
        logits = predict(net, [val_ids[i] for i in part], device=acc.device)
        net.train()
        correct = float((logits.argmax(-1) == np.asarray(val_labels)[part]).sum())
        if n_proc > 1:
            correct = float(acc.reduce(torch.tensor([correct], device=acc.device), "sum"))
        return correct / max(1, len(val_ids))

    def stop_requested() -> bool:
        if should_stop is None:
            return False
        return agreed(bool(should_stop())) if n_proc > 1 else bool(should_stop())

    def my_batches() -> list[np.ndarray]:
        # The same batches in every process (same seed); this process's share, wrapped
        # around so that every process takes steps_per_epoch steps (DDP needs them all).
        batches = length_batches(lengths, cfg.batch_size, rng)
        mine = batches[rank::n_proc]
        return (mine + batches[:max(0, steps_per_epoch - len(mine))])[:steps_per_epoch]

    for epoch in range(1, cfg.epochs + 1):
        data = _Batches(train, my_batches())
        model.train()
        running, n_run = 0.0, 0
        for i in range(len(data)):
            if stop_requested():
                stopped = True
                break
            batch = {k: v.to(acc.device) for k, v in data[i].items()}
            logits = model(batch["input_ids"])  # (B, C)
            loss = loss_fn(logits, batch.get("teacher"), batch["labels"], alpha,
                           cfg.temperature)
            opt.zero_grad(set_to_none=True)
            acc.backward(loss)
            acc.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            if sched is not None:
                sched.step()
            step += 1
            loss_value = float(loss.detach())
            running += loss_value
            n_run += 1
            progress.update(step, loss=loss_value, epoch=epoch)
            if step % eval_every == 0 or step == total:
                val_acc = evaluate()
                history.append({"step": step, "epoch": epoch,
                                "train_loss": running / max(1, n_run), "val_accuracy": val_acc})
                running, n_run = 0.0, 0
                # eval_step tells listeners which step this accuracy belongs to (progress
                # events repeat the latest value until the next evaluation).
                progress.update(step, val_accuracy=val_acc, eval_step=step,
                                best_val_accuracy=max(val_acc, best["val_accuracy"]))
                if val_acc > best["val_accuracy"]:
                    best = {"val_accuracy": val_acc, "step": step, "epoch": epoch}
                    bad_evals = 0
                    best_state = copy.deepcopy(acc.unwrap_model(model).state_dict())
                    if on_best is not None and acc.is_main_process:
                        on_best(acc.unwrap_model(model), best)
                else:
                    bad_evals += 1
            if on_step is not None and acc.is_main_process:
                on_step(progress)
            if cfg.patience and bad_evals >= cfg.patience:
                break
        if stopped or (cfg.patience and bad_evals >= cfg.patience):
            break
    net = acc.unwrap_model(model)
    if cfg.keep == "last" and not stopped:
        # The weights training ended with; the accuracy is the final evaluation's.
        final = history[-1]["val_accuracy"] if history and history[-1]["step"] == step \
            else evaluate()
        best = {"val_accuracy": final, "step": step, "epoch": epoch, "kept": "last",
                "best_seen": best}
    elif best_state is None:  # cancelled or no evaluation yet: evaluate what we have
        val_acc = evaluate()
        best = {"val_accuracy": val_acc, "step": step, "epoch": 0}
        if on_best is not None and acc.is_main_process and step > 0:
            on_best(net, best)
    else:
        net.load_state_dict(best_state)
    net.eval()
    return {"best": best, "history": history, "steps": step, "cancelled": stopped,
            "early_stopped": bool(cfg.patience and bad_evals >= cfg.patience),
            "train_examples": len(lengths), "mode": mode, "device": str(acc.device),
            "processes": n_proc}
