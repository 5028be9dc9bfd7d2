"""The student stage data-parallel in two processes (``accelerate launch``, gloo on the CPU):
it finishes, only the main process writes, and the run folder has the shape a single-process
run of the same stages leaves."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from kdstudio.pipeline import run_stages
from kdstudio.runs import Run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tree(path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())


def test_only_the_main_process_writes(tiny_config, tmp_path, monkeypatch, capsys):
    from kdstudio.cli import main

    run = Run.create(tiny_config, tmp_path / "runs")
    status = (run.path / "status.json").read_text()
    run.request_cancel()
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    run.log("progress", step=1)
    run.set_status("running", stage="student")
    run.clear_cancel()
    assert (run.path / "status.json").read_text() == status
    assert not (run.path / "events.jsonl").exists()
    assert run.cancel_requested()
    with pytest.raises(ValueError, match="only the student stage runs"):
        run_stages(run, ["teacher", "augment", "student"])
    assert main(["--runs-dir", str(tmp_path / "runs"), "run", "--config", "quick"]) == 2
    assert "only the student stage runs" in capsys.readouterr().err
    assert len(list((tmp_path / "runs").iterdir())) == 1


@pytest.mark.slow  # two processes importing torch and transformers: ~30-40 s
def test_student_stage_under_accelerate_launch_with_two_processes(tiny_config, tmp_path):
    run = Run.create(tiny_config, tmp_path / "runs")
    assert run_stages(run, ["teacher", "augment"]) == "done", run.status()
    single = Run(tmp_path / "single")
    shutil.copytree(run.path, single.path)
    assert run_stages(single, ["student"]) == "done", single.status()
    events_before = len(run.events())

    # `accelerate launch --cpu --num_processes 2` starts one process (accelerate's simple
    # launcher runs several CPU processes only through mpirun); --multi_gpu starts them
    # through torchrun, and the run's device "cpu" makes Accelerate use gloo.
    port = _free_port()
    env = {**os.environ, "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1",
           "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    t0 = time.time()
    p = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
         "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
         "--dynamo_backend", "no", "--main_process_port", str(port),
         "-m", "kdstudio", "student", str(run.path)],
        capture_output=True, text=True, env=env, timeout=300)
    seconds = time.time() - t0
    assert p.returncode == 0, (p.stdout[-3000:], p.stderr[-5000:])

    st = run.status()
    assert st["status"] == "done", st
    lines = (run.path / "events.jsonl").read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in lines]  # every line parses
    new = events[events_before:]
    started = [e for e in new if e["kind"] == "stage_started"]
    finished = [e for e in new if e["kind"] == "stage_finished"]
    assert [e["stage"] for e in started] == ["student"]
    assert [e["stage"] for e in finished] == ["student"]
    assert [e["kind"] for e in new].count("run_started") == 1
    assert [e["kind"] for e in new].count("run_finished") == 1
    variants = [e for e in new if e["kind"] == "student_finished"]
    assert sorted(e["variant"] for e in variants) == ["baseline", "distilled",
                                                      "distilled-noaug"]
    assert all(e["processes"] == 2 for e in variants), variants
    # About half the steps of the single-process run: each process takes every other batch
    # (one more per epoch when their number is odd).
    single_steps = {e["variant"]: e["steps"] for e in single.events("student_finished")}
    epochs = tiny_config.student.epochs
    for e in variants:
        assert single_steps[e["variant"]] / 2 <= e["steps"] <= \
            single_steps[e["variant"]] / 2 + epochs, (e, single_steps)

    # Same files as the single-process run, and nothing half-written.
    assert _tree(run.path) == _tree(single.path)
    assert not [f for f in _tree(run.path) if f.endswith(".tmp")]
    for name in ("baseline", "distilled", "distilled-noaug"):
        meta = json.loads((run.path / "students" / name / "student.json").read_text())
        assert meta["variant"] == name and meta["history"]
        # The saved student and the event the main process logged tell the same accuracy.
        event = next(e for e in variants if e["variant"] == name)
        assert meta["best"]["val_accuracy"] == event["val_accuracy"]
    print(f"two-process student stage: {seconds:.1f} s")
