from kdstudio.studio.reference import reference_table


def _row(name, kind, acc, sd):
    return {"name": name, "kind": kind, "accuracy_mean": acc, "accuracy_std": sd,
            "size_mb": 1.0, "latency_b1_ms_p50": 1.0, "speedup_b1": 1.0, "speedup_b32": 1.0,
            "size_ratio_vs_teacher": 1.0}


def test_students_show_their_spread_over_seeds_even_when_it_is_zero():
    rows = reference_table({"rows": [
        _row("static, int8", "static-int8", 0.836, 0.0),
        _row("BiLSTM", "student:distilled", 0.8769, 0.0024),
        _row("bert-large", "reference:bert-large", 0.5, None),
        _row("teacher", "teacher", 0.8933, 0.0)]})
    assert [r["accuracy"] for r in rows] == ["83.6% ± 0.00", "87.7% ± 0.24", "50.0%", "89.3%"]


def test_reference_chart_draws_roles_and_end_to_end_latency_like_a_runs():
    from kdstudio.studio.reference import reference_figures

    def row(name, kind, acc, call, e2e):
        return {**_row(name, kind, acc, 0.0), "latency_b1_ms_p50": call,
                "latency_b1_e2e_ms_p50": e2e, "params": 1e6}

    fig = reference_figures({"rows": [row("fastText", "baseline:fasttext", 0.789, 0.01, 0.02),
                                      row("teacher", "teacher", 0.893, 12.0, 15.0)]})
    scatter = fig["accuracy_latency"]
    pts = {t.name: (t.x[0], t.marker.symbol) for t in scatter.data if t.mode == "markers"}
    assert pts == {"fastText · baseline": (0.02, "diamond"), "teacher": (15.0, "square")}
    assert "end to end" in scatter.layout.xaxis.title.text
