import hashlib
import json

import numpy as np

from kdstudio.config import AugmentConfig
from kdstudio.data import Split, TaskData
from kdstudio.transfer import cache_key


def _task() -> TaskData:
    split = Split(["good film", "bad film"], np.array([1, 0]))
    return TaskData(split, split, ["negative", "positive"], "sentence", "label", "test")


def test_uniform_copies_keep_the_keys_of_sets_cached_before_the_setting():
    task, cfg = _task(), AugmentConfig(n_iter=24)
    augment = {k: v for k, v in cfg.to_dict().items() if k != "copies"}
    before = {"teacher": "fp", "data": task.fingerprint(), "augment": augment, "seed": 42,
              "max_length": 64, "labels": "int8"}
    expected = hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:16]
    assert cache_key("fp", task, cfg, 42, 64, int8_labels=True) == expected
    by_length = AugmentConfig(n_iter=24, copies="by_length")
    assert cache_key("fp", task, by_length, 42, 64, int8_labels=True) != expected
