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
