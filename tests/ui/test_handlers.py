"""The tabs' handlers, in process (no server, no browser), through the same guard the
wiring uses: a user's error becomes a message, nothing raises."""

from __future__ import annotations

import pytest

from kdstudio import studio
from kdstudio.runs import Run
from kdstudio.ui.common import guard

# Handlers called outside a request turn gr.Warning toasts into Python warnings.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:gradio.helpers")


def _handlers():
    from kdstudio.ui import compare_tab, export_tab

    return (guard(compare_tab.show_results, ["run_id"], 7, 0),
            guard(compare_tab.classify, ["text", "run_id"], 8, 0),
            guard(export_tab.prepare, ["run_id"], 9, 0),
            guard(compare_tab.find_disagreements, ["run_id"], 2, 0))


def test_compare_and_export_before_any_run_get_a_message(tmp_path):
    """KDSTUDIO_RUNS_DIR points at an empty folder here (tests/conftest.py)."""
    show_results, classify, prepare, find_disagreements = _handlers()
    header, table, scatter, sizes, seeds, _, disagree_btn = show_results("")
    # The reference table is in the seed format already; there are no sentences to compare.
    assert seeds["visible"] is False and disagree_btn["visible"] is False
    assert "No finished run yet: run the quick demo or start a distillation" in header
    # A first visit shows the committed SST-2 benchmark, labelled as such.
    assert "Reference benchmark: SST-2 validation (872 sentences)" in header
    assert studio.reference_headline(studio.reference_benchmark()) in header
    assert table["model"].tolist() == [r["name"] for r in studio.reference_benchmark()["rows"]]
    assert table["model"].tolist()[-1].startswith("teacher")
    assert scatter is not None
    msg, *_ = classify("a fine film", "")
    assert "No finished run yet" in msg
    msg, int8, *_, preview = prepare("")
    assert "No finished run yet" in msg and int8["interactive"] is False
    # A first visit is not an error: the next step, styled as information, no empty card.
    assert "kd-info" in msg and "kd-error" not in msg and preview["visible"] is False
    msg, *_ = find_disagreements("")
    assert "No finished run yet" in msg


def test_a_run_without_results_clears_the_numbers(tiny_config, tmp_path):
    show_results = _handlers()[0]
    run = Run.create(tiny_config, tmp_path / "runs")  # the runs folder the env names
    run.set_status("failed", stage="teacher", message="out of memory")
    header, table, scatter, *_ = show_results(run.id)
    assert "has no comparison yet (failed, teacher)" in header
    assert table.empty and scatter is None


def test_unexpected_errors_become_one_line_messages(monkeypatch, finished_run):
    classify = _handlers()[1]

    def boom(*_):
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(studio, "predict", boom)
    monkeypatch.setenv("KDSTUDIO_RUNS_DIR", str(finished_run.path.parent))
    msg, *rest = classify("fine", str(finished_run.id))
    assert "Something went wrong (RuntimeError: disk on fire)" in msg
    assert "second line" not in msg and "Traceback" not in msg


def test_a_finished_run_shows_its_seed_table_and_the_disagreements_button(monkeypatch,
                                                                          finished_run):
    show_results = _handlers()[0]
    monkeypatch.setenv("KDSTUDIO_RUNS_DIR", str(finished_run.path.parent))
    header, table, scatter, sizes, seeds, disagree, disagree_btn = show_results(finished_run.id)
    assert finished_run.id in header and not table.empty
    assert seeds["visible"] is True and disagree_btn["visible"] is True
    assert seeds["value"]["model"].tolist()[0] == "BiLSTM (baseline, hard labels)"
    assert seeds["value"]["accuracy"].tolist()[-1].endswith("%")  # the teacher's, measured


def test_the_runs_table_shows_once_a_run_exists(tiny_config, tmp_path):
    from kdstudio.ui import distill_tab

    empty = distill_tab.runs_frame()  # KDSTUDIO_RUNS_DIR is an empty folder here
    assert empty["visible"] is False and empty["value"].empty
    run = Run.create(tiny_config, tmp_path / "runs")
    shown = distill_tab.runs_frame()
    assert shown["visible"] is True and shown["value"]["run"].tolist() == [run.id]


def test_export_of_a_finished_run_enables_its_files_and_shows_its_card(monkeypatch,
                                                                       finished_run):
    prepare = _handlers()[2]
    monkeypatch.setenv("KDSTUDIO_RUNS_DIR", str(finished_run.path.parent))
    msg, int8, *_, preview = prepare(finished_run.id)
    assert f"Files of run {finished_run.id}" in msg and int8["interactive"] is True
    assert preview["visible"] is True and "BiLSTM student distilled from" in preview["value"]


def test_the_header_says_how_the_followed_job_ended():
    from kdstudio.ui.builder import ended_note

    done = ended_note("20261204-011008-quick:done:[1, 2]")
    assert "Run 20261204-011008-quick finished" in done and "kd-ok" in done
    failed = ended_note("20261204-011008-quick:failed:[1, 2]")
    assert "ended (failed)" in failed and "can resume it" in failed and "kd-ok" not in failed
