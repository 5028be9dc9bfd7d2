"""Models loaded once per run; predictions on typed text."""

from __future__ import annotations

import numpy as np
import pytest

from kdstudio import studio


def test_predict_all_models_and_notes(finished_run):
    answers, notes = studio.predict(finished_run, "zzqx " * 900)
    assert [a.kind for a in answers] == ["teacher", "student", "student-int8"]
    assert all(a.available and abs(sum(a.probs.values()) - 1) < 1e-6 for a in answers)
    assert any("only the first 2,000" in n for n in notes)
    with pytest.raises(studio.UserInputError, match="Type a sentence first"):
        studio.predict(finished_run, " \n ")


def test_softmax_is_stable():
    p = studio.softmax(np.array([[1000.0, 0.0], [0.0, 0.0]]))
    assert np.allclose(p, [[1, 0], [0.5, 0.5]])
