from kdstudio.studio.tables import headline, trade_offs


def _row(name, kind, acc, e2e, **kw):
    return {"name": name, "kind": kind, "accuracy": acc, "latency_b1_e2e_ms_p50": e2e, **kw}


TEACHER = _row("teacher", "teacher", 0.90, 12.0, speedup_b1=1.0, size_ratio=1.0)
BILSTM8 = _row("BiLSTM int8", "student-int8", 0.88, 0.40, speedup_b1=52.0, size_ratio=32.0)


def test_headline_reads_the_int8_student_against_the_teacher():
    assert headline({"rows": [TEACHER, BILSTM8]}) == (
        "int8 student: 97.8% of the teacher's accuracy, 52x faster at batch 1, 32x smaller")
    assert headline({"rows": [BILSTM8]}) == ""


def test_trade_offs_list_the_front_fastest_first_and_mark_baselines():
    rows = [TEACHER, BILSTM8,
            _row("static int8", "static-int8", 0.82, 0.16),
            _row("tiny transformer int8", "transformer-int8", 0.85, 1.10),  # beaten by BiLSTM
            _row("fastText", "baseline:fasttext", 0.79, 0.02)]
    assert trade_offs({"rows": rows}) == (
        "Nothing in this run beats these on both accuracy and end-to-end latency: "
        "fastText, baseline: 79.0% at 0.02 ms · static int8: 82.0% at 0.16 ms · "
        "BiLSTM int8: 88.0% at 0.40 ms · teacher: 90.0% at 12.00 ms")


def test_no_trade_offs_line_for_a_run_with_the_bilstm_alone():
    rows = [TEACHER, BILSTM8, _row("baseline", "student:baseline", 0.84, 0.45)]
    assert trade_offs({"rows": rows}) == ""
