"""Token ids for short texts at a fraction of the tokenizer's per-call cost.

A fast (Rust) tokenizer spends 40-60 µs on one SST-2 sentence, more than the static
student's whole ONNX call. For the BERT WordPiece tokenizers (lower-casing or not, no added
tokens that strip or match words), printable ASCII text splits into words with one regular
expression and each word's pieces can be cached, giving the tokenizer's own ids several
times faster. Any other text, and any other tokenizer, goes to the tokenizer itself.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

#: Text the plain-ASCII path handles: printable ASCII, tabs and newlines.
_PLAIN = re.compile(r"[\x20-\x7e\t\n\r]*")
#: BertPreTokenizer on ASCII: runs of letters and digits; every other printable character
#: is punctuation and a word of its own.
_WORDS = re.compile(r"[A-Za-z0-9]+|[^A-Za-z0-9\s]")
_CACHE_WORDS = 200_000


class _WordPieceIds:
    def __init__(self, backend) -> None:
        self.model = backend.model
        self.lower = bool(backend.normalizer.lowercase)
        self.added = {t.content: i for i, t in backend.get_added_tokens_decoder().items()}
        longest_first = sorted(self.added, key=len, reverse=True)
        self.split = (re.compile("(" + "|".join(map(re.escape, longest_first)) + ")")
                      if self.added else None)
        self.pieces: dict[str, list[int]] = {}

    def _word(self, word: str) -> list[int]:
        ids = self.pieces.get(word)
        if ids is None:
            ids = [t.id for t in self.model.tokenize(word)]
            if len(self.pieces) < _CACHE_WORDS:
                self.pieces[word] = ids
        return ids

    def _plain(self, text: str, out: list[int]) -> None:
        for word in _WORDS.findall(text.lower() if self.lower else text):
            out += self._word(word)

    def ids(self, text: str) -> list[int] | None:
        """The ids without special tokens, or None where only the tokenizer can say."""
        if not _PLAIN.fullmatch(text):
            return None
        out: list[int] = []
        if self.split is None:
            self._plain(text, out)
            return out
        for k, part in enumerate(self.split.split(text)):
            if k % 2:
                out.append(self.added[part])
            elif part:
                self._plain(part, out)
        return out


@lru_cache(maxsize=8)
def _fast(tokenizer) -> _WordPieceIds | None:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    from tokenizers import models, normalizers, pre_tokenizers

    norm = backend.normalizer
    if not (isinstance(norm, normalizers.BertNormalizer) and norm.clean_text
            and isinstance(backend.pre_tokenizer, pre_tokenizers.BertPreTokenizer)
            and isinstance(backend.model, models.WordPiece)):
        return None
    added = backend.get_added_tokens_decoder().values()
    if any(t.lstrip or t.rstrip or t.single_word or t.normalized for t in added):
        return None
    return _WordPieceIds(backend)


def token_ids(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """Each text's token ids without special tokens, cut to ``max_length``: the same as
    ``tokenizer(texts, add_special_tokens=False, truncation=True, max_length=max_length)``."""
    fast = _fast(tokenizer)
    rows: list[list[int] | None] = ([fast.ids(t) for t in texts] if fast
                                    else [None] * len(texts))
    rest = [i for i, r in enumerate(rows) if r is None]
    if rest:
        enc = tokenizer([texts[i] for i in rest], add_special_tokens=False, truncation=True,
                        max_length=max_length)["input_ids"]
        for i, r in zip(rest, enc, strict=True):
            rows[i] = r
    return [r[:max_length] for r in rows]  # type: ignore[index]


def model_inputs(tokenizer, texts: list[str], max_length: int) -> dict[str, np.ndarray]:
    """``input_ids`` and ``attention_mask`` (B, L) int64 for a transformer: the same as
    ``tokenizer(texts, padding=True, truncation=True, max_length=max_length)`` gives
    (BERT's token type ids are all zero, the model's default, so they are left out)."""
    fast = _fast(tokenizer)
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    if (fast is None or cls_id is None or sep_id is None or max_length < 2
            or tokenizer.padding_side != "right"):
        enc = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length,
                        return_tensors="np")
        return {"input_ids": enc["input_ids"].astype(np.int64),
                "attention_mask": enc["attention_mask"].astype(np.int64)}
    rows = [[cls_id, *r, sep_id] for r in token_ids(tokenizer, texts, max_length - 2)]
    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), tokenizer.pad_token_id or 0, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = r
        mask[i, :len(r)] = 1
    return {"input_ids": ids, "attention_mask": mask}
