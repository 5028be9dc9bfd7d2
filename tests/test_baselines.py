import numpy as np
import pytest

from kdstudio.baselines import FastTextClassifier, fasttext_predictor, normalise, train_fasttext


def make_sentences(n: int, seed: int) -> list[tuple[str, int]]:
    rng = np.random.default_rng(seed)
    words = {1: ["good", "great", "wonderful", "brilliant"], 0: ["bad", "awful", "dull", "tedious"]}
    filler = ["the", "movie", "film", "was", "is", "a", "very", "plot", "and"]
    rows = []
    for _ in range(n):
        y = int(rng.integers(2))
        text = list(rng.choice(filler, int(rng.integers(2, 6)))) + [str(rng.choice(words[y]))]
        rng.shuffle(text)
        rows.append((" ".join(text), y))
    return rows


def test_normalise_makes_one_lower_case_line_with_punctuation_apart():
    assert normalise("A Thud.\nThe END!") == "a thud . the end !"
    assert normalise("it's fine") == "it's fine"


def labelled_and_unlabelled() -> tuple[list[str], np.ndarray]:
    """300 labelled rows, then 100 unlabelled (-1) ones that carry the opposite label's
    words: training on them would hurt."""
    rows = make_sentences(300, 1)
    texts = [t for t, _ in rows]
    noise = [t.replace("good", "bad") for t in texts[:100]]
    return texts + noise, np.concatenate([[y for _, y in rows], -np.ones(100, int)])


def test_fasttext_learns_from_the_labelled_rows_only(tmp_path):
    pytest.importorskip("fasttext")
    meta = train_fasttext(*labelled_and_unlabelled(), ["negative", "positive"], tmp_path,
                          seed=1)
    assert meta["train_examples"] == 300
    model = FastTextClassifier(tmp_path)
    val = make_sentences(60, 2)
    logits = model.logits([normalise(t) for t, _ in val])
    assert logits.shape == (60, 2)
    # Label order is the task's: column 1 is "positive", not fastText's most frequent label.
    acc = (logits.argmax(-1) == np.array([y for _, y in val])).mean()
    assert acc >= 0.9, acc
    p = fasttext_predictor(tmp_path)
    assert p.kind == "baseline:fasttext" and p.size_bytes == (tmp_path / "model.bin").stat().st_size
    assert (p.predict(["a wonderful brilliant film"]).argmax(-1) == [1]).all()


def test_model2vec_learns_from_the_labelled_rows_only(tmp_path, tiny_backbone):
    pytest.importorskip("skeletoken")
    from kdstudio.baselines import Model2VecClassifier, model2vec_predictor, train_model2vec

    meta = train_model2vec(*labelled_and_unlabelled(), ["negative", "positive"],
                           str(tiny_backbone), tmp_path, seed=1)
    assert meta["train_examples"] == 300
    assert meta["settings"]["pca_dims"] == 32  # the tiny backbone's width, not 256
    model = Model2VecClassifier(tmp_path)
    val = make_sentences(60, 2)
    logits = model.logits([t for t, _ in val])
    assert logits.shape == (60, 2)
    acc = (logits.argmax(-1) == np.array([y for _, y in val])).mean()
    assert acc >= 0.9, acc
    p = model2vec_predictor(tmp_path)
    assert p.kind == "baseline:model2vec" and p.backend == "model2vec"
    assert 0 < p.size_bytes < sum(f.stat().st_size for f in tmp_path.iterdir())
    assert (p.predict(["a wonderful brilliant film", "a dull tedious plot"]).argmax(-1)
            == [1, 0]).all()


def test_model2vec_missing_says_what_to_install(monkeypatch):
    import builtins

    from kdstudio.baselines import model2vec_modules

    real = builtins.__import__

    def no_model2vec(name, *args, **kwargs):
        if name.startswith("model2vec"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_model2vec)
    with pytest.raises(ValueError, match="pip install 'model2vec.*skeletoken.*model2vec_baseline"):
        model2vec_modules()
