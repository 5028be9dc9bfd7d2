"""bench/label_engines.py on the tiny pipeline run: three engines, each in its own process."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_label_engines_compare_against_pytorch(finished_run, tmp_path):
    out = tmp_path / "engines.json"
    subprocess.run([sys.executable, str(ROOT / "bench" / "label_engines.py"),
                    str(finished_run.path), "--sample", "40", "--out", str(out)],
                   check=True, capture_output=True)
    rows = {r["engine"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"torch", "onnx", "onnx-int8"}
    assert all(r["sentences"] == 40 and r["sentences_per_second"] > 0 for r in rows.values())
    assert rows["torch"]["max_abs_diff_vs_torch"] == 0
    assert rows["onnx"]["max_abs_diff_vs_torch"] < 1e-4
    assert 0 < rows["onnx-int8"]["mse_vs_torch"] and rows["onnx-int8"]["max_abs_diff_vs_torch"] < 1
