import math

import pytest
import torch

from kdstudio.losses import LOSSES, kl_temperature, mse_logits


def test_mse_is_zero_on_match_and_matches_formula():
    s = torch.tensor([[1.0, -2.0], [0.5, 0.5]])
    assert mse_logits(s, s).item() == 0.0
    t = torch.zeros_like(s)
    assert mse_logits(s, t).item() == pytest.approx((1 + 4 + 0.25 + 0.25) / 4)


def test_kl_is_zero_on_match_and_scaled_by_t_squared():
    s = torch.tensor([[2.0, -1.0, 0.0]])
    t = torch.tensor([[0.0, 1.0, 0.5]])
    assert kl_temperature(s, s, 3.0).item() == pytest.approx(0.0, abs=1e-7)
    p_t = torch.softmax(t / 2, -1)
    manual = (p_t * (torch.log_softmax(t / 2, -1) - torch.log_softmax(s / 2, -1))).sum()
    assert kl_temperature(s, t, 2.0).item() == pytest.approx(4 * manual.item(), rel=1e-5)


def test_alpha_mixes_hard_term_only_on_labelled_rows():
    s = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    t = s.clone()
    y = torch.tensor([1, -1])  # second row: an augmented copy, no hard label
    ce_first = torch.nn.functional.cross_entropy(s[:1], y[:1]).item()
    out = LOSSES["mse"](s, t, y, 0.5, 1.0).item()
    assert out == pytest.approx(0.5 * ce_first)
    assert LOSSES["mse"](s, t, torch.tensor([-1, -1]), 0.5, 1.0).item() == 0.0


def test_ce_needs_labels():
    s = torch.zeros((2, 2))
    assert LOSSES["ce"](s, None, torch.tensor([0, 1]), 1.0, 1.0).item() == \
        pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="needs hard labels"):
        LOSSES["ce"](s, None, torch.tensor([-1, -1]), 1.0, 1.0)


def test_gradients_flow():
    s = torch.randn(4, 3, requires_grad=True)
    for name, fn in LOSSES.items():
        loss = fn(s, torch.randn(4, 3), torch.tensor([0, 1, 2, 0]), 0.3, 2.0)
        (g,) = torch.autograd.grad(loss, s)
        assert torch.isfinite(g).all() and g.abs().sum() > 0, name
