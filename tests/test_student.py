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
)


def test_padding_does_not_change_the_output():
    torch.manual_seed(0)
    m = BiLSTMClassifier(50, 8, 6, 5, 3, dropout=0.0).eval()
    short = torch.tensor([[5, 6, 7]])
    padded = torch.tensor([[5, 6, 7, 0, 0, 0], [9, 9, 9, 9, 9, 9]])
    with torch.no_grad():
        a, b = m(short), m(padded)
    assert torch.allclose(a[0], b[0], atol=1e-6)


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
    assert np.array_equal(v2._lut, vocab._lut)


def test_a_student_saved_with_a_removed_pooling_is_refused(tmp_path):
    import json

    m = BiLSTMClassifier(20, 4, 3, 5, 2, dropout=0.0).eval()
    save_student(m, StudentVocab([5, 6, 7], 30, 1), ["neg", "pos"], tmp_path)
    assert load_student(tmp_path)[0].fc.in_features == 6  # [h_fwd; h_bwd]
    meta = json.loads((tmp_path / "student.json").read_text())
    meta["arch"]["pooling"] = "max"
    (tmp_path / "student.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="pools its states by 'max'.*train it again"):
        load_student(tmp_path)


def test_static_student_takes_each_dimensions_max_over_the_tokens_and_ignores_padding():
    from kdstudio.student import StaticClassifier

    torch.manual_seed(0)
    m = StaticClassifier(50, 8, 6, 2, dropout=0.0).eval()
    with torch.no_grad():
        m.embedding.weight[0] = 0  # the padding row, as nn.Embedding(padding_idx=0) keeps it
        m.embedding.weight[5:8] = -torch.rand(3, 8) - 1  # all below the padding row's zeros
        a = m(torch.tensor([[5, 6, 7]]))
        b = m(torch.tensor([[5, 6, 7, 0, 0], [9, 9, 9, 9, 9]]))
        swapped = m(torch.tensor([[7, 5, 6]]))
        repeated = m(torch.tensor([[5, 6, 7, 5, 6, 7]]))
        other = m(torch.tensor([[9, 9, 9]]))
        # What the head reads: each dimension's largest value among the tokens.
        expected = m.out(torch.relu(m.fc(m.embedding.weight[5:8].amax(0))))
    # Padding's zero row would win every dimension here if it were not left out.
    assert torch.allclose(a[0], b[0], atol=1e-6)
    assert torch.allclose(a[0], expected, atol=1e-6)
    # Order and repetition do not matter, the tokens do.
    assert torch.allclose(a, swapped, atol=1e-6) and torch.allclose(a, repeated, atol=1e-6)
    assert not torch.allclose(a, other)


def test_static_student_adds_a_row_for_each_listed_pair_of_neighbouring_tokens():
    from kdstudio.student import StaticClassifier

    torch.manual_seed(0)
    m = StaticClassifier(50, 8, 6, 2, dropout=0.0, bigrams=2).eval()
    with torch.no_grad():
        m.bigram_codes.copy_(torch.tensor([5 * 50 + 6, 9 * 50 + 9]))
        m.embedding.weight[0] = 0
        m.embedding.weight[1:] = -torch.rand(51, 8) - 1
        m.embedding.weight[50, 3] = 5.0  # the pair (5, 6) alone reaches this value
    # Tokens, then one row per neighbouring pair: (5, 6) → row 50; (6, 7), (7, pad) → pad.
    assert m.table_rows(torch.tensor([[5, 6, 7, 0]])).tolist() == [[5, 6, 7, 0, 50, 0, 0]]
    assert m.table_rows(torch.tensor([[9, 9, 9]])).tolist() == [[9, 9, 9, 51, 51]]
    assert m.table_rows(torch.tensor([[9]])).tolist() == [[9]]
    with torch.no_grad():
        a = m(torch.tensor([[5, 6, 7]]))
        padded = m(torch.tensor([[5, 6, 7, 0, 0], [9, 9, 9, 9, 9]]))
        swapped = m(torch.tensor([[6, 5, 7]]))
        expected = m.out(torch.relu(m.fc(m.embedding.weight[[5, 6, 7, 50]].amax(0))))
    assert torch.allclose(a[0], padded[0], atol=1e-6)
    assert torch.allclose(a[0], expected, atol=1e-6)
    assert not torch.allclose(a, swapped)  # the same tokens without the pair


def test_top_bigrams_counts_pairs_of_known_tokens():
    from kdstudio.student import top_bigrams

    rows = [np.array([2, 3, 4]), np.array([2, 3]), np.array([1, 2, 3, 1]), np.array([4, 2]),
            np.array([3, 4]), np.array([5])]
    # (2, 3) three times, (3, 4) twice, (4, 2) once; pairs with unknown (1) never count.
    assert top_bigrams(rows, 10, 2).tolist() == [23, 34]
    assert top_bigrams(rows, 10, 9).tolist() == [23, 34, 42]
    assert top_bigrams(rows, 10, 0).tolist() == []


def test_a_static_student_saved_with_mean_pooling_is_refused(tmp_path):
    import json

    from kdstudio.student import StaticClassifier

    save_student(StaticClassifier(20, 4, 3, 2).eval(), StudentVocab([5, 6, 7], 30, 1),
                 ["neg", "pos"], tmp_path)
    assert isinstance(load_student(tmp_path)[0], StaticClassifier)
    meta = json.loads((tmp_path / "student.json").read_text())
    del meta["arch"]["pooling"]  # as the versions that averaged wrote it
    (tmp_path / "student.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="averages its tokens.*train it again"):
        load_student(tmp_path)


def test_students_of_each_family_round_trip(tmp_path):
    from kdstudio.student import StaticClassifier

    vocab = StudentVocab([10, 11, 12], 30, 1)
    paired = StaticClassifier(len(vocab), 8, 6, 2, bigrams=1)
    paired.bigram_codes.fill_(2 * len(vocab) + 3)
    for k, model in enumerate((StaticClassifier(len(vocab), 8, 6, 2), paired,
                               BiLSTMClassifier(len(vocab), 8, 4, 6, 2))):
        torch.manual_seed(1)
        d = tmp_path / str(k)
        save_student(model.eval(), vocab, ["neg", "pos"], d)
        loaded, _, meta = load_student(d)
        assert type(loaded) is type(model)
        ids = torch.tensor([[2, 3, 4, 0]])
        with torch.no_grad():
            assert torch.equal(loaded(ids), model(ids))


def test_pca_fitted_on_some_rows_projects_the_others_without_moving_them():
    """Rows no training text uses (BERT's [unused] tokens) must not bend the basis the
    used rows are projected onto."""
    from kdstudio.student import pca_project

    g = torch.Generator().manual_seed(0)
    used = torch.randn(40, 16, generator=g) * torch.linspace(3, 0.1, 16)
    junk = torch.randn(30, 16, generator=g) * 5
    rows = torch.cat([torch.zeros(1, 16), used, junk])
    fit = torch.arange(1, 41)
    alone = pca_project(torch.cat([torch.zeros(1, 16), used]), 4)
    both = pca_project(rows, 4, fit)
    assert torch.allclose(both[:41].abs(), alone.abs(), atol=1e-4)  # up to each axis's sign
    assert not torch.allclose(pca_project(rows, 4)[:41].abs(), alone.abs(), atol=1e-2)
    assert both[41:].abs().sum() > 0  # the others still get rows, through the same map


def test_rows_training_never_reads_keep_their_first_components(tiny_backbone, tmp_path,
                                                               monkeypatch):
    """The BiLSTM's vocabulary keeps the transfer set's ids and adds every other teacher
    token after them; those rows are the teacher's through the same PCA, cut to their first
    NARROW_DIM columns (what the export stores narrow), and still read by the model."""
    from transformers import AutoModel, AutoTokenizer

    import kdstudio.student as S

    monkeypatch.setattr(S, "NARROW_DIM", 3)
    tok = AutoTokenizer.from_pretrained(tiny_backbone)
    teacher = AutoModel.from_pretrained(tiny_backbone)
    texts = ["good movie", "bad film", "a dull , boring plot"]
    run_vocab = StudentVocab.build(tok, texts, 16)
    vocab = run_vocab.extended(tok)
    first = len(run_vocab)
    assert vocab.teacher_ids[:first - 2] == run_vocab.teacher_ids
    assert sorted(vocab.teacher_ids) == StudentVocab.whole(tok).teacher_ids
    ids = run_vocab.encode_ragged(tok, texts, 16)
    cfg = StudentConfig(hidden_size=4, fc_size=4, embedding_dim=8)
    s = build_student(cfg, vocab, 2, teacher, ids=ids)
    table = s.embedding.weight
    assert s.narrow == (first, 3)
    assert table[first:, 3:].abs().sum() == 0 and (table[first:, :3].abs().sum(1) > 0).all()
    assert (table[2:first, 3:].abs().sum(1) > 0).all()  # the transfer set's rows are whole
    fit = torch.from_numpy(np.union1d(np.concatenate(ids), [1]))  # [MASK] is not in `texts`
    want = S.teacher_embedding_rows(teacher, vocab, 8, fit)
    assert torch.allclose(table[:first], want[:first])
    assert torch.allclose(table[first:, :3], want[first:, :3])
    fine = vocab.encode(tok, ["fine"], 4)[0, 0]
    assert fine >= first  # a word training never read, with a row of its own
    save_student(s, vocab, ["neg", "pos"], tmp_path)
    loaded, _, meta = load_student(tmp_path)
    assert loaded.narrow == (first, 3) and meta["arch"]["narrow"] == [first, 3]
    x = torch.tensor([[2, fine, 3]])
    with torch.no_grad():
        assert torch.equal(loaded(x), s.eval()(x))
    # Its graph stores the narrow rows apart and reads both parts as the model does.
    from kdstudio.quantize import export_student, run_student_onnx, session

    path = export_student(s.eval(), tmp_path / "s.onnx")
    edges = np.array([[2, fine, first, len(vocab) - 1, first - 1]])
    with torch.no_grad():
        ref = s(torch.from_numpy(edges)).numpy()
    assert np.abs(run_student_onnx(session(path), edges) - ref).max() <= 1e-4
    # Without PCA the columns are not components, and every row stays whole.
    assert build_student(StudentConfig(hidden_size=4, fc_size=4, embedding_dim=None), vocab,
                         2, teacher, ids=ids).narrow is None
