import numpy as np

from kdstudio.compare import Predictor, measure


def _predictor(calls: list[int]) -> Predictor:
    def run(batch):
        calls.append(len(batch))
        return np.stack([np.array([0.0, 1.0]) if "good" in t else np.array([1.0, 0.0])
                         for t in batch])

    return Predictor("toy", "student", lambda texts: list(texts), run, 10, 40, "python")


TEXTS = ["good", "bad", "good film", "bad film", "good one"]


def test_measure_reports_accuracy_and_agreement():
    row = measure(_predictor([]), TEXTS, np.array([1, 0, 1, 0, 0]), np.array([1, 0, 1, 0, 1]),
                  latency_samples=5, warmup=1, batch_size=2)
    assert row["accuracy"] == 0.8 and row["agreement_with_teacher"] == 1.0
    assert row["latency_samples"] == 5 and row["throughput_passes"] == 1


def test_latency_only_rows_skip_the_accuracy_pass():
    calls: list[int] = []
    row = measure(_predictor(calls), TEXTS, None, None, latency_samples=5, warmup=0,
                  batch_size=5)
    assert row["accuracy"] is None and row["agreement_with_teacher"] is None
    # 5 single calls, one warm-up batch, one timed pass: no prediction pass before them
    assert calls == [1] * 5 + [5, 5]


def test_throughput_repeats_passes_up_to_the_limit():
    calls: list[int] = []
    row = measure(_predictor(calls), TEXTS, None, None, latency_samples=1, warmup=0,
                  batch_size=5, min_seconds=60.0, max_passes=3)
    assert row["throughput_passes"] == 3 and calls == [1, 5, 5, 5, 5]
