import numpy as np
import pytest

from kdstudio.augment import (
    PosDictionary,
    TaggedCorpus,
    augment_words,
    build_transfer_texts,
    make_sample,
)
from kdstudio.config import AugmentConfig

TAGGED = [
    (["the", "movie", "was", "good"], ["DT", "NN", "VBD", "JJ"]),
    (["a", "film", "is", "bad"], ["DT", "NN", "VBZ", "JJ"]),
    (["the", "story", "was", "dull", "and", "long"], ["DT", "NN", "VBD", "JJ", "CC", "JJ"]),
    (["it", "is", "great"], ["PRP", "VBZ", "JJ"]),
]
POS = PosDictionary.from_tagged(TAGGED)
WORDS = ["the", "movie", "was", "good", "and", "the", "story", "was", "dull", "it", "is", "a",
         "film"]
TAGS = ["DT", "NN", "VBD", "JJ", "CC", "DT", "NN", "VBD", "JJ", "PRP", "VBZ", "DT", "NN"]


def _cfg(**kw):
    base = {"p_mask": 0.0, "p_pos": 0.0, "p_ng": 0.0}
    base.update(kw)
    return AugmentConfig(**base)


def test_mask_rate_close_to_p_mask():
    cfg = _cfg(p_mask=0.3)
    rng = np.random.default_rng(0)
    masked = total = 0
    for _ in range(2000):
        c = make_sample(WORDS, TAGS, POS, cfg, rng)
        masked += sum(r == "mask" for r in c.rules)
        total += len(c.words)
    assert abs(masked / total - 0.3) < 0.015


def swap_chance(word: str, tag: str, pos: PosDictionary = POS, tries: int = 4) -> float:
    """P(a POS swap of ``word`` finds another word) once the swap rule fires: none when the
    tag has no other word, else all but the chance that each of the ``tries``
    frequency-weighted draws hits ``word`` itself."""
    ws = pos.words.get(tag, [])
    if not ws or ws == [word]:
        return 0.0
    counts = dict(zip(ws, pos.counts[tag], strict=True))
    q = counts.get(word, 0) / sum(counts.values())
    return 1.0 - q ** tries


def within(observed: float, expected: float, var: float, sds: float = 4.0) -> bool:
    return abs(observed - expected) <= sds * var ** 0.5


def test_pos_swaps_keep_the_tag_and_change_the_word():
    cfg = _cfg(p_pos=0.5)
    rng = np.random.default_rng(1)
    swaps = 0
    for _ in range(500):
        c = make_sample(WORDS, TAGS, POS, cfg, rng)
        for i, (w, r, o) in enumerate(zip(c.words, c.rules, c.originals, strict=True)):
            if r == "pos":
                swaps += 1
                assert w != o
                assert TAGS[i] in POS.tag_of(w)
    # Each word is swapped with probability p_pos x its swap chance (0 for "was", "and",
    # "it", "is": their tags hold no other word): about 1,860 of the 6,500 words.
    p = [0.5 * swap_chance(w, t) for w, t in zip(WORDS, TAGS, strict=True)]
    expected, var = 500 * sum(p), 500 * sum(x * (1 - x) for x in p)
    assert 1800 < expected < 1900
    assert within(swaps, expected, var), (swaps, expected)


def test_mask_pos_and_ngram_rates_together_at_the_default_settings():
    """All three rules at once, at AugmentConfig's defaults (what the presets use): each
    rate within 4 standard deviations of what the rules say, n-gram lengths uniform over
    ngram_min..ngram_max. Counted on make_sample draws (augment_words drops duplicates)."""
    cfg = AugmentConfig()
    assert cfg.p_mask > 0 and cfg.p_pos > 0 and cfg.p_ng > 0 and not cfg.ngram_mask
    assert cfg.ngram_max <= len(WORDS)  # so that no length is clipped to the sentence
    draws = 20000
    rng = np.random.default_rng(11)
    chance = {(w, t): swap_chance(w, t) for w, t in zip(WORDS, TAGS, strict=True)}
    n_words = n_mask = n_pos = n_ng = 0
    pos_mean = pos_var = 0.0
    sizes = {k: 0 for k in range(cfg.ngram_min, cfg.ngram_max + 1)}
    for _ in range(draws):
        c = make_sample(WORDS, TAGS, POS, cfg, rng)
        if c.ngram is None:
            offset = 0
            assert c.originals == WORDS
        else:
            n_ng += 1
            s, e = c.ngram
            sizes[e - s] += 1
            offset = s
            assert c.originals == WORDS[s:e] and len(c.words) == e - s
        for i, (w, r, o) in enumerate(zip(c.words, c.rules, c.originals, strict=True)):
            n_words += 1
            tag = TAGS[offset + i]
            # The per-word draws are independent of which words the n-gram keeps, so every
            # kept word is masked with p_mask and swapped with p_pos x its swap chance.
            p = cfg.p_pos * chance[(o, tag)]
            pos_mean += p
            pos_var += p * (1 - p)
            if r == "mask":
                n_mask += 1
                assert w == "[MASK]"
            elif r == "pos":
                n_pos += 1
                assert w != o and tag in POS.tag_of(w)
            else:
                assert r is None and w == o
    assert within(n_mask, cfg.p_mask * n_words, n_words * cfg.p_mask * (1 - cfg.p_mask)), \
        (n_mask, n_words)
    assert within(n_pos, pos_mean, pos_var), (n_pos, pos_mean)
    assert within(n_ng, cfg.p_ng * draws, draws * cfg.p_ng * (1 - cfg.p_ng)), n_ng
    k = len(sizes)
    for got in sizes.values():
        assert within(got, n_ng / k, n_ng * (1 / k) * (1 - 1 / k)), sizes


def test_pos_swaps_follow_corpus_frequencies():
    tagged = [(["good"], ["JJ"])] * 9 + [(["bad"], ["JJ"])] + [(["nice"], ["JJ"])] * 90
    pos = PosDictionary.from_tagged(tagged)
    rng = np.random.default_rng(0)
    draws = [pos.sample("JJ", rng, avoid="bad") for _ in range(3000)]
    share = draws.count("nice") / len(draws)
    assert 0.85 < share < 0.95  # 90 / 99 of the non-"bad" mass


def test_ngrams_have_one_to_five_words():
    cfg = _cfg(p_ng=1.0)
    rng = np.random.default_rng(2)
    sizes = set()
    for _ in range(1000):
        c = make_sample(WORDS, TAGS, POS, cfg, rng)
        assert 1 <= len(c.words) <= 5
        s, e = c.ngram
        assert c.words == WORDS[s:e]
        sizes.add(len(c.words))
    assert sizes == {1, 2, 3, 4, 5}


def test_ngram_rate_close_to_p_ng():
    cfg = _cfg(p_ng=0.25)
    rng = np.random.default_rng(3)
    hits = sum(make_sample(WORDS, TAGS, POS, cfg, rng).ngram is not None for _ in range(4000))
    assert abs(hits / 4000 - 0.25) < 0.03


def test_ngram_mask_option_masks_instead_of_cropping():
    cfg = _cfg(p_ng=1.0, ngram_mask=True)
    c = make_sample(WORDS, TAGS, POS, cfg, np.random.default_rng(4), mask_token="<mask>")
    s, e = c.ngram
    assert len(c.words) == len(WORDS)
    assert c.words[s:e] == ["<mask>"] * (e - s)
    assert set(c.rules[s:e]) == {"ngram-mask"}


def test_same_seed_same_output_and_different_seed_differs():
    cfg = AugmentConfig(n_iter=20)

    def texts(seed):
        return [c.text for c in augment_words(WORDS, TAGS, POS, cfg,
                                              np.random.default_rng(seed))]

    assert texts(7) == texts(7)
    assert texts(7) != texts(8)


def test_copies_are_unique_and_never_the_original():
    cfg = AugmentConfig(n_iter=50, p_mask=0.05, p_pos=0.05, p_ng=0.1)
    copies = augment_words(["so", "good"], ["RB", "JJ"], POS, cfg, np.random.default_rng(0))
    texts = [c.text for c in copies]
    assert len(texts) == len(set(texts))
    assert "so good" not in texts


def test_changes_report_rule_and_original():
    cfg = _cfg(p_mask=1.0)
    c = make_sample(["so", "good"], ["RB", "JJ"], POS, cfg, np.random.default_rng(0))
    assert c.changes() == [{"index": 0, "original": "so", "new": "[MASK]", "rule": "mask"},
                           {"index": 1, "original": "good", "new": "[MASK]", "rule": "mask"}]


def test_transfer_texts_keep_originals_first_and_drop_duplicates():
    corpus = TaggedCorpus([w for w, _ in TAGGED], [t for _, t in TAGGED], POS)
    originals = [" ".join(w) for w, _ in TAGGED]
    texts, source = build_transfer_texts(corpus, originals, AugmentConfig(n_iter=10), seed=0)
    assert texts[:4] == originals and source[:4] == [0, 1, 2, 3]
    assert len(texts) == len(set(texts)) > 4
    assert set(source) == {0, 1, 2, 3}


def test_zero_n_iter_gives_originals_only():
    corpus = TaggedCorpus([w for w, _ in TAGGED], [t for _, t in TAGGED], POS)
    originals = [" ".join(w) for w, _ in TAGGED]
    texts, _ = build_transfer_texts(corpus, originals, AugmentConfig(n_iter=0), seed=0)
    assert texts == originals


def test_real_spacy_tagging_and_preview():
    from kdstudio.augment import build_tagged_corpus, preview

    corpus = build_tagged_corpus(["the movie was good .", "a dull , long film"],
                                 AugmentConfig().spacy_model)
    assert corpus.words[0] == ["the", "movie", "was", "good", "."]
    assert corpus.tags[0][1] == "NN" and corpus.tags[0][3] == "JJ"
    tags, copies = preview("the film was great", corpus.pos, AugmentConfig(n_iter=5), seed=0)
    assert [w for w, _ in tags] == ["the", "film", "was", "great"]
    assert copies and all(c.text for c in copies)


def test_missing_spacy_model_has_a_clear_message():
    from kdstudio.augment import SpacyModelError, load_spacy

    with pytest.raises(SpacyModelError, match="spaCy model 'xx_no_such_model' is not installed"):
        load_spacy("xx_no_such_model")
