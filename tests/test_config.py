import pytest

from kdstudio.config import AugmentConfig, RunConfig, StudentConfig, TeacherConfig


@pytest.mark.parametrize("kwargs, match", [
    ({"p_mask": 1.5}, r"p_mask must be a probability in \[0, 1\], got 1.5"),
    ({"p_pos": -0.1}, r"p_pos must be a probability"),
    ({"p_ng": 2}, r"p_ng must be a probability"),
    ({"p_mask": 0.6, "p_pos": 0.5}, r"p_mask \+ p_pos must be at most 1"),
    ({"n_iter": -1}, r"n_iter must be in \[0, 1000\]"),
    ({"ngram_min": 3, "ngram_max": 2}, r"ngram_max must be >= 3"),
    ({"copies": "longest"}, r"copies must be one of"),
])
def test_augment_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AugmentConfig(**kwargs)


def test_student_keep_and_schedule_are_checked():
    with pytest.raises(ValueError, match="keep: last needs patience: 0"):
        StudentConfig(keep="last", patience=2)
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        StudentConfig(lr_schedule="cosine")
    assert StudentConfig(keep="last", patience=0, lr_schedule="linear").keep == "last"
    # A config written before `keep` existed (early stopping, best weights) still loads.
    assert StudentConfig(patience=2).keep == "best" and StudentConfig().keep == "last"
    with pytest.raises(ValueError, match=r"student ema must be in \[0, 1\).*got 1.0"):
        StudentConfig(ema=1.0)


def test_embedding_init_and_its_context_settings_are_checked():
    assert StudentConfig(embedding_init="teacher-context").context_layer == -1
    with pytest.raises(ValueError, match="embedding_init must be one of.*teacher-context"):
        StudentConfig(embedding_init="context")
    with pytest.raises(ValueError, match="context_layer must be an integer"):
        StudentConfig(context_layer="last")
    with pytest.raises(ValueError, match="context_sentences must be >= 1, got 0"):
        StudentConfig(context_sentences=0)


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
