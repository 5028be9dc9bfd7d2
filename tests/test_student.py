import numpy as np
import pytest
import torch

from kdstudio.config import StudentConfig
from kdstudio.student import (
    BiLSTMClassifier,
    StudentVocab,
    build_student,
    load_student,
    num_parameters,
    save_student,
    teacher_context_rows,
)


def test_padding_does_not_change_the_output():
    torch.manual_seed(0)
    m = BiLSTMClassifier(50, 8, 6, 5, 3, dropout=0.0).eval()
    short = torch.tensor([[5, 6, 7]])
    padded = torch.tensor([[5, 6, 7, 0, 0, 0], [9, 9, 9, 9, 9, 9]])
    with torch.no_grad():
        a, b = m(short), m(padded)
    assert torch.allclose(a[0], b[0], atol=1e-6)


@pytest.mark.parametrize("pooling", ["max", "last_max"])
def test_max_pooling_ignores_padding_and_widens_the_features(pooling):
    torch.manual_seed(0)
    m = BiLSTMClassifier(50, 8, 6, 5, 3, dropout=0.0, pooling=pooling).eval()
    assert m.fc.in_features == (24 if pooling == "last_max" else 12)
    short = torch.tensor([[5, 6, 7]])
    padded = torch.tensor([[5, 6, 7, 0, 0, 0, 0], [9, 9, 9, 9, 9, 9, 9]])
    with torch.no_grad():
        assert torch.allclose(m(short)[0], m(padded)[0], atol=1e-6)
        assert torch.isfinite(m(torch.zeros((2, 4), dtype=torch.long))).all()  # all padding


def test_unknown_pooling_is_refused():
    with pytest.raises(ValueError, match="pooling must be one of"):
        BiLSTMClassifier(50, 8, 6, 5, 3, pooling="mean")
    with pytest.raises(ValueError, match="pooling"):
        StudentConfig(pooling="mean")


def test_backward_direction_sees_the_sentence_reversed():
    torch.manual_seed(0)
    m = BiLSTMClassifier(50, 8, 6, 5, 2, dropout=0.0).eval()
    with torch.no_grad():
        assert not torch.allclose(m(torch.tensor([[5, 6, 7]])), m(torch.tensor([[7, 6, 5]])))


def test_parameter_count_of_paper_sizes():
    m = BiLSTMClassifier(10_000, 300, 150, 200, 2)
    lstm = 2 * 4 * 150 * (300 + 150 + 2)  # two directions, 4 gates, both biases
    expected = 10_000 * 300 + lstm + (300 * 200 + 200) + (200 * 2 + 2)
    assert num_parameters(m) == expected


def test_vocab_maps_teacher_ids_and_unknowns(tiny_backbone):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_backbone)
    vocab = StudentVocab.build(tok, ["good movie", "bad film"], 16)
    ids = vocab.encode(tok, ["good [MASK] film", "dull", ""], 16)
    assert ids.shape[0] == 3
    assert (ids[0] > 1).all()  # good, [MASK], film are known
    assert ids[1, 0] == 1  # "dull" is not in the vocabulary built above → UNK
    assert ids[2, 0] == 1 and (ids[2, 1:] == 0).all()  # empty text → one UNK step


def test_teacher_embedding_init_and_projection(tiny_backbone):
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_backbone)
    teacher = AutoModel.from_pretrained(tiny_backbone)
    vocab = StudentVocab.build(tok, ["good movie", "bad film"], 16)
    s = build_student(StudentConfig(hidden_size=4, fc_size=4), vocab, 2, teacher)
    table = teacher.get_input_embeddings().weight
    good = tok.convert_tokens_to_ids("good")
    row = vocab.encode(tok, ["good"], 4)[0, 0]
    assert torch.allclose(s.embedding.weight[row], table[good])
    assert s.embedding.weight[0].abs().sum() == 0  # padding row
    small = build_student(StudentConfig(hidden_size=4, fc_size=4, embedding_dim=8), vocab, 2,
                          teacher)
    assert small.embedding.weight.shape == (len(vocab), 8)
    rnd = build_student(StudentConfig(hidden_size=4, fc_size=4, embedding_init="random",
                                      embedding_dim=12), vocab, 2)
    assert rnd.embedding.weight.shape == (len(vocab), 12)


def test_teacher_embeddings_are_frozen_unless_asked_and_random_ones_train(tiny_backbone):
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_backbone)
    teacher = AutoModel.from_pretrained(tiny_backbone)
    vocab = StudentVocab.build(tok, ["good movie", "bad film"], 16)

    def trains(**kw) -> bool:
        s = build_student(StudentConfig(hidden_size=4, fc_size=4, **kw), vocab, 2, teacher)
        return s.embedding.weight.requires_grad

    assert not trains() and not trains(embedding_dim=8)
    assert trains(freeze_embeddings=False)
    assert trains(embedding_init="random")
    assert not trains(embedding_init="random", freeze_embeddings=True)
    assert StudentConfig().embeddings_frozen
    assert not StudentConfig(embedding_init="random").embeddings_frozen


def _mean_state(teacher, tok, texts, word):
    """The last layer's hidden state of ``word``, averaged over its uses in ``texts``."""
    wid = tok.convert_tokens_to_ids(word)
    states = []
    for t in texts:
        enc = tok(t, return_tensors="pt")
        with torch.no_grad():
            h = teacher(**enc, output_hidden_states=True).hidden_states[-1][0]
        states += list(h[enc["input_ids"][0] == wid])
    return torch.stack(states).mean(0)


def test_teacher_context_rows_average_each_tokens_hidden_states(tiny_backbone):
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_backbone)
    teacher = AutoModel.from_pretrained(tiny_backbone).eval()
    texts = ["good movie", "bad movie [MASK]", "good film"]
    vocab = StudentVocab.build(tok, texts + ["dull"], 16)
    rows = teacher_context_rows(teacher, tok, texts, vocab, layer=-1, batch_size=2)
    assert rows.shape == (len(vocab), 32) and rows[0].abs().sum() == 0

    def row(word):
        return rows[vocab.encode(tok, [word], 4)[0, 0]]

    # The table is centred and rescaled as a whole, so the difference of two rows is the
    # difference of the two tokens' mean states, times one scale shared by all rows.
    want = {w: _mean_state(teacher, tok, texts, w) for w in ("movie", "good", "film")}
    d1, w1 = row("movie") - row("good"), want["movie"] - want["good"]
    d2, w2 = row("film") - row("good"), want["film"] - want["good"]
    scale = d1.norm() / w1.norm()
    assert torch.allclose(d1, scale * w1, atol=1e-4)
    assert torch.allclose(d2, scale * w2, atol=1e-4)
    # A token the texts never use keeps its input-embedding row.
    table = teacher.get_input_embeddings().weight
    assert torch.allclose(row("dull"), table[tok.convert_tokens_to_ids("dull")])
    # The layer must exist, and the student takes the rows (projected to its width).
    with pytest.raises(ValueError, match="context_layer 5 is out of range"):
        teacher_context_rows(teacher, tok, texts, vocab, layer=5)
    s = build_student(StudentConfig(hidden_size=4, fc_size=4, embedding_init="teacher-context",
                                    embedding_dim=None), vocab, 2, context_rows=rows)
    assert torch.allclose(s.embedding.weight, rows)
    with pytest.raises(ValueError, match="needs the teacher's context rows"):
        build_student(StudentConfig(embedding_init="teacher-context"), vocab, 2, teacher)


def test_save_and_load_round_trip(tmp_path):
    torch.manual_seed(0)
    m = BiLSTMClassifier(20, 4, 3, 5, 2, dropout=0.0).eval()
    vocab = StudentVocab([5, 6, 7], 30, 1)
    save_student(m, vocab, ["neg", "pos"], tmp_path, {"variant": "x"})
    m2, v2, meta = load_student(tmp_path)
    x = torch.tensor([[2, 3, 4]])
    with torch.no_grad():
        assert torch.equal(m(x), m2(x))
    assert v2.teacher_ids == [5, 6, 7] and meta["arch"]["label_names"] == ["neg", "pos"]
    assert meta["arch"]["pooling"] == "last" and m2.pooling == "last"
    assert np.array_equal(v2._lut, vocab._lut)


def test_students_saved_before_pooling_existed_load_as_last(tmp_path):
    import json

    torch.manual_seed(0)
    m = BiLSTMClassifier(20, 4, 3, 5, 2, dropout=0.0, pooling="last").eval()
    save_student(m, StudentVocab([5, 6, 7], 30, 1), ["neg", "pos"], tmp_path)
    meta = json.loads((tmp_path / "student.json").read_text())
    del meta["arch"]["pooling"]
    (tmp_path / "student.json").write_text(json.dumps(meta))
    m2, _, _ = load_student(tmp_path)
    assert m2.pooling == "last"
