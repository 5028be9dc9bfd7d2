import pytest

from kdstudio.config import (
    AugmentConfig,
    RunConfig,
    StudentConfig,
    TeacherConfig,
    choices,
)
from kdstudio.sections import RemovedSettingWarning


@pytest.mark.parametrize("kwargs, match", [
    ({"p_mask": 1.5}, r"p_mask must be a probability in \[0, 1\], got 1.5"),
    ({"p_pos": -0.1}, r"p_pos must be a probability"),
    ({"p_ng": 2}, r"p_ng must be a probability"),
    ({"p_mask": 0.6, "p_pos": 0.5}, r"p_mask \+ p_pos must be at most 1"),
    ({"n_iter": -1}, r"n_iter must be in \[0, 1000\]"),
    ({"ngram_min": 3, "ngram_max": 2}, r"ngram_max must be >= 3"),
    ({"n_iter": 2.5}, r"n_iter must be an integer"),
])
def test_augment_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AugmentConfig(**kwargs)


def test_student_keep_and_schedule_are_checked():
    with pytest.raises(ValueError, match="keep: last needs patience: 0"):
        StudentConfig(keep="last", patience=2)
    with pytest.raises(ValueError, match="keep: average needs patience: 0"):
        StudentConfig(keep="average", patience=2)
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        StudentConfig(lr_schedule="cosine")
    assert StudentConfig(keep="last", patience=0, lr_schedule="linear").keep == "last"
    # A config written before `keep` existed (early stopping, best weights) still loads.
    assert StudentConfig(patience=2).keep == "best" and StudentConfig().keep == "last"


def test_embedding_init_choices_come_from_its_type():
    assert choices(StudentConfig, "embedding_init") == ("teacher", "random")
    with pytest.raises(ValueError, match="embedding_init must be one of teacher, random"):
        StudentConfig(embedding_init="context")
    with pytest.raises(ValueError, match="optimizer must be one of adam, adadelta"):
        StudentConfig(optimizer="sgd")


def test_a_config_with_removed_settings_loads_with_one_warning():
    old = {"augment": {"n_iter": 3, "copies": "uniform"},
           "student": {"pooling": "last", "ema": 0.0, "context_layer": -1,
                       "context_sentences": 80000, "embedding_init": "teacher-context",
                       "optimizer": "adamw", "epochs": 2}}
    with pytest.warns(RemovedSettingWarning) as caught:
        cfg = RunConfig.from_dict(old)
    assert len(caught) == 2  # one line per section
    assert "ema" in str(caught[1].message) and "copies" in str(caught[0].message)
    assert cfg.augment.n_iter == 3 and cfg.student.epochs == 2
    assert cfg.student.embedding_init == "teacher" and cfg.student.optimizer == "adam"
    # A key that never existed is still a typo, not a removed setting.
    with pytest.raises(ValueError, match="unknown StudentConfig setting"):
        RunConfig.from_dict({"student": {"poolling": "last"}})


def test_label_engine_is_checked():
    assert TeacherConfig(label_engine="onnx-int8").label_engine == "onnx-int8"
    with pytest.raises(ValueError, match="label_engine must be one of.*onnx-int8"):
        TeacherConfig(label_engine="int8")


def test_zero_epochs_rejected():
    with pytest.raises(ValueError, match="student epochs must be in"):
        StudentConfig(epochs=0)
    with pytest.raises(ValueError, match="teacher epochs must be a positive number"):
        TeacherConfig(epochs=0)


def test_unknown_keys_are_named():
    with pytest.raises(ValueError, match="unknown StudentConfig setting.*epochz"):
        RunConfig.from_dict({"student": {"epochz": 3}})
    with pytest.raises(ValueError, match="unknown setting.*studnet"):
        RunConfig.from_dict({"studnet": {}})


def test_round_trip_and_overrides(tmp_path):
    cfg = RunConfig.load("quick").with_overrides({"student.epochs": 7, "augment.p_ng": 0.5})
    cfg.save(tmp_path / "c.yaml")
    again = RunConfig.load(tmp_path / "c.yaml")
    assert again == cfg and again.student.epochs == 7 and again.augment.p_ng == 0.5
    with pytest.raises(ValueError, match="unknown setting 'student.nope'"):
        cfg.with_overrides({"student.nope": 1})


def test_presets_exist_and_load():
    for name in ("quick", "paper"):
        assert RunConfig.load(name).name == name
    with pytest.raises(ValueError, match="does not exist"):
        RunConfig.load("no-such-preset")


def test_bad_yaml_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("student: [unclosed")
    with pytest.raises(ValueError, match="not valid YAML"):
        RunConfig.load(p)


def test_isolate_onnx_must_be_a_bool():
    from kdstudio.config import CompareConfig

    assert CompareConfig().isolate_onnx is True
    with pytest.raises(ValueError, match="isolate_onnx must be true or false, got 'false'"):
        CompareConfig(isolate_onnx="false")


@pytest.mark.parametrize("key", ["augment.ngram_mask", "student.freeze_embeddings",
                                 "student.train_baseline", "student.train_soft_no_aug",
                                 "quantize.teacher", "compare.isolate_onnx"])
def test_switches_must_be_bools(key):
    """A quoted "no" in a YAML file is a string, and a non-empty string is truthy: the run
    would silently do the opposite of what was written."""
    RunConfig().with_overrides({key: True})
    RunConfig().with_overrides({key: False})
    with pytest.raises(ValueError, match=r"must be true or false, got 'no'"):
        RunConfig().with_overrides({key: "no"})
    with pytest.raises(ValueError, match=r"must be true or false, got 1"):
        RunConfig().with_overrides({key: 1})


def test_student_families_are_checked_and_keep_the_bilstm():
    from kdstudio.config import RunConfig
    from kdstudio.families import REGISTRY

    assert tuple(REGISTRY) == ("bilstm", "static", "transformer")  # what the config accepts
    cfg = RunConfig().with_overrides({"student.families": ["static"]})
    assert cfg.student.families == ["bilstm", "static"]
    assert RunConfig().with_overrides({"student.families": "bilstm, static"}).student.families \
        == ["bilstm", "static"]
    with pytest.raises(ValueError, match="unknown student family 'lstm'; families: bilstm, "):
        RunConfig().with_overrides({"student.families": ["lstm"]})
    with pytest.raises(ValueError, match="static dropout"):
        RunConfig().with_overrides({"static.dropout": 1.5})
    with pytest.raises(ValueError, match="static batch_size must be an integer"):
        RunConfig().with_overrides({"static.batch_size": 0.5})
