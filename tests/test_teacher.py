import pytest

from kdstudio.config import DataConfig, TeacherConfig
from kdstudio.data import load_task
from kdstudio.teacher import TeacherError, fine_tune, load_teacher, resolve_model_ref


def test_fine_tune_saves_safetensors_and_reports_accuracy(tiny_data_dir, tiny_backbone,
                                                          tmp_path):
    task = load_task(DataConfig(dataset=str(tiny_data_dir)))
    steps = []
    m = fine_tune(task, TeacherConfig(backbone=str(tiny_backbone), epochs=4, batch_size=16,
                                      learning_rate=5e-3, max_length=32),
                  tmp_path / "t", seed=0, device="cpu", on_step=lambda p: steps.append(p))
    assert (tmp_path / "t" / "model.safetensors").exists()
    assert (tmp_path / "t" / "tokenizer.json").exists()
    # Chance is 0.5 on the balanced tiny data; these settings reach 1.0 by the 2nd epoch.
    # 8 of the 160 rows are held out to choose the epoch: 10 steps of 16 per epoch.
    assert m["val_accuracy"] >= 0.9 and m["steps"] == 40, m["history"]
    assert m["train_examples"] == 152 and m["chosen_by"] == "accuracy on 8 held-out training rows"
    kept = m["history"][m["best_epoch"] - 1]
    assert kept["holdout_accuracy"] == max(h["holdout_accuracy"] for h in m["history"])
    assert m["val_accuracy"] == kept["val_accuracy"]
    assert steps[-1].metrics["val_accuracy"] == pytest.approx(m["history"][-1]["val_accuracy"])
    # Every progress event says what trains, for the Distillation tab's device line.
    assert steps[0].metrics["device"] == "cpu"
    assert steps[0].metrics["precision"] == m["precision"]
    t = load_teacher(str(tmp_path / "t"), task)
    assert t.label_names == ["0", "1"]
    assert t.predict_logits(["good movie", "bad"]).shape == (2, 2)
    # What was saved is the best epoch: it scores what the metrics say it scored.
    logits = t.predict_logits(task.validation.texts)
    assert (logits.argmax(-1) == task.validation.labels).mean() == m["val_accuracy"]


def test_the_epoch_is_never_chosen_by_the_validation_split(tiny_data_dir, tiny_backbone,
                                                           tmp_path):
    """With the validation labels flipped, choosing by validation would keep the weakest
    epoch (the first); the teacher keeps the one its held-out training rows prefer, and
    reports the (low) validation accuracy of that one."""
    import dataclasses

    task = load_task(DataConfig(dataset=str(tiny_data_dir)))
    flipped = dataclasses.replace(task, validation=dataclasses.replace(
        task.validation, labels=1 - task.validation.labels))
    cfg = TeacherConfig(backbone=str(tiny_backbone), epochs=4, batch_size=16,
                        learning_rate=5e-3, max_length=32)
    m = fine_tune(flipped, cfg, tmp_path / "t", seed=0, device="cpu")
    val = [h["val_accuracy"] for h in m["history"]]
    assert val.index(max(val)) == 0 and m["best_epoch"] > 1, m["history"]
    assert m["val_accuracy"] == val[m["best_epoch"] - 1] <= 0.1
    # One epoch: nothing to choose, nothing held out.
    one = fine_tune(task, dataclasses.replace(cfg, epochs=1), tmp_path / "one", seed=0,
                    device="cpu")
    assert one["chosen_by"] == "last epoch" and one["train_examples"] == 160


@pytest.mark.parametrize("bf16", [False, True])
def test_progress_reports_the_precision_that_trains(tiny_data_dir, tiny_backbone, tmp_path,
                                                    monkeypatch, bf16):
    import kdstudio.teacher as T

    monkeypatch.setattr(T, "native_bf16", lambda: bf16)
    task = load_task(DataConfig(dataset=str(tiny_data_dir)))
    events = []
    m = fine_tune(task, TeacherConfig(backbone=str(tiny_backbone), epochs=1, batch_size=32,
                                      max_length=32),
                  tmp_path / "t", seed=0, device="cpu", on_step=lambda p: events.append(p.as_event()))
    want = "bf16" if bf16 else "fp32"
    assert m["precision"] == want
    assert {e["precision"] for e in events} == {want}


def test_teacher_path_that_does_not_exist():
    with pytest.raises(TeacherError, match="teacher path '/no/such/teacher' does not exist"):
        resolve_model_ref("/no/such/teacher")


def test_folder_that_is_not_a_model(tmp_path):
    with pytest.raises(TeacherError, match="not a transformers model folder"):
        resolve_model_ref(str(tmp_path))


def test_teacher_whose_labels_do_not_fit(tmp_path, tiny_backbone):
    import pandas as pd

    pd.DataFrame({"text": [f"t {i}" for i in range(30)], "label": [i % 3 for i in range(30)]}
                 ).to_csv(tmp_path / "d.csv", index=False)
    task = load_task(DataConfig(dataset=str(tmp_path / "d.csv")))
    with pytest.raises(TeacherError, match="predicts 2 classes .* but the data has 3"):
        load_teacher(str(tiny_backbone), task)


def test_teacher_with_crossed_label_names(tmp_path, tiny_backbone):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    m = AutoModelForSequenceClassification.from_pretrained(
        tiny_backbone, id2label={0: "pos", 1: "neg"}, label2id={"pos": 0, "neg": 1})
    m.save_pretrained(tmp_path / "t")
    AutoTokenizer.from_pretrained(tiny_backbone).save_pretrained(tmp_path / "t")
    import pandas as pd

    pd.DataFrame({"text": [f"t {i}" for i in range(20)],
                  "label": ["neg", "pos"] * 10}).to_csv(tmp_path / "d.csv", index=False)
    task = load_task(DataConfig(dataset=str(tmp_path / "d.csv")))
    with pytest.raises(TeacherError, match="ids would be crossed"):
        load_teacher(str(tmp_path / "t"), task)


def test_packaged_minilm_is_found():
    from kdstudio.config import PACKAGED_MINILM

    p = resolve_model_ref(PACKAGED_MINILM)
    assert p.endswith("model")


def test_onnx_labelling_matches_pytorch(tiny_backbone, tmp_path):
    import numpy as np

    t = load_teacher(str(tiny_backbone), max_length=16)
    texts = ["good movie", "a very dull and boring plot", "", "it"]
    ref = t.predict_logits(texts, batch_size=3)
    t.use_onnx(tmp_path / "t.onnx")
    assert t.ort_session is not None
    assert np.abs(t.predict_logits(texts, batch_size=3) - ref).max() < 1e-4


def test_int8_labelling_is_close_and_says_so(tiny_backbone, tmp_path):
    import numpy as np

    t = load_teacher(str(tiny_backbone), max_length=16)
    texts = ["good movie", "a very dull and boring plot", "", "it", "not bad at all"] * 4
    ref = t.predict_logits(texts, batch_size=3)
    assert t.labeller == "torch"
    t.use_onnx(tmp_path / "t.onnx", int8=True)
    assert t.labeller == "onnx-int8"
    assert (tmp_path / "t.int8.onnx").exists() and (tmp_path / "t.onnx").exists()
    # The quantized graph really is integer arithmetic, not the fp32 one renamed.
    from kdstudio.quantize import check_quantized

    check_quantized(tmp_path / "t.int8.onnx", expect=("MatMulInteger",))
    got = t.predict_logits(texts, batch_size=3)
    diff = np.abs(got - ref).max()
    assert 0 < diff < 0.1 * max(np.abs(ref).max(), 1.0)
    t.use_onnx(tmp_path / "t.onnx")  # back to fp32: the same logits again
    assert t.labeller == "onnx"
    assert np.abs(t.predict_logits(texts, batch_size=3) - ref).max() < 1e-4
