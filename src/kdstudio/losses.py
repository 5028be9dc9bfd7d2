"""Distillation losses as pure functions, and a registry the config and the UI choose from.

Every loss takes student logits (B, C), teacher logits (B, C) or None, hard labels (B,) and
the student config's ``alpha`` (weight of the hard-label term) and ``temperature``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def mse_logits(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared error between logits (Tang et al.): matches the teacher's full scale,
    which probabilities would squash."""
    return F.mse_loss(student, teacher)  # student, teacher: (B, C)


def kl_temperature(student: torch.Tensor, teacher: torch.Tensor, t: float) -> torch.Tensor:
    """KL(teacher_T || student_T) scaled by T² (Hinton et al. 2015): the gradients of the
    softened targets shrink as 1/T², so the scale keeps them comparable across temperatures
    and with the hard-label term."""
    log_p_s = F.log_softmax(student / t, dim=-1)  # (B, C)
    log_p_t = F.log_softmax(teacher / t, dim=-1)  # (B, C)
    return F.kl_div(log_p_s, log_p_t, log_target=True, reduction="batchmean") * (t * t)


def hard_ce(student: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(student, labels)  # student: (B, C), labels: (B,)


def mix(soft: torch.Tensor, hard: torch.Tensor | None, alpha: float) -> torch.Tensor:
    """(1 - α) · soft + α · hard; rows without a hard label (augmented copies) use soft only."""
    if hard is None or alpha == 0.0:
        return soft
    return (1.0 - alpha) * soft + alpha * hard


def _hard_term(student: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | None:
    """CE over rows that have a label (label ≥ 0); augmented copies carry -1."""
    if labels is None:
        return None
    has = labels >= 0
    if not bool(has.any()):
        return None
    return hard_ce(student[has], labels[has])


LossFn = Callable[[torch.Tensor, torch.Tensor | None, torch.Tensor | None, float, float],
                  torch.Tensor]


def _mse(s, t, y, alpha, temp):
    return mix(mse_logits(s, t), _hard_term(s, y), alpha)


def _kl(s, t, y, alpha, temp):
    return mix(kl_temperature(s, t, temp), _hard_term(s, y), alpha)


def _ce(s, t, y, alpha, temp):
    term = _hard_term(s, y)
    if term is None:
        raise ValueError("the 'ce' loss needs hard labels on every batch")
    return term


#: name → loss(student_logits, teacher_logits, labels, alpha, temperature)
LOSSES: dict[str, LossFn] = {"mse": _mse, "kl": _kl, "ce": _ce}
