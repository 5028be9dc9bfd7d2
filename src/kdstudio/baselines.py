"""Baselines from outside distillation, trained in the same run on the same labelled rows.

fastText (supervised, Joulin et al. 2017) is what many would ship instead of a distilled
student: it learns from the hard labels alone, tokenises for itself, and runs in
microseconds. Its model call includes its tokenisation, so its two latencies are one.
"""

from __future__ import annotations

import json
import re
import tempfile
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
