import random
import string

import numpy as np
import pytest

from kdstudio.tokens import _fast, model_inputs, token_ids


def _texts(seed: int, n: int = 400) -> list[str]:
    """Random text: ASCII letters, digits, punctuation and whitespace, some accents and CJK,
    special tokens in both cases, and words past WordPiece's 100-character limit."""
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + string.punctuation + " " * 12 + "\t\n"
    words = ["[MASK]", "[mask]", "[CLS]", " [UNK] ", "[PAD]x", "ünïcode", "中文", "\x00",
             "a" * 120, "don't", "well-made", "U.S.", "$5"]
    out = ["", " ", "\t\n", "[MASK]"]
    for _ in range(n):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        if rng.random() < 0.4:
            k = rng.randint(0, len(s))
            s = s[:k] + rng.choice(words) + s[k:]
        out.append(s)
    return out


def _tokenizers(tiny_backbone):
    from transformers import AutoTokenizer, BertTokenizerFast

    from kdstudio.config import PACKAGED_MINILM
    from kdstudio.teacher import resolve_model_ref

    return {"tiny": AutoTokenizer.from_pretrained(tiny_backbone),
            "tiny-cased": BertTokenizerFast(vocab=str(tiny_backbone / "vocab.txt"),
                                            do_lower_case=False),
            "minilm": AutoTokenizer.from_pretrained(resolve_model_ref(PACKAGED_MINILM))}


@pytest.mark.parametrize("max_length", [64, 5])
def test_token_ids_are_the_tokenizers_own(tiny_backbone, max_length):
    for name, tok in _tokenizers(tiny_backbone).items():
        assert _fast(tok) is not None, name  # the fast path is the one under test
        texts = _texts(len(name))
        ref = tok(texts, add_special_tokens=False, truncation=True,
                  max_length=max_length)["input_ids"]
        got = token_ids(tok, texts, max_length)
        assert got == ref, name
        assert any(len(r) > 3 for r in got)


@pytest.mark.parametrize("max_length", [64, 6])
def test_model_inputs_are_the_tokenizers_own(tiny_backbone, max_length):
    for name, tok in _tokenizers(tiny_backbone).items():
        texts = _texts(7)
        for s in range(0, len(texts), 9):
            batch = texts[s:s + 9]
            ref = tok(batch, padding=True, truncation=True, max_length=max_length,
                      return_tensors="np")
            got = model_inputs(tok, batch, max_length)
            np.testing.assert_array_equal(got["input_ids"], ref["input_ids"], err_msg=name)
            np.testing.assert_array_equal(got["attention_mask"], ref["attention_mask"])


def test_other_tokenizers_go_to_the_tokenizer():
    """A byte-level BPE tokenizer has no fast path: its own ids come back."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.train_from_iterator(["a fine film , not a dull one"] * 20,
                            trainers.BpeTrainer(vocab_size=80, special_tokens=["<unk>"]))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, unk_token="<unk>")
    assert _fast(tok) is None
    texts = ["a fine film", "not dull , fine", ""]
    assert token_ids(tok, texts, 64) == tok(texts, add_special_tokens=False, truncation=True,
                                            max_length=64)["input_ids"]
