import numpy as np

from kdstudio.compare import Predictor, Timing, measure


def _predictor(calls: list[int]) -> Predictor:
    def run(batch):
        calls.append(len(batch))
        return np.stack([np.array([0.0, 1.0]) if "good" in t else np.array([1.0, 0.0])
                         for t in batch])

    return Predictor("toy", "student", lambda texts: list(texts), run, 10, 40, "python")


TEXTS = ["good", "bad", "good film", "bad film", "good one"]


def test_measure_reports_accuracy_and_agreement():
    row = measure(_predictor([]), TEXTS, np.array([1, 0, 1, 0, 0]), np.array([1, 0, 1, 0, 1]),
                  Timing(latency_samples=5, warmup=1, batch_size=2))
    assert row["accuracy"] == 0.8 and row["agreement_with_teacher"] == 1.0
    assert row["latency_samples"] == 5 and row["throughput_passes"] == 1


def test_a_graph_whose_logits_depend_on_the_batch_is_scored_one_sentence_at_a_time():
    # As dynamic int8 does: the batch's longest text sets a scale every row is divided by,
    # which flips "good" rows batched with a long one.
    def run(batch):
        scale = max(len(t) for t in batch)
        return np.stack([np.array([0.5, 8.0 / scale]) if "good" in t else np.array([1.0, 0.0])
                         for t in batch])

    texts, labels = ["good", "bad film of the year", "good one"], np.array([1, 0, 1])
    how = Timing(latency_samples=3, warmup=0, batch_size=3)
    batched = Predictor("b", "student", lambda t: list(t), run, 1, 1, "python")
    alone = Predictor("s", "student-int8", lambda t: list(t), run, 1, 1, "python",
                      per_sentence=True)
    assert measure(batched, texts, labels, None, how)["accuracy"] == 1 / 3
    row = measure(alone, texts, labels, None, how)
    assert row["accuracy"] == 1.0 and row["accuracy_batch_size"] == 1


def test_latency_only_rows_skip_the_accuracy_pass():
    calls: list[int] = []
    row = measure(_predictor(calls), TEXTS, None, None,
                  Timing(latency_samples=5, warmup=0, batch_size=5))
    assert row["accuracy"] is None and row["agreement_with_teacher"] is None
    # 5 single calls on encoded inputs, the same 5 end to end, one warm-up batch, one timed
    # pass: no prediction pass before them
    assert calls == [1] * 5 + [1] * 5 + [5, 5]


def test_throughput_repeats_passes_up_to_the_limit():
    calls: list[int] = []
    row = measure(_predictor(calls), TEXTS, None, None,
                  Timing(latency_samples=1, warmup=0, batch_size=5, min_seconds=60.0,
                         max_passes=3))
    assert row["throughput_passes"] == 3 and calls == [1, 1, 5, 5, 5, 5]


def test_end_to_end_latency_includes_encoding_and_the_call_alone_does_not():
    import time

    def slow_encode(texts):
        time.sleep(0.004)
        return list(texts)

    p = Predictor("toy", "student", slow_encode, lambda b: np.zeros((len(b), 2)), 10, 40,
                  "python")
    row = measure(p, TEXTS, None, None, Timing(latency_samples=5, warmup=0, batch_size=5))
    assert row["latency_b1_e2e_ms_p50"] >= 4.0
    assert row["latency_b1_ms_p50"] < 1.0


def _toy_predictor(name: str) -> Predictor:
    """Module-level, so that a spawned process can build it from a pickled partial."""
    import os

    def run(batch):
        return np.stack([np.array([0.0, 1.0]) if "good" in t else np.array([1.0, 0.0])
                         for t in batch])

    return Predictor(f"{name} in {os.getpid()}", "student-int8", lambda texts: list(texts),
                     run, 10, 40, "python")


def test_measure_isolated_builds_and_measures_in_another_process():
    import os
    from functools import partial

    from kdstudio.compare import measure_isolated

    labels, teacher = np.array([1, 0, 1, 0, 0]), np.array([1, 0, 1, 0, 1])
    how = Timing(latency_samples=5, warmup=1, batch_size=2)
    here = measure(_toy_predictor("toy"), TEXTS, labels, teacher, how)
    there = measure_isolated(partial(_toy_predictor, "toy"), TEXTS, labels, teacher, how)
    assert there["name"] != f"toy in {os.getpid()}" and there["name"].startswith("toy in ")
    for key in ("accuracy", "agreement_with_teacher", "params", "size_mb", "kind"):
        assert there[key] == here[key]
    assert (there["_pred"] == here["_pred"]).all()


def test_fastest_run_keeps_the_thread_count_with_the_lowest_median_call():
    import time

    import numpy as np

    from kdstudio.compare import Predictor, fastest_run

    def with_threads(n):
        def run(x):
            time.sleep({1: 0.004, 2: 0.001}[n])
            return np.zeros((1, 2))
        return run

    p = Predictor("m", "student", lambda t: t, with_threads(1), 1, 1, "test", with_threads)
    run, n = fastest_run(p, [0] * 5, (1, 2))
    assert n == 2 and run is not p.run
    assert fastest_run(p, [0] * 5, (2,)) == (p.run, None)  # one setting: nothing to choose
    fixed = Predictor("m", "student", lambda t: t, with_threads(1), 1, 1, "test")
    assert fastest_run(fixed, [0] * 5, (1, 2)) == (fixed.run, None)  # compare.threads set


def test_pareto_front_keeps_the_models_nothing_beats_on_both():
    from kdstudio.compare import pareto_front

    def row(name, ms, acc):
        return {"name": name, "latency_b1_e2e_ms_p50": ms, "accuracy": acc}

    rows = [row("teacher", 8.0, 0.90), row("bilstm", 0.5, 0.88), row("slow-worse", 1.0, 0.85),
            row("static", 0.05, 0.84), row("tie-slower", 0.05, 0.83), row("fast", 0.01, 0.80)]
    front = [r["name"] for r in pareto_front(rows)]
    assert front == ["fast", "static", "bilstm", "teacher"]


def test_size_chart_writes_each_name_above_its_own_bar():
    from kdstudio.compare import figures

    rows = [{"name": "teacher", "accuracy": 0.9, "latency_b1_ms_p50": 8.0, "size_mb": 90.87,
             "params": 22.7e6},
            {"name": "student <int8> & co", "accuracy": 0.88, "latency_b1_ms_p50": 0.1,
             "size_mb": 2.81, "params": 2.7e6}]
    bars = figures(rows)["size"]
    (bar,) = bars.data
    assert list(bar.x) == [90.87, 2.81] and list(bar.text) == ["90.87 MB", "2.81 MB"]
    # Names are annotations, not tick labels, one per bar, just above it (the axis runs down).
    assert bars.layout.yaxis.showticklabels is False
    names = {a.text: a.y for a in bars.layout.annotations}
    assert names == {"teacher": -0.25, "student &lt;int8&gt; &amp; co": 0.75}
    assert all(a.x == 0 and a.xanchor == "left" for a in bars.layout.annotations)
    # The largest bar's value label fits inside the axis range.
    assert bars.layout.xaxis.range[1] > 1.2 * 90.87


def test_long_model_names_wrap_in_the_legend_and_over_the_bars():
    from kdstudio.compare import figures

    long = ("tiny transformer (3 teacher layers) + MSE w/ teacher labels + augmentation, "
            "int8 (ONNX Runtime)")
    rows = [{"name": "teacher", "accuracy": 0.9, "latency_b1_ms_p50": 8.0, "size_mb": 90.87,
             "params": 22.7e6},
            {"name": long, "accuracy": 0.88, "latency_b1_ms_p50": 0.6, "size_mb": 15.75,
             "params": 15.6e6}]
    figs = figures(rows)
    legend = [t.name for t in figs["accuracy_latency"].data]
    assert legend[0] == "teacher"
    lines = legend[1].split("<br>")
    # Every word kept, in order, and no line longer than a half-width panel holds.
    assert len(lines) == 2 and " ".join(lines) == long and max(map(len, lines)) <= 80
    assert [a.text for a in figs["size"].layout.annotations] == ["teacher", legend[1]]
    assert all(a.align == "left" for a in figs["size"].layout.annotations)  # lines flush left
    # The extra lines get room: both figures grow (six rows, past the size chart's minimum).
    short, wrapped = (figures((rows[:1] + [dict(rows[1], name=n)]) * 3) for n in ("int8", long))
    for key in ("accuracy_latency", "size"):
        assert short[key].layout.height < wrapped[key].layout.height


def test_latency_axis_writes_its_ticks_in_full():
    from kdstudio.compare import figures, log_ticks

    # the reference benchmark's span: 0.156 ms (int8 student) to 6.15 ms (teacher)
    assert log_ticks([0.156, 0.87, 6.15]) == {
        "tickvals": [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0],
        "ticktext": ["0.1", "0.2", "0.5", "1", "2", "5", "10"]}
    assert log_ticks([]) == {}
    rows = [{"name": "teacher", "accuracy": 0.9, "latency_b1_ms_p50": 6.15, "size_mb": 90.87,
             "params": 22.7e6},
            {"name": "int8", "accuracy": 0.88, "latency_b1_ms_p50": 0.014, "size_mb": 3.0,
             "params": 3e6}]
    axis = figures(rows)["accuracy_latency"].layout.xaxis
    assert list(axis.ticktext) == ["0.01", "0.02", "0.05", "0.1", "0.2", "0.5", "1", "2", "5",
                                   "10"]


def test_every_model_of_a_run_with_every_family_gets_its_own_colour():
    from kdstudio.compare import figures

    rows = [{"name": f"model {i}", "kind": "student:distilled", "accuracy": 0.8 + i / 100,
             "latency_b1_ms_p50": 0.1 + i, "size_mb": 1.0 + i, "params": 1e6}
            for i in range(12)]
    traces = figures(rows)["accuracy_latency"].data
    assert len({t.marker.color for t in traces[:12]}) == 12
