import hashlib
import json

import numpy as np

from kdstudio.config import AugmentConfig
from kdstudio.data import Split, TaskData
from kdstudio.transfer import cache_key


def _task() -> TaskData:
    split = Split(["good film", "bad film"], np.array([1, 0]))
    return TaskData(split, split, ["negative", "positive"], "sentence", "label", "test")


def test_cache_keys_of_sets_built_before_stay_and_settings_change_them():
    task, cfg = _task(), AugmentConfig(n_iter=24)
    before = {"teacher": "fp", "data": task.fingerprint(), "augment": cfg.to_dict(),
              "seed": 42, "max_length": 64, "labels": "int8"}
    expected = hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:16]
    assert cache_key("fp", task, cfg, 42, 64, int8_labels=True) == expected
    assert cache_key("fp", task, AugmentConfig(n_iter=23), 42, 64, int8_labels=True) != expected
    assert cache_key("fp", task, cfg, 42, 64) != expected
