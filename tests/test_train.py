import numpy as np
import pytest
import torch

from kdstudio.config import StudentConfig
from kdstudio.machine import cpu_info
from kdstudio.student import BiLSTMClassifier
from kdstudio.train import Hooks, TrainSet, predict, train_student


def _data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    ids = [np.concatenate([rng.integers(4, 20, rng.integers(1, 5)), [2 + y],
                           rng.integers(4, 20, rng.integers(0, 4))]) for y in labels]
    logits = np.stack([np.where(labels == 0, 2.0, -2.0), np.where(labels == 1, 2.0, -2.0)], 1)
    return ids, labels, logits.astype(np.float32)


def _model(seed=0):
    torch.manual_seed(seed)
    return BiLSTMClassifier(20, 8, 8, 8, 2, dropout=0.0)


CFG = StudentConfig(hidden_size=8, fc_size=8, epochs=6, batch_size=16, learning_rate=0.01,
                    patience=0)


def test_distillation_learns_and_is_deterministic():
    ids, labels, logits = _data()
    vids, vlabels, _ = _data(60, seed=1)
    seen = []
    h1 = train_student(_model(), TrainSet(ids, labels, logits), TrainSet(vids, vlabels, None),
                      CFG, seed=3,
                       device="cpu", hooks=Hooks(on_step=lambda p: seen.append(p.step)))
    h2 = train_student(_model(), TrainSet(ids, labels, logits), TrainSet(vids, vlabels, None),
                      CFG, seed=3,
                       device="cpu")
    assert h1["best"]["val_accuracy"] > 0.9
    assert h1["history"] == h2["history"]
    assert seen == list(range(1, h1["steps"] + 1))


def test_baseline_uses_only_labelled_rows():
    ids, labels, logits = _data()
    labels = labels.copy()
    labels[100:] = -1  # augmented rows have no hard label
    h = train_student(_model(), TrainSet(ids, labels, logits), TrainSet(ids[:50], labels[:50], None),
                      CFG,
                      mode="baseline", seed=0, device="cpu")
    assert h["train_examples"] == 100 and h["mode"] == "baseline"


def test_should_stop_cancels_and_keeps_best():
    ids, labels, logits = _data()
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] > 20

    saved = []
    cfg = StudentConfig(hidden_size=8, fc_size=8, epochs=50, batch_size=16, patience=0,
                        evals_per_epoch=4)
    h = train_student(_model(), TrainSet(ids, labels, logits), TrainSet(ids[:40], labels[:40], None),
                      cfg,
                      seed=0, device="cpu", hooks=Hooks(should_stop=stop, on_best=lambda m, b: saved.append(b)))
    assert h["cancelled"] and h["steps"] == 20
    assert saved  # a checkpoint was handed out before the stop


def test_early_stopping():
    ids, labels, logits = _data()
    cfg = StudentConfig(hidden_size=8, fc_size=8, epochs=100, batch_size=16, patience=2,
                        keep="best", learning_rate=0.01)
    h = train_student(_model(), TrainSet(ids, labels, logits), TrainSet(ids[:40], labels[:40], None),
                      cfg,
                      seed=0, device="cpu")
    assert h["early_stopped"] and h["steps"] < 100 * 13


def test_predict_keeps_input_order():
    m = _model().eval()
    ids, _, _ = _data(30)
    out = predict(m, ids, batch_size=7)
    with torch.no_grad():
        one = m(torch.as_tensor(ids[5])[None]).numpy()
    assert np.allclose(out[5], one[0], atol=1e-6)


def test_ce_loss_trains_on_labelled_rows_only():
    ids, labels, logits = _data()
    labels = labels.copy()
    labels[150:] = -1
    cfg = StudentConfig(hidden_size=8, fc_size=8, epochs=1, batch_size=16, loss="ce")
    h = train_student(_model(), TrainSet(ids, labels, logits), TrainSet(ids[:20], labels[:20], None),
                      cfg,
                      seed=0, device="cpu")
    assert h["train_examples"] == 150


def test_keep_last_ends_with_the_final_weights_and_their_accuracy():
    ids, labels, logits = _data()
    vids, vlabels, _ = _data(60, seed=1)
    cfg = StudentConfig(hidden_size=8, fc_size=8, epochs=3, batch_size=16, learning_rate=0.01,
                        patience=0, evals_per_epoch=2, keep="last", lr_schedule="linear")
    m = _model()
    h = train_student(m, TrainSet(ids, labels, logits), TrainSet(vids, vlabels, None),
                      cfg, seed=0,
                      device="cpu")
    assert h["best"]["kept"] == "last" and h["best"]["step"] == h["steps"]
    assert h["best"]["val_accuracy"] == h["history"][-1]["val_accuracy"]
    acc = float((predict(m, vids).argmax(-1) == vlabels).mean())
    assert acc == h["best"]["val_accuracy"]


def test_keep_average_ends_with_the_mean_of_the_second_half_of_the_weights():
    ids, labels, logits = _data()
    vids, vlabels, _ = _data(60, seed=1)
    cfg = StudentConfig(hidden_size=8, fc_size=8, epochs=6, batch_size=16, learning_rate=0.01,
                        patience=0, keep="average")
    m = _model()
    seen = []  # the raw weights after each step (the hook runs after the step)

    def record(progress):
        seen.append({k: v.detach().clone() for k, v in m.state_dict().items()})

    h = train_student(m, TrainSet(ids, labels, logits), TrainSet(vids, vlabels, None),
                      cfg, seed=0, device="cpu", hooks=Hooks(on_step=record))
    half = seen[h["steps"] // 2:]
    assert h["best"]["kept"] == "average" and h["best"]["averaged_steps"] == len(half)
    for k, v in m.state_dict().items():
        torch.testing.assert_close(v, torch.stack([s[k] for s in half]).mean(0))
    assert not torch.equal(m.out.weight, seen[-1]["out.weight"])
    acc = float((predict(m, vids).argmax(-1) == vlabels).mean())
    assert acc == h["best"]["val_accuracy"] > 0.9


def test_linear_schedule_decays_the_learning_rate_to_zero(monkeypatch):
    ids, labels, logits = _data()
    seen = []
    cfg = StudentConfig(hidden_size=8, fc_size=8, epochs=2, batch_size=16, patience=0,
                        lr_schedule="linear")
    orig_step = torch.optim.Adam.step

    def spy(self, *a, **k):
        seen.append(self.param_groups[0]["lr"])
        return orig_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    train_student(_model(), TrainSet(ids, labels, logits), TrainSet(ids[:20], labels[:20], None),
                      cfg, seed=0,
                  device="cpu")
    assert seen[0] == cfg.learning_rate and seen[-1] < 0.1 * cfg.learning_rate
    assert all(a >= b for a, b in zip(seen, seen[1:], strict=False))


@pytest.mark.parametrize("bf16", [False, pytest.param(True, marks=pytest.mark.skipif(
    "AVX-512" not in cpu_info()[1],
    reason="oneDNN has no bfloat16 LSTM without AVX-512 (seen on an AVX2-only AMD EPYC); "
           "training only takes bfloat16 where the CPU has it in hardware"))])
def test_bf16_forward_on_cpus_that_have_it_still_learns(monkeypatch, bf16):
    # The machine decides; both ways must learn and say which ran.
    monkeypatch.setattr("kdstudio.train.native_bf16", lambda: bf16)
    ids, labels, logits = _data()
    vids, vlabels, _ = _data(60, seed=1)
    model = _model()
    dtypes = set()
    model.fc.register_forward_hook(lambda m, i, o: dtypes.add(o.dtype) if m.training else None)
    h = train_student(model, TrainSet(ids, labels, logits), TrainSet(vids, vlabels, None),
                      CFG, seed=3, device="cpu")
    assert h["precision"] == ("bf16" if bf16 else "fp32")
    assert dtypes == {torch.bfloat16 if bf16 else torch.float32}
    assert h["best"]["val_accuracy"] > 0.9
    # The kept weights stay float32, so export and quantization see what they always did.
    assert {p.dtype for p in model.parameters()} == {torch.float32}
