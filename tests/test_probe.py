"""The host probe: a fixed int8 BiLSTM and a fixed matrix product, timed."""

import math

import pytest
import torch

from kdstudio.probe import drift, host_probe


def test_host_probe_times_both_workloads_and_leaves_torch_threads_alone():
    threads = torch.get_num_threads()
    p = host_probe(threads=1, calls=5, warmup=1)
    assert torch.get_num_threads() == threads
    assert p["threads"] == 1 and p["calls"] == 5
    for key in ("int8_bilstm_b1_ms", "torch_matmul_ms"):
        assert math.isfinite(p[key]) and p[key] > 0


def test_drift_is_the_slower_reading_over_the_faster():
    a = {"int8_bilstm_b1_ms": 0.1, "torch_matmul_ms": 0.5}
    b = {"int8_bilstm_b1_ms": 0.25, "torch_matmul_ms": 0.4}
    assert drift(a, b) == pytest.approx({"int8_bilstm_b1_ms": 2.5, "torch_matmul_ms": 1.25})
    assert drift(b, a) == drift(a, b)
    assert drift(a, {"int8_bilstm_b1_ms": 0.1}) == {"int8_bilstm_b1_ms": 1.0}


def test_median_call_ms_warms_up_then_times_each_call(monkeypatch):
    from kdstudio import probe

    seen = []
    clock = iter([0.0, 0.001, 1.0, 1.003, 2.0, 2.010])  # three timed calls: 1, 3, 10 ms
    monkeypatch.setattr(probe.time, "perf_counter", lambda: next(clock))
    assert probe.median_call_ms(seen.append, calls=3, warmup=2) == pytest.approx(3.0)
    assert seen == [0, 1, 0, 1, 2]
