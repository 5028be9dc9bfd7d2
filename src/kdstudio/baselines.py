"""Baselines from outside distillation, trained in the same run on the same labelled rows.

fastText (supervised, Joulin et al. 2017) is what many would ship instead of a distilled
student: it learns from the hard labels alone, tokenises for itself, and runs in
microseconds. Model2Vec's classifier (a static model distilled from the teacher's pretrained
backbone, with a small head trained on the hard labels) is the other. Both tokenise for
themselves, so their model call includes the tokenisation and their two latencies are one.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from pathlib import Path

import numpy as np

#: fastText settings (not tuned on the reported split): bigrams, as in Joulin et al.'s
#: sentiment results (they used 10 dimensions); 20 dimensions and 100,000 hash buckets keep
#: the file near 8 MB where the library's defaults (100, 2,000,000) write 800 MB.
FASTTEXT_SETTINGS = {"dim": 20, "epoch": 10, "lr": 0.5, "wordNgrams": 2, "bucket": 100_000,
                     "minCount": 1, "thread": 1}
FASTTEXT_FILE, FASTTEXT_META = "model.bin", "fasttext.json"
FASTTEXT_LABEL = "fastText (hard labels)"
_PUNCT = re.compile(r"([^\w\s'])")


def fasttext_module():
    try:
        import fasttext
    except ImportError:
        raise ValueError("the fastText baseline needs the fasttext package: pip install "
                         "fasttext-wheel (or turn student.fasttext_baseline off)") from None
    fasttext.FastText.eprint = lambda *_: None  # a notice about its own API on every load
    return fasttext


def normalise(text: str) -> str:
    """One line, lower case, punctuation split off words: what fastText's whitespace
    tokeniser needs (a newline would end the example)."""
    return " ".join(_PUNCT.sub(r" \1 ", text.lower()).split())


def train_fasttext(texts: list[str], labels: np.ndarray, label_names: list[str],
                   out_dir: str | Path, seed: int = 0) -> dict:
    """Train on the rows with a label (>= 0); write the model and its meta to ``out_dir``."""
    fasttext = fasttext_module()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keep = np.flatnonzero(np.asarray(labels) >= 0)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as f:
        for i in keep:
            f.write(f"__label__{int(labels[i])} {normalise(texts[i])}\n")
        train_file = f.name
    try:
        model = fasttext.train_supervised(train_file, seed=seed, verbose=0,
                                          **FASTTEXT_SETTINGS)
    finally:
        Path(train_file).unlink()
    model.save_model(str(out_dir / FASTTEXT_FILE))
    args = model.f.getArgs()
    params = (len(model.words) + args.bucket + len(model.labels)) * args.dim
    meta = {"label": FASTTEXT_LABEL, "label_names": label_names, "params": int(params),
            "train_examples": int(len(keep)), "settings": FASTTEXT_SETTINGS, "seed": seed}
    (out_dir / FASTTEXT_META).write_text(json.dumps(meta, indent=1))
    return meta


class FastTextClassifier:
    """A saved fastText model behind ``logits(texts)`` (log-probabilities in label order)."""

    def __init__(self, path: str | Path):
        path = Path(path)
        self.meta = json.loads((path / FASTTEXT_META).read_text())
        self.num_labels = len(self.meta["label_names"])
        self.model = fasttext_module().load_model(str(path / FASTTEXT_FILE))
        self.size_bytes = (path / FASTTEXT_FILE).stat().st_size

    def logits(self, lines: list[str]) -> np.ndarray:
        """``lines`` already :func:`normalise`-d. (The library's batch call returns wrong
        probabilities under NumPy 2, so each line is its own call.)"""
        out = np.full((len(lines), self.num_labels), -30.0, dtype=np.float32)
        f = self.model.f
        for i, line in enumerate(lines):
            for prob, label in f.predict(line, self.num_labels, 0.0, "strict"):
                out[i, int(label.removeprefix("__label__"))] = np.log(max(prob, 1e-13))
        return out


def fasttext_predictor(path: str | Path):
    from .compare import Predictor

    model = FastTextClassifier(path)
    return Predictor(FASTTEXT_LABEL, "baseline:fasttext",
                     lambda texts: [normalise(t) for t in texts], model.logits,
                     model.meta["params"], model.size_bytes, "fasttext")


#: Model2Vec's own recipe, untuned: a static model distilled from the teacher's pretrained
#: backbone (model2vec.distill: each token through the backbone, PCA to 256, Zipf weights),
#: then its classifier (one 512-wide layer), early-stopped on 10% of the labelled rows.
MODEL2VEC_SETTINGS = {"pca_dims": 256, "n_layers": 1, "hidden_dim": 512,
                      "learning_rate": 1e-3, "early_stopping_patience": 5, "test_size": 0.1}
MODEL2VEC_META = "model2vec.json"
MODEL2VEC_LABEL = "Model2Vec classifier (hard labels)"


def model2vec_modules():
    try:
        from model2vec.distill import distill_from_model
        from model2vec.inference import StaticModelPipeline
        from model2vec.train import StaticModelForClassification
    except ImportError:
        raise ValueError("the Model2Vec baseline needs the model2vec and skeletoken packages: "
                         "pip install 'model2vec>=0.10,<0.11' 'skeletoken>=0.6,<0.7' (or turn "
                         "student.model2vec_baseline off)") from None
    return distill_from_model, StaticModelForClassification, StaticModelPipeline


def train_model2vec(texts: list[str], labels: np.ndarray, label_names: list[str],
                    backbone: str, out_dir: str | Path, seed: int = 0) -> dict:
    """Distil ``backbone`` (a transformers folder or Hub id) the Model2Vec way and fit its
    classifier on the rows with a label (>= 0); write the pipeline and its meta to
    ``out_dir``."""
    import contextlib
    import io

    import torch
    from transformers import AutoModel, AutoTokenizer

    distill_from_model, classifier, _ = model2vec_modules()
    out_dir = Path(out_dir)
    keep = np.flatnonzero(np.asarray(labels) >= 0)
    s = MODEL2VEC_SETTINGS
    model = AutoModel.from_pretrained(backbone)
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    dims = min(s["pca_dims"], model.config.hidden_size)
    # Both steps draw tqdm bars on stderr that would fill the run's log.
    with contextlib.redirect_stderr(io.StringIO()):
        static = distill_from_model(model=model, tokenizer=tokenizer, pca_dims=dims,
                                    device="cpu")
        clf = classifier.from_static_model(model=static, n_layers=s["n_layers"],
                                           hidden_dim=s["hidden_dim"], out_dim=len(label_names))
        clf.fit([texts[i] for i in keep], [int(labels[i]) for i in keep],
                learning_rate=s["learning_rate"],
                early_stopping_patience=s["early_stopping_patience"],
                test_size=s["test_size"], device="cpu", random_seed=seed)
    clf.to_pipeline().save_pretrained(str(out_dir))
    params = sum(p.numel() for p in clf.parameters())
    meta = {"label": MODEL2VEC_LABEL, "label_names": label_names, "params": int(params),
            "train_examples": int(len(keep)), "backbone": str(backbone),
            "settings": {**s, "pca_dims": dims}, "seed": seed,
            "torch_threads": torch.get_num_threads()}
    (out_dir / MODEL2VEC_META).write_text(json.dumps(meta, indent=1))
    return meta


class Model2VecClassifier:
    """A saved Model2Vec pipeline behind ``logits(texts)`` (log-probabilities in label
    order). It tokenises for itself, so its model call is end to end."""

    def __init__(self, path: str | Path):
        path = Path(path)
        self.meta = json.loads((path / MODEL2VEC_META).read_text())
        self.pipeline = model2vec_modules()[2].from_pretrained(str(path))
        self.num_labels = len(self.meta["label_names"])
        self.classes = np.array([int(c) for c in self.pipeline.classes_])  # the labels it saw
        self.size_bytes = sum(f.stat().st_size for f in path.iterdir()
                              if f.suffix in (".safetensors", ".json") and f.name != MODEL2VEC_META)

    def logits(self, texts: list[str]) -> np.ndarray:
        p = self.pipeline.predict_proba(list(texts), use_multiprocessing=False)
        out = np.full((len(p), self.num_labels), -30.0, dtype=np.float32)
        out[:, self.classes] = np.log(np.maximum(p, 1e-13))
        return out


def model2vec_predictor(path: str | Path):
    from .compare import Predictor

    model = Model2VecClassifier(path)
    return Predictor(MODEL2VEC_LABEL, "baseline:model2vec", list, model.logits,
                     model.meta["params"], model.size_bytes, "model2vec")


def train_baselines(run, cfg, task, seed: int) -> dict:
    """The outside baselines ``cfg`` (a RunConfig) asks for, on the hard labels of the
    ``task``'s training split, into ``run``'s students folder (the compare stage picks up
    what is there); logs each as a student and returns its validation accuracy."""
    from .runs import STUDENTS_DIR
    from .teacher import resolve_model_ref

    train, val = task.train, task.validation
    todo = []
    if cfg.student.fasttext_baseline:
        todo.append(("fasttext", lambda out: train_fasttext(
            train.texts, train.labels, task.label_names, out, seed),
            lambda out: FastTextClassifier(out).logits([normalise(t) for t in val.texts])))
    if cfg.student.model2vec_baseline:
        todo.append(("model2vec", lambda out: train_model2vec(
            train.texts, train.labels, task.label_names,
            resolve_model_ref(cfg.teacher.backbone), out, seed),
            lambda out: Model2VecClassifier(out).logits(val.texts)))
    results = {}
    for name, fit, logits in todo:
        out = run.file(f"{STUDENTS_DIR}/{name}")
        run.log("student_started", variant=name, train_examples=len(train))
        t0 = time.time()
        meta = fit(out)
        acc = float((logits(out).argmax(-1) == val.labels).mean())
        results[name] = {"val_accuracy": acc, "params": meta["params"],
                         "train_examples": meta["train_examples"],
                         "seconds": round(time.time() - t0, 2)}
        run.log("student_finished", variant=name, **results[name])
    return results


#: Each baseline by its folder under a run's students/: the file that marks it trained, and
#: its predictor.
BASELINES = {"fasttext": (FASTTEXT_FILE, fasttext_predictor),
             "model2vec": (MODEL2VEC_META, model2vec_predictor)}


def trained_baselines(students_dir: str | Path) -> dict[str, Path]:
    """The baselines trained into ``students_dir``, by name → folder."""
    return {name: Path(students_dir) / name for name, (marker, _) in BASELINES.items()
            if (Path(students_dir) / name / marker).exists()}
