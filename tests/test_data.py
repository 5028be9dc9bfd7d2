import json

import numpy as np
import pandas as pd
import pytest

from kdstudio.config import DataConfig
from kdstudio.data import UNLABELLED, DataError, load_task, read_table


def _load(path, **kw):
    return load_task(DataConfig(dataset=str(path), **kw), seed=0)


def _frame(n=40):
    return pd.DataFrame({"review": [f"text number {i}" for i in range(n)],
                         "sentiment": ["pos" if i % 3 else "neg" for i in range(n)]})


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".json", ".jsonl", ".parquet"])
def test_single_file_formats(tmp_path, suffix):
    df = _frame()
    p = tmp_path / f"d{suffix}"
    if suffix == ".csv":
        df.to_csv(p, index=False)
    elif suffix == ".tsv":
        df.to_csv(p, sep="\t", index=False)
    elif suffix == ".json":
        df.to_json(p, orient="records")
    elif suffix == ".jsonl":
        df.to_json(p, orient="records", lines=True)
    else:
        df.to_parquet(p)
    task = _load(p)
    assert (task.text_column, task.label_column) == ("review", "sentiment")
    assert task.label_names == ["neg", "pos"]
    assert len(task.train) + len(task.validation) == 40 and len(task.validation) == 4
    # the held-out split is seeded
    assert _load(p).validation.texts == task.validation.texts


def test_multiclass_and_explicit_columns(tmp_path):
    df = pd.DataFrame({"a": [f"s {i}" for i in range(30)], "b": [i % 4 for i in range(30)]})
    df.to_csv(tmp_path / "d.csv", index=False)
    task = _load(tmp_path / "d.csv", text_column="a", label_column="b")
    assert task.num_labels == 4 and task.label_names == ["0", "1", "2", "3"]


def test_folder_with_splits(tiny_data_dir):
    task = _load(tiny_data_dir)
    assert len(task.train) == 160 and len(task.validation) == 40
    assert task.train.labels.dtype == np.int64


def test_sst2_from_data_dir(tmp_path):
    (tmp_path / "sst2").mkdir()
    (tmp_path / "sst2" / "train.tsv").write_text('sentence\tlabel\na " quoted b\t1\nbad\t0\n')
    (tmp_path / "sst2" / "validation.tsv").write_text("sentence\tlabel\nok\t1\n")
    task = load_task(DataConfig(dataset="sst2", data_dir=str(tmp_path)))
    assert task.label_names == ["negative", "positive"]
    assert task.train.texts[0] == 'a " quoted b'


def test_subsampling(tiny_data_dir):
    task = load_task(DataConfig(dataset=str(tiny_data_dir), max_train_examples=50), seed=1)
    assert len(task.train) == 50


def test_labelled_subset_leaves_the_other_texts_unlabelled(tiny_data_dir):
    from kdstudio.data import UNLABELLED

    full = load_task(DataConfig(dataset=str(tiny_data_dir)), seed=1)
    task = load_task(DataConfig(dataset=str(tiny_data_dir), max_labelled_examples=50), seed=1)
    assert task.train.texts == full.train.texts  # every text is kept
    kept = task.train.labels != UNLABELLED
    assert kept.sum() == 50 and task.unlabelled == len(full.train) - 50
    assert (task.train.labels[kept] == full.train.labels[kept]).all()  # labels kept as they were
    assert sum(task.class_balance()["train"].values()) == 50
    assert task.label_name(UNLABELLED) == "(unlabelled)"
    assert any("unlabelled" in n for n in task.notes)
    assert (task.validation.labels >= 0).all()


def test_a_single_labelled_row_is_refused(tiny_data_dir):
    with pytest.raises(ValueError, match="max_labelled_examples must be >= 2"):
        DataConfig(dataset=str(tiny_data_dir), max_labelled_examples=1)

# ---- bad input: each gets a message naming the problem --------------------------------
def test_empty_label_cells_are_text_for_the_teacher_to_label(tmp_path):
    n = 60
    df = pd.DataFrame({"text": [f"sentence {i}" for i in range(n)],
                       "label": [(i % 2 if i < 20 else None) for i in range(n)]})
    p = tmp_path / "few-labels.csv"
    df.to_csv(p, index=False)  # integer labels with empty cells: pandas reads 0.0 / 1.0
    task = _load(p, validation_fraction=0.25)
    assert task.label_names == ["0", "1"]
    assert len(task.validation) == 5 and len(task.train) == 55  # 25% of the 20 labelled
    assert task.unlabelled == 40
    labelled = {f"sentence {i}": i % 2 for i in range(20)}
    assert all(labelled[t] == y for t, y in zip(task.validation.texts, task.validation.labels,
                                                  strict=True))
    for t, y in zip(task.train.texts, task.train.labels, strict=True):
        assert y == labelled.get(t, UNLABELLED)
    assert any("40 training rows have no label" in note for note in task.notes)


def test_a_validation_file_needs_every_label(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\na,pos\nb,\nc,neg\nd,pos\n")
    (tmp_path / "validation.csv").write_text("text,label\ne,pos\nf,\n")
    with pytest.raises(DataError, match=r"validation.csv: 1 row\(s\) have no label"):
        _load(tmp_path)
    (tmp_path / "validation.csv").write_text("text,label\ne,pos\nf,neg\n")
    task = _load(tmp_path)
    assert task.unlabelled == 1 and task.label_names == ["neg", "pos"]
    assert list(task.train.labels) == [1, UNLABELLED, 0, 1]


def test_integer_labels_with_gaps_match_a_complete_validation_file(tmp_path):
    (tmp_path / "train.csv").write_text("text,label\na,1\nb,\nc,0\nd,1\n")
    (tmp_path / "validation.csv").write_text("text,label\ne,1\nf,0\n")
    task = _load(tmp_path)
    assert task.label_names == ["0", "1"] and list(task.train.labels) == [1, UNLABELLED, 0, 1]


def test_a_file_without_any_label_is_refused(tmp_path):
    (tmp_path / "d.csv").write_text("text,label\na,\nb,\nc,\n")
    with pytest.raises(DataError, match="label"):
        _load(tmp_path / "d.csv", label_column="label", text_column="text")


def test_missing_named_column(tmp_path):
    _frame().to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DataError, match="text column 'txt' not found; the file has columns: "
                                        "review, sentiment"):
        _load(tmp_path / "d.csv", text_column="txt")


def test_undetectable_columns(tmp_path):
    pd.DataFrame({"x": [1.5, 2.5, 3.5, 4.5]}).to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(DataError, match="could not tell which column"):
        _load(tmp_path / "d.csv")


def test_empty_file(tmp_path):
    (tmp_path / "d.csv").write_text("")
    with pytest.raises(DataError, match="d.csv is empty"):
        _load(tmp_path / "d.csv")


def test_header_only_file(tmp_path):
    (tmp_path / "d.csv").write_text("text,label\n")
    with pytest.raises(DataError, match="has no rows"):
        _load(tmp_path / "d.csv")


def test_single_class(tmp_path):
    pd.DataFrame({"text": [f"t{i}" for i in range(20)], "label": ["yes"] * 20}).to_csv(
        tmp_path / "d.csv", index=False)
    with pytest.raises(DataError, match="single class"):
        _load(tmp_path / "d.csv")


def test_labels_outside_label_set(tmp_path):
    (tmp_path / "sst2").mkdir()
    (tmp_path / "sst2" / "train.tsv").write_text("sentence\tlabel\na\t1\nb\t0\nc\t7\n")
    (tmp_path / "sst2" / "validation.tsv").write_text("sentence\tlabel\nok\t1\n")
    with pytest.raises(DataError, match=r"label value\(s\) \[7\] are outside the label set"):
        load_task(DataConfig(dataset="sst2", data_dir=str(tmp_path)))


def test_validation_labels_unknown_to_train(tmp_path):
    d = tmp_path / "f"
    d.mkdir()
    pd.DataFrame({"text": ["a", "b", "c"], "label": ["x", "y", "x"]}).to_csv(d / "train.csv",
                                                                          index=False)
    pd.DataFrame({"text": ["d"], "label": ["z"]}).to_csv(d / "validation.csv", index=False)
    task = _load(d)  # z becomes a third class: allowed, the label set is the union
    assert task.label_names == ["x", "y", "z"]


def test_not_utf8(tmp_path):
    (tmp_path / "d.csv").write_bytes("text,label\ncaf\xe9,1\nb,0\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        _load(tmp_path / "d.csv")


def test_binary_named_csv(tmp_path):
    (tmp_path / "d.csv").write_bytes(bytes(range(256)) * 10)
    with pytest.raises(DataError, match="binary file"):
        _load(tmp_path / "d.csv")


def test_json_that_is_not_json(tmp_path):
    (tmp_path / "d.json").write_text("text,label\na,1\n")
    with pytest.raises(DataError, match="could not be read as JSON"):
        _load(tmp_path / "d.json")


def test_parquet_that_is_not_parquet(tmp_path):
    (tmp_path / "d.parquet").write_text(json.dumps([{"text": "a", "label": 1}]))
    with pytest.raises(DataError, match="could not be read as PARQUET"):
        _load(tmp_path / "d.parquet")


def test_unsupported_suffix(tmp_path):
    (tmp_path / "d.xlsx").write_text("x")
    with pytest.raises(DataError, match="unsupported file type .xlsx"):
        read_table(tmp_path / "d.xlsx")


def test_missing_path_and_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        _load(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="no train file"):
        _load(tmp_path)
    with pytest.raises(DataError, match="data folder .* does not exist"):
        load_task(DataConfig(dataset="sst2", data_dir=str(tmp_path / "none")))


def test_hub_loading_code_path(monkeypatch):
    """The Hub branch, with datasets.load_dataset answered locally (no network here)."""
    import datasets

    def fake_load(hub_id):
        assert hub_id == "someone/reviews"
        feats = datasets.Features({"text": datasets.Value("string"),
                                   "label": datasets.ClassLabel(names=["bad", "good"])})
        return datasets.DatasetDict({
            "train": datasets.Dataset.from_dict({"text": ["a", "b", "c", "d"],
                                                 "label": [0, 1, 0, 1]}, features=feats),
            "test": datasets.Dataset.from_dict({"text": ["e", "f"], "label": [-1, -1]},
                                               features=datasets.Features({
                                                   "text": datasets.Value("string"),
                                                   "label": datasets.Value("int64")})),
        })

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    monkeypatch.setattr("kdstudio.hub.hub_reachable", lambda: True)  # as if online
    task = load_task(DataConfig(dataset="someone/reviews", validation_fraction=0.25), seed=0)
    assert task.label_names == ["bad", "good"]
    assert len(task.validation) == 1 and len(task.train) == 3  # hidden test labels unused


def test_hub_unreachable_message(monkeypatch):
    import datasets

    def fail(hub_id):
        raise ConnectionError("no route to host")

    monkeypatch.setattr(datasets, "load_dataset", fail)
    monkeypatch.setattr("kdstudio.hub.hub_reachable", lambda: True)  # resolves, then fails
    monkeypatch.delenv("KDSTUDIO_DATA_DIR", raising=False)
    with pytest.raises(DataError, match="could not load 'stanfordnlp/sst2' from the Hugging "
                                        "Face Hub .*Set data_dir / KDSTUDIO_DATA_DIR"):
        load_task(DataConfig(dataset="sst2"))


HEADERLESS = ("a gripping , funny film\tpositive\nthe plot is thin and the jokes land with a "
              "thud\tnegative\nwarm and wise\tpositive\ndull , tedious mess\tnegative\n"
              "sharp writing\tpositive\nclumsy and slow\tnegative\n")


def test_a_headerless_two_column_tsv_with_string_labels_loads(tmp_path):
    from kdstudio.config import DataConfig
    from kdstudio.data import load_task, read_table

    f = tmp_path / "reviews.tsv"
    f.write_text(HEADERLESS)
    task = load_task(DataConfig(dataset=str(f), validation_fraction=0.34), seed=0)
    assert (task.text_column, task.label_column) == ("column_1", "column_2")
    assert task.label_names == ["negative", "positive"]
    assert len(task.train) + len(task.validation) == 6  # the first row is data too
    assert "a gripping , funny film" in task.train.texts + task.validation.texts
    assert any("no header row" in n for n in task.notes)
    # A file with a header keeps it; the setting overrides the guess either way.
    g = tmp_path / "named.tsv"
    g.write_text("sentence\tlabel\n" + HEADERLESS)
    assert list(read_table(g).columns) == ["sentence", "label"]
    assert list(read_table(g, header=False).columns) == ["column_1", "column_2"]
    assert list(read_table(f, header=True).columns) == ["a gripping , funny film", "positive"]


def test_the_data_command_describes_a_headerless_file(tmp_path, capsys):
    from kdstudio.cli import main

    f = tmp_path / "reviews.tsv"
    f.write_text(HEADERLESS)
    assert main(["data", str(f)]) == 0
    out = capsys.readouterr().out
    assert "columns:    column_1, column_2" in out
    assert "text:       column_1" in out and "label:      column_2" in out
    assert "train:      5 rows" in out and "validation: 1 rows" in out
    assert "negative\ttrain " in out and "positive\ttrain " in out
    assert "no header row" in out
    assert main(["data", str(tmp_path / "missing.tsv")]) == 2


def test_online_only_choices_fail_fast_without_the_hub(monkeypatch):
    import pytest

    from kdstudio import hub
    from kdstudio.config import DataConfig
    from kdstudio.data import DataError, load_task
    from kdstudio.teacher import TeacherError, resolve_model_ref

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.hub_reachable.cache_clear()
    try:
        with pytest.raises(TeacherError, match="backbone 'bert-base-uncased' must be "
                                               "downloaded from the Hugging Face Hub"):
            resolve_model_ref("bert-base-uncased")
        with pytest.raises(DataError, match="dataset 'owner/reviews' must be downloaded"):
            load_task(DataConfig(dataset="owner/reviews"))
    finally:
        hub.hub_reachable.cache_clear()
