"""The SST-2 benchmark's bookkeeping (bench/sst2.py) on made-up measurements: a rendering
bug must not surface after an hour-long run."""

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _seed_rows(acc_aug: float) -> list[dict]:
    def row(kind, acc, b1_ms, per_s, size, params=1000):
        return {"kind": kind, "accuracy": acc, "agreement_with_teacher": 0.9,
                "params": params, "size_mb": size, "latency_b1_ms_p50": b1_ms,
                "latency_b1_ms_p95": 2 * b1_ms, "b1_total_s": b1_ms, "b32_total_s": 1 / per_s,
                "throughput_per_s": per_s}
    return [row("teacher", 0.90, 10.0, 100.0, 90.0, 22_000),
            row("student:baseline", 0.84, 1.0, 2000.0, 11.0),
            row("student:distilled-noaug", 0.85, 1.0, 2000.0, 11.0),
            row("student:distilled", acc_aug, 1.0, 2000.0, 11.0),
            row("student-int8", acc_aug - 0.002, 0.1, 12000.0, 2.8)]  # int8 != fp32


def test_summary_targets_and_markdown(sst2, tmp_path):
    rows = sst2.summarise([_seed_rows(0.885), _seed_rows(0.895)], "mse")
    sst2.add_speedups(rows)
    by = {r["kind"]: r for r in rows}
    assert by["student:distilled"]["accuracy_mean"] == pytest.approx(0.89)
    assert by["student-int8"]["speedup_b32"] == pytest.approx(120.0)
    targets = {t["target"]: t["met"] for t in sst2.check_targets(rows, 80 * 60, {})}
    assert targets["distilled+aug ≥ teacher − 1.0 point"]
    assert targets["distilled+aug ≥ baseline + 4 points"]
    assert targets["int8 ≥ 100x faster than teacher at batch 32"]
    late = {t["target"]: t["met"] for t in sst2.check_targets(rows, 80 * 60, {"teacher": 11 * 60})}
    assert not late["whole benchmark ≤ 90 minutes (cold caches)"]

    ref = {"name": "bert-large (random weights, latency only)", "kind": "reference:bert-large",
           "params": 335_000_000, "size_mb": 1340.0, "latency_b1_ms_p50": 300.0,
           "latency_b1_ms_p95": 400.0, "throughput_b32_per_s": 4.0, "time_b1_s": 260.0,
           "time_b32_s": 220.0, "speedup_b1": 0.03, "speedup_b32": 0.04,
           "size_ratio_vs_teacher": 0.07, "accuracy_mean": None}
    onnx_teacher = {"name": "teacher, ONNX Runtime fp32 (same weights)", "accuracy_mean": 0.9,
                    "accuracy_std": 0.0, "accuracy_max": 0.9, "params": 22_000,
                    "size_mb": 90.0, "latency_b1_ms_p50": 5.0, "latency_b1_ms_p95": 6.0,
                    "throughput_per_s": 150.0, "throughput_b32_per_s": 150.0,
                    "speedup_b1": 2.0, "speedup_b32": 1.5, "size_ratio_vs_teacher": 1.0}
    res = {"command": "python bench/sst2.py", "date": "today", "total_seconds": 4800.0,
           "environment": {"cpu": "cpu", "cores": 2, "threads": 2, "torch": "t",
                           "onnxruntime": "o", "transformers": "x", "python": "p"},
           "train_size": 10, "transfer_rows": 20, "transfer_augmented": 10,
           "validation_size": 5, "seeds": [1, 2],
           "config": {"seed": 42, "compare": {"throughput_max_passes": 5,
                                              "isolate_onnx": True}},
           "rows": rows, "teacher_onnx": onnx_teacher, "references": [ref],
           "stage_seconds": {"student": 60.0}, "cached_stage_seconds": {"teacher": 600.0},
           "targets": sst2.check_targets(rows, 4800.0, {"teacher": 600.0})}
    md = tmp_path / "RESULTS.md"
    sst2.write_markdown(md, json.loads(json.dumps(res)))
    text = md.read_text()
    assert "teacher, ONNX Runtime fp32 (same weights)" in text
    assert "the int8 student is 50.0x faster at batch 1 and 80.0x at batch 32" in text
    assert "| whole benchmark ≤ 90 minutes (cold caches) |" in text
    assert "each ONNX Runtime row in a fresh process of its own" in text


# The eight targets, each just inside and just outside its bound. Accuracies are counts of
# the 872 validation sentences over 3 seeds, and int8 never equals fp32. The base case meets
# every target with room; each case moves one figure, so only its own target may change.
N_VAL = 872
BASE = {"teacher": 773,                      # 88.65 %
        "baseline": (724, 724, 724),         # 83.03 %
        "distilled": (766, 765, 765),        # 87.77 %, -0.88 against the teacher
        "int8": (765, 764, 765),             # 87.69 %, -0.08 against fp32
        "teacher_b1_ms": 7.0, "teacher_per_s": 180.0, "teacher_mb": 90.0,
        "fp32_mb": 11.19, "int8_mb": 2.81, "int8_b1_ms": 0.09, "int8_per_s": 24_000.0,
        "total_s": 3000.0, "cached": {"teacher": 600.0, "augment": 1200.0}}

TARGET_CASES = [
    # (target index, change inside, value inside, change outside, value outside)
    (0, {"distilled": (765, 764, 764)}, "-0.99 points",
     {"distilled": (764, 764, 764)}, "-1.03 points"),
    (1, {"baseline": (730, 730, 731)}, "+4.01 points",
     {"baseline": (730, 731, 731)}, "+3.98 points"),
    (2, {"int8": (763, 763, 763)}, "-0.27 points",
     {"int8": (763, 763, 762)}, "-0.31 points"),
    (3, {"int8_mb": 3.35}, "0.299x", {"int8_mb": 3.37}, "0.301x"),
    (4, {"int8_b1_ms": 0.1395}, "50.2x", {"int8_b1_ms": 0.1405}, "49.8x"),
    (5, {"int8_per_s": 18_010.0}, "100.1x", {"int8_per_s": 17_990.0}, "99.9x"),
    (6, {"teacher_mb": 70.5}, "25.1x", {"teacher_mb": 70.0}, "24.9x"),
    (7, {"cached": {"teacher": 600.0, "augment": 1794.0}}, "89.9 min with",
     {"cached": {"teacher": 600.0, "augment": 1806.0}}, "90.1 min with"),
]


def _targets(sst2, **change) -> list[dict]:
    c = {**BASE, **change}

    def row(kind, count, b1_ms, per_s, mb, params=2_800_000):
        return {"kind": kind, "accuracy": count / N_VAL, "agreement_with_teacher": 0.9,
                "params": params, "size_mb": mb, "latency_b1_ms_p50": b1_ms,
                "latency_b1_ms_p95": 1.5 * b1_ms, "b1_total_s": b1_ms * N_VAL / 1000,
                "b32_total_s": N_VAL / per_s, "throughput_per_s": per_s}

    per_seed = [[row("teacher", c["teacher"], c["teacher_b1_ms"], c["teacher_per_s"],
                     c["teacher_mb"], 22_700_000),
                 row("student:baseline", c["baseline"][s], 0.47, 8000.0, c["fp32_mb"]),
                 row("student:distilled-noaug", 730, 0.47, 8000.0, c["fp32_mb"]),
                 row("student:distilled", c["distilled"][s], 0.47, 8000.0, c["fp32_mb"]),
                 row("student-int8", c["int8"][s], c["int8_b1_ms"], c["int8_per_s"],
                     c["int8_mb"])]
                for s in range(3)]
    rows = sst2.summarise(per_seed, "mse")
    sst2.add_speedups(rows)
    by = {r["kind"]: r for r in rows}
    assert by["student-int8"]["accuracy_mean"] != by["student:distilled"]["accuracy_mean"]
    return sst2.check_targets(rows, c["total_s"], c["cached"])


def test_the_base_case_meets_all_eight_targets(sst2):
    targets = _targets(sst2)
    assert len(targets) == 10
    assert all(t["met"] for t in targets[:8]), [t for t in targets if not t["met"]]
    # issue 24's accuracy bars come last, and the base case (88.65 % teacher) misses both
    assert [(t["target"], t["value"], t["met"]) for t in targets[8:]] == [
        ("teacher ≥ 90.0%", "88.65%", False), ("distilled+aug ≥ 89.0%", "87.77%", False)]


@pytest.mark.parametrize(("change", "met"), [
    ({"teacher": 785, "distilled": (776, 776, 777)}, [True, True]),    # 90.02 %, 89.03 %
    ({"teacher": 784, "distilled": (776, 776, 777)}, [False, True]),   # 89.91 %
    ({"teacher": 785, "distilled": (776, 776, 776)}, [True, False]),   # 88.99 %
])
def test_accuracy_targets_at_their_bounds(sst2, change, met):
    assert [t["met"] for t in _targets(sst2, **change)[8:]] == met


@pytest.mark.parametrize("side", ["inside", "outside"])
@pytest.mark.parametrize(("index", "inside", "value_in", "outside", "value_out"), TARGET_CASES,
                         ids=[f"target{c[0] + 1}" for c in TARGET_CASES])
def test_each_target_just_inside_and_just_outside_its_bound(sst2, index, inside, value_in,
                                                            outside, value_out, side):
    change, value = (inside, value_in) if side == "inside" else (outside, value_out)
    targets = _targets(sst2, **change)
    assert value in targets[index]["value"]
    met = [t["met"] for t in targets[:8]]
    assert met == [side == "inside" or i != index for i in range(8)]


def test_time_target_counts_cached_build_times_and_needs_them_all(sst2):
    short = {"teacher": 600.0, "augment": 600.0}
    t = _targets(sst2, cached=short)[7]
    assert t["met"] and t["value"].startswith("50.0 min measured; 70.0 min with")
    assert not _targets(sst2, total_s=5406.0, cached={})[7]["met"]  # nothing cached
    t = _targets(sst2, cached={**short, "augment": None})[7]  # a build time not recorded
    assert not t["met"] and "build time of augment not recorded" in t["value"]


def _one_seed_results(sst2, command: str) -> dict:
    """Results of one seed, no reference rows, no ONNX teacher row, no host probe."""
    rows = sst2.summarise([_seed_rows(0.88)], "mse")
    sst2.add_speedups(rows)
    return {"command": command, "date": "today", "total_seconds": 60.0,
            "environment": {"cpu": "cpu", "cores": 2, "threads": 2, "torch": "t",
                            "onnxruntime": "o", "transformers": "x", "python": "p"},
            "train_size": 10, "transfer_rows": 20, "transfer_augmented": 10,
            "validation_size": 5, "seeds": [1], "config": {"seed": 42},
            "rows": rows, "references": [], "stage_seconds": {},
            "targets": sst2.check_targets(rows, 60.0, {})}


def test_markdown_without_references_or_onnx_teacher(sst2, tmp_path):
    """--skip-references, and JSON written before the ONNX teacher row existed."""
    res = _one_seed_results(sst2, "python bench/sst2.py --skip-references")
    md = tmp_path / "RESULTS.md"
    sst2.write_markdown(md, res)
    text = md.read_text()
    assert "bert-large" not in text and "ONNX Runtime fp32" not in text
    assert "passes over the set" not in text  # one pass: no median to speak of
    assert "fresh process" not in text  # written before compare.isolate_onnx existed
    assert "The host's speed" not in text  # results written before the probe existed


def _probe(lstm_ms: float, mm_ms: float) -> dict:
    return {"int8_bilstm_b1_ms": lstm_ms, "torch_matmul_ms": mm_ms, "threads": 2, "calls": 9}


def test_markdown_flags_a_host_that_changed_speed(sst2, tmp_path):
    res = _one_seed_results(sst2, "python bench/sst2.py")
    md = tmp_path / "RESULTS.md"

    res["host_probe"] = {"before": _probe(0.10, 0.50), "after": _probe(0.11, 0.52)}
    sst2.write_markdown(md, res)
    text = md.read_text()
    assert "0.100 ms / 0.500 ms before, 0.110 ms / 0.520 ms after" in text
    assert "changed speed" not in text

    res["host_probe"] = {"before": _probe(0.10, 0.50), "after": _probe(0.21, 0.55),
                         "previous": {**_probe(0.09, 0.30), "date": "yesterday"}}
    sst2.write_markdown(md, res)
    text = md.read_text()
    assert "**The probe changed speed during the timing** (int8_bilstm_b1_ms 2.10x" in text
    assert "torch_matmul_ms 1.10x" not in text  # within the tolerance
    assert "The previous run of this command (yesterday)" in text
    assert "torch_matmul_ms slower by 1.67x here" in text
    assert "int8_bilstm_b1_ms slower" not in text  # 0.10 vs 0.09: within the tolerance


def test_previous_probe_is_read_from_the_results_about_to_be_replaced(sst2, tmp_path):
    out = tmp_path / "r.json"
    assert sst2._previous_probe(out) is None  # no earlier run
    out.write_text(json.dumps({"date": "d", "rows": []}))
    assert sst2._previous_probe(out) is None  # an earlier run without a probe
    out.write_text(json.dumps({"date": "d", "host_probe": {"before": _probe(0.1, 0.5),
                                                           "after": _probe(0.2, 0.5)}}))
    assert sst2._previous_probe(out) == {**_probe(0.1, 0.5), "date": "d"}


def test_parallel_students_then_timing_one_run_at_a_time(tiny_config, tmp_path, monkeypatch):
    """--jobs 2: the seeds' students train in two processes, then each run is timed alone."""
    monkeypatch.syspath_prepend(str(ROOT / "bench"))  # spawned workers import it by name
    import sst2 as bench

    from kdstudio import runs as R

    tiny_config.save(tmp_path / "tiny.yaml")
    rc = bench.main(["--config", str(tmp_path / "tiny.yaml"), "--seeds", "2", "--first-seed", "3",
                     "--jobs", "2",
                     "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "r.json"),
                     "--markdown", str(tmp_path / "R.md"), "--skip-references"])
    assert rc == 0
    res = json.loads((tmp_path / "r.json").read_text())
    assert len(res["runs"]) == 2 and res["seeds"] == [3, 4]
    assert {"teacher", "augment", "student", "quantize", "compare"} <= set(res["stage_seconds"])
    assert set(res["host_probe"]) == {"before", "after", "before_what"}
    assert res["host_probe"]["before_what"] == "the first run's timing"  # --jobs 2
    assert res["host_probe"]["before"]["int8_bilstm_b1_ms"] > 0
    stages = []
    for path in res["runs"]:
        run = R.Run(Path(path))
        done = {e["stage"]: e["metrics"] for e in run.events("stage_finished")}
        assert list(done) == list(R.STAGES)
        stages.append(done)
        assert run.status()["status"] == "done"
    # The second seed took the teacher and the transfer set from the first one's cache.
    assert stages[1]["teacher"]["cached"] and stages[1]["augment"]["cached"]
    seeds = [json.loads((Path(p) / R.STUDENTS_DIR / "distilled" / "student.json").read_text())
             ["config"]["seed"] for p in res["runs"]]
    assert seeds == [3, 4]


@pytest.mark.parametrize(("fp32_ms", "met"), [(0.2, True), (0.1, True), (0.09, False)])
def test_the_int8_guard_holds_int8_to_fp32_at_batch_1(sst2, fp32_ms, met):
    def fp32_row(int8_row):
        return {**int8_row, "kind": "student-onnx", "latency_b1_ms_p50": fp32_ms,
                "size_mb": 11.0}

    per_seed = [rows + [fp32_row(rows[-1])] for rows in (_seed_rows(0.885), _seed_rows(0.895))]
    rows = sst2.summarise(per_seed, "mse")  # the int8 row runs at 0.1 ms
    sst2.add_speedups(rows)
    targets = {t["target"]: t["met"] for t in sst2.check_targets(rows, 80 * 60, {})}
    assert len(targets) == 11
    assert targets["int8 not slower than fp32 at batch 1"] is met


def test_each_family_is_set_against_both_baselines(sst2):
    """More accurate and not slower end to end than fastText and than Model2Vec; a baseline
    the run lacks sets no target."""
    def target(what, value, goal, ok):
        return {"target": what, "value": value, "met": ok}

    def row(acc, e2e):
        return {"accuracy_mean": acc, "latency_b1_e2e_ms_p50": e2e}

    by = {"student-int8": row(0.88, 0.255), "baseline:fasttext": row(0.789, 0.011),
          "baseline:model2vec": row(0.788, 0.300)}
    got = {t["target"]: t["met"] for t in sst2.family_targets(by, target)}
    assert got == {"student-int8 beats fastText at equal or lower end-to-end latency": False,
                   "student-int8 beats Model2Vec at equal or lower end-to-end latency": True}
    del by["baseline:model2vec"]
    assert len(sst2.family_targets(by, target)) == 1


def test_the_time_budget_is_150_minutes_with_other_families_and_90_without(sst2):
    def target(what, value, goal, ok):
        return {"target": what, "met": ok}

    bilstm = {"teacher": {}, "student-int8": {}}
    assert sst2.budget_minutes(bilstm) == 90
    for extra in sst2.EXTRA_KINDS:
        assert sst2.budget_minutes({**bilstm, extra: {}}) == 150
    # 107 minutes from cold caches: over the BiLSTM-only budget, inside every family's.
    assert not sst2._time_target(107 * 60, {}, target, 90)["met"]
    t = sst2._time_target(107 * 60, {}, target, 150)
    assert t["met"] and t["target"].startswith("whole benchmark ≤ 150 minutes")
    assert not sst2._time_target(151 * 60, {}, target, 150)["met"]


def test_bilstm_only_trains_the_bilstm_alone_on_half_the_copies(sst2):
    """--bilstm-only: no other family or baseline, 12 copies a sentence for 6 epochs, on top of
    the config file; a --set still has the last word."""
    import argparse

    def config(bilstm_only, sets=()):
        return sst2.base_config(argparse.Namespace(
            config=str(ROOT / "bench" / "sst2.yaml"), bilstm_only=bilstm_only, set=list(sets)))

    full, alone = config(False), config(True)
    assert full.student.families == ["bilstm", "static", "transformer"]
    assert full.augment.n_iter == 24 and full.student.epochs == 4
    assert alone.student.families == ["bilstm"]
    assert not alone.student.fasttext_baseline and not alone.student.model2vec_baseline
    assert (alone.augment.n_iter, alone.student.epochs) == (12, 6)
    assert alone.teacher == full.teacher and alone.static == full.static
    assert config(True, ["student.epochs=5"]).student.epochs == 5
