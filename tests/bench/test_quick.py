"""The Quick-demo benchmark (bench/quick.py): its targets on made-up runs, and one real cold
run of the tiny pipeline through the same subprocess path."""

import json


def _run(seed, seconds, teacher, baseline, distilled, fp32, int8, int8_ms=0.1):
    accs = {"teacher": teacher, "student:baseline": baseline, "student:distilled": distilled,
            "student-onnx": fp32, "student-int8": int8}
    ms = {"student-onnx": 0.2, "student-int8": int8_ms}
    return {"seed": seed, "seconds": seconds, "stages": {}, "environment": {},
            "rows": {k: {"name": k, "accuracy": v / 100, "latency_b1_ms_p50": ms.get(k, 5.0)}
                     for k, v in accs.items()}}


def test_targets_read_the_means_over_seeds_and_the_first_runs_time(quick):
    runs = [_run(1, 200.0, 85.0, 76.0, 82.5, 82.5, 82.3),
            _run(2, 250.0, 85.0, 78.0, 81.5, 81.5, 81.1)]
    s = quick.summarise(runs)
    acc = {m["kind"]: m["accuracy_mean"] for m in s["models"]}
    assert acc == {"teacher": 85.0, "student:baseline": 77.0, "student:distilled": 82.0,
                   "student-onnx": 82.0, "student-int8": 81.7}
    assert s["models"][1]["accuracies"] == [76.0, 78.0]
    t = s["targets"]
    assert t["distilled >= baseline + 4.0"] == {"value": 5.0, "met": True}
    assert t["distilled >= teacher - 3.0"] == {"value": -3.0, "met": True}
    assert t["int8 within 0.5 of fp32"] == {"value": -0.3, "met": True}
    assert t["one cold run <= 240 s"] == {"value": 200.0, "met": True}
    assert t["int8 not slower than fp32 at batch 1"] == {"value": 0, "met": True}
    assert s["total_seconds_per_seed"] == [200.0, 250.0]


def test_each_target_can_be_missed(quick):
    s = quick.summarise([_run(1, 241.0, 85.0, 79.0, 81.9, 81.9, 81.3, int8_ms=0.21)])
    assert [v["met"] for v in s["targets"].values()] == [False] * 5


def test_one_cold_run_of_a_tiny_config_is_read_back(quick, tiny_config, tmp_path,
                                                    monkeypatch):
    cfg = tiny_config.with_overrides({"student.epochs": 1})
    path = tmp_path / "tiny.yaml"
    cfg.save(path)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "quick.json"
    assert quick.main(["--config", str(path), "--seeds", "1", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    run = res["runs"][0]
    assert set(run["rows"]) >= {"teacher", "student:baseline", "student:distilled",
                                "student-int8"}
    assert set(run["stages"]) == {"teacher", "augment", "student", "quantize", "compare"}
    teacher = next(m for m in res["models"] if m["kind"] == "teacher")
    assert teacher["accuracies"] == [round(100 * run["rows"]["teacher"]["accuracy"], 2)]
    assert res["total_seconds"] == run["seconds"] > 0
    assert res["machine"]["cpu"]
