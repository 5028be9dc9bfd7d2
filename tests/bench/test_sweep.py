"""bench/sweep.py on the tiny pipeline run: pack with context tables, train from one."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def test_pack_holds_context_tables_and_train_starts_from_the_one_asked(finished_run,
                                                                        tmp_path):
    pack = tmp_path / "pack.npz"
    subprocess.run([sys.executable, str(ROOT / "bench" / "sweep.py"), "pack",
                    str(finished_run.path), str(pack), "--context-layers", "0,-1"],
                   check=True, capture_output=True)
    d = np.load(pack)
    assert d["emb"].shape == d["emb_ctx0"].shape == d["emb_ctx-1"].shape
    assert not np.array_equal(d["emb_ctx0"], d["emb_ctx-1"])
    out = tmp_path / "sweep.jsonl"
    subprocess.run([sys.executable, str(ROOT / "bench" / "sweep.py"), "train", str(pack),
                    "--out", str(out), "--try",
                    "hidden_size=8,fc_size=8,epochs=1,embedding_dim=16,table=emb_ctx-1"],
                   check=True, capture_output=True)
    (r,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert r["setting"]["table"] == "emb_ctx-1"
    assert r["train_rows"] == len(d["lens"]) and 0 <= r["best"]["val_accuracy"] <= 1
