import json


def _results(path, cpu, hidden, b1, b32, flags=("AVX2",), buckets=True):
    rows = [{"kind": "teacher", "latency_b1_ms_p50": 6.0, "throughput_b32_per_s": 400.0},
            {"kind": "student-int8", "latency_b1_ms_p50": 6.0 / b1,
             "throughput_b32_per_s": 400.0 * b32, "speedup_b1": b1, "speedup_b32": b32}]
    if buckets:  # what runs timed in length buckets record beside their batch-32 figure
        rows[1]["threads_b32"] = 2
    path.write_text(json.dumps({"config": {"student": {"hidden_size": hidden, "embedding_dim": 200}},
                                "environment": {"cpu": cpu, "cpu_flags": list(flags)},
                                "date": "2026-12-04", "rows": rows}))


def _config(path):
    path.write_text("student:\n  hidden_size: 150\n  embedding_dim: 200\n")


def test_the_range_covers_only_runs_of_the_configured_shape(speed_range, tmp_path, capsys):
    _config(tmp_path / "b.yaml")
    res = tmp_path / "results"
    res.mkdir()
    _results(res / "sst2.json", "AMD EPYC", 150, 77.7, 82.0)
    # Timed before length buckets (batches in the split's order): its batch-32 figure stays out.
    _results(res / "sst2-unbucketed.json", "AMD EPYC", 150, 78.0, 134.1, buckets=False)
    _results(res / "sst2-intel.json", "Intel Xeon", 150, 37.6, 47.0)
    _results(res / "sst2-old.json", "Intel Xeon", 150, 40.0, 50.0, flags=())  # no flags recorded
    # One model name, two machines (with and without AVX-512); BF16 does not make a third.
    _results(res / "sst2-avx512.json", "AMD EPYC", 150, 85.0, 80.0, flags=("AVX2", "AVX-512"))
    _results(res / "sst2-bf16.json", "AMD EPYC", 150, 84.0, 81.0,
             flags=("AVX2", "AVX-512", "BF16"))
    _results(res / "sst2-small.json", "Intel Xeon", 100, 64.4, 170.0)  # another shape: left out
    _results(res / "quick.json", "Intel Xeon", 150, 500.0, 900.0)  # not an SST-2 run
    assert speed_range.main(["--results", str(res), "--config", str(tmp_path / "b.yaml")]) == 0
    out = capsys.readouterr().out
    assert "sst2-small.json" not in out and "quick.json" not in out
    assert "Intel Xeon (AVX2)" in out and "AMD EPYC (AVX2)" in out
    assert "| 134.1x (no length buckets) |" in out
    assert out.strip().endswith("6 runs on 3 CPUs: 37.6x to 85.0x at batch 1, 47.0x to 82.0x "
                                "at batch 32 (the 5 runs timed in length buckets).")


def test_no_run_of_the_shape_is_an_error(speed_range, tmp_path):
    _config(tmp_path / "b.yaml")
    assert speed_range.main(["--results", str(tmp_path), "--config", str(tmp_path / "b.yaml")]) == 1
