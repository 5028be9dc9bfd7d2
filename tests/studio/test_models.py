"""Models loaded once per run; predictions on typed text."""

from __future__ import annotations

import os

import numpy as np
import pytest

from kdstudio import studio


def test_predict_all_models_and_notes(finished_run):
    answers, notes = studio.predict(finished_run, "zzqx " * 900)
    assert [a.kind for a in answers] == ["teacher", "student", "student-int8", "static-int8",
                                         "transformer-int8", "baseline:fasttext",
                                         "baseline:model2vec"]
    assert all(a.available and abs(sum(a.probs.values()) - 1) < 1e-6 for a in answers)
    assert any("only the first 2,000" in n for n in notes)
    with pytest.raises(studio.UserInputError, match="Type a sentence first"):
        studio.predict(finished_run, " \n ")


def test_softmax_is_stable():
    p = studio.softmax(np.array([[1000.0, 0.0], [0.0, 0.0]]))
    assert np.allclose(p, [[1, 0], [0.5, 0.5]])


def test_live_predictions_use_the_threads_measured_fastest_on_this_cpu(finished_run, tmp_path):
    import json
    import shutil

    from kdstudio.runs import Run
    from kdstudio.studio.models import live_threads

    res = json.loads((finished_run.path / "results.json").read_text())
    int8 = next(r for r in res["rows"] if r["kind"] == "student-int8")
    assert int8["threads_b1"] in (1, os.cpu_count())  # the compare stage chose one
    assert live_threads(finished_run, "student-int8") == int8["threads_b1"]
    # Measured on another CPU: the measurement says nothing about this one.
    copy = tmp_path / finished_run.id
    shutil.copytree(finished_run.path, copy)
    res["environment"]["cpu"] = "another CPU"
    for r in res["rows"]:
        r["threads_b1"] = 7
    (copy / "results.json").write_text(json.dumps(res))
    assert live_threads(Run(copy), "student-int8") == 1
    here = json.loads((finished_run.path / "results.json").read_text())["environment"]
    res["environment"]["cpu"] = here["cpu"]
    (copy / "results.json").write_text(json.dumps(res))
    assert live_threads(Run(copy), "student-int8") == 7
    # The same model name with other instruction sets (an AMD EPYC with and without
    # AVX-512) is another machine too.
    res["environment"]["cpu_flags"] = [*here["cpu_flags"], "NOT-HERE"]
    (copy / "results.json").write_text(json.dumps(res))
    assert live_threads(Run(copy), "student-int8") == 1
