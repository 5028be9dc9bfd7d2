import json

import numpy as np

from kdstudio import runs as R


def test_each_seed_and_their_averaged_logits_are_reported(teacher_sweep, tiny_config, tmp_path):
    from kdstudio.data import load_task
    from kdstudio.teacher import load_teacher

    # the shared run's teacher settings, which learn
    cfg = tiny_config.with_overrides({"teacher.epochs": 4, "teacher.learning_rate": 5e-3})
    cfg.save(tmp_path / "tiny.yaml")
    out, runs = tmp_path / "sweep.json", tmp_path / "runs"
    args = ["--config", str(tmp_path / "tiny.yaml"), "--runs-dir", str(runs), "--out", str(out)]
    assert teacher_sweep.main(["a", *args, "--seeds", "1", "2"]) == 0
    assert teacher_sweep.main(["b", *args, "--seeds", "3", "--set", "teacher.epochs=1"]) == 0
    res = json.loads(out.read_text())
    assert set(res) == {"a", "b"}  # a second setting is added beside the first

    a = res["a"]
    assert [s["seed"] for s in a["seeds"]] == [1, 2]
    logits = []
    for s in a["seeds"]:
        run = next(r for r in R.list_runs(runs) if r.config().seed == s["seed"])
        metrics = json.loads((run.file(R.TEACHER_DIR) / "teacher.json").read_text())
        assert s["val_accuracy"] == round(100 * metrics["val_accuracy"], 2)
        task = load_task(run.config().data, s["seed"])
        t = load_teacher(str(run.file(R.TEACHER_DIR)), task)
        logits.append(t.predict_logits(task.validation.texts))
    assert a["seeds"][0]["val_accuracy"] >= 90  # the tiny teacher learns: the check has teeth
    accs = [s["val_accuracy"] for s in a["seeds"]]
    assert a["accuracy_mean"] == round(float(np.mean(accs)), 2)
    ensemble = 100 * float((np.mean(logits, axis=0).argmax(-1) == task.validation.labels).mean())
    assert a["ensemble_accuracy"] == round(ensemble, 2)
    assert res["b"]["sets"] == {"teacher.epochs": 1} and res["b"]["ensemble_accuracy"] is None
