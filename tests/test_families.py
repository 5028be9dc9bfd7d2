import numpy as np
import torch

from kdstudio.config import RunConfig
from kdstudio.families import REGISTRY, teacher_token_states
from kdstudio.student import PAD, StaticClassifier, StudentVocab


class _Teacher:
    def __init__(self, path):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForSequenceClassification.from_pretrained(path).eval()


def test_static_table_starts_from_the_teachers_states_of_each_token(tiny_backbone):
    teacher = _Teacher(tiny_backbone)
    tok = teacher.tokenizer
    vocab = StudentVocab.build(tok, ["good movie", "bad film"], 16)
    table = teacher_token_states(teacher, vocab, batch_size=2)  # several batches
    assert table.shape == (len(vocab), teacher.model.config.hidden_size)
    assert table[PAD].abs().sum() == 0
    good = vocab.encode(tok, ["good"], 4)[0, 0]
    ids = torch.tensor([[tok.cls_token_id, tok.convert_tokens_to_ids("good"), tok.sep_token_id]])
    with torch.no_grad():
        want = teacher.model.base_model(input_ids=ids).last_hidden_state.mean(1)[0]
    assert torch.allclose(table[good], want, atol=1e-5)
    # A pair's row starts from the teacher's state of [CLS] first second [SEP].
    bad, film = vocab.encode(tok, ["bad film"], 4)[0, :2]
    pair = teacher_token_states(teacher, vocab, np.array([[bad, film]]))
    ids = torch.tensor([[tok.cls_token_id, *tok.convert_tokens_to_ids(["bad", "film"]),
                         tok.sep_token_id]])
    with torch.no_grad():
        want = teacher.model.base_model(input_ids=ids).last_hidden_state.mean(1)[0]
    assert torch.allclose(pair[0], want, atol=1e-5)
    rows = list(vocab.encode(tok, ["good movie", "bad film", "good movie"], 4))
    for k in (0, 1, 5):
        cfg = RunConfig().with_overrides({"static.embedding_dim": 8, "static.fc_size": 5,
                                          "static.bigrams": k})
        model = REGISTRY["static"].build(cfg, vocab, 2, teacher, 0, rows)
        assert isinstance(model, StaticClassifier)
        n = min(k, 2)  # the two pairs the rows hold; "good movie" comes first
        assert model.bigrams == n and model.fc.out_features == 5
        assert model.embedding.weight.shape == (len(vocab) + n, 8)
        assert model.embedding.weight.requires_grad  # the table trains with the rest
    good, movie = rows[0][:2]
    assert model.bigram_codes.tolist() == sorted([good * len(vocab) + movie,
                                                 bad * len(vocab) + film])
    assert model.table_rows(torch.tensor([[good, movie]]))[0, 2] >= len(vocab)


def test_each_family_names_its_variant_and_training_settings():
    cfg = RunConfig().with_overrides({"static.learning_rate": 0.01, "static.epochs": 7,
                                      "student.epochs": 2})
    st = REGISTRY["static"].train_config(cfg)
    assert (st.learning_rate, st.epochs, st.batch_size) == (0.01, 7, cfg.student.batch_size)
    big = REGISTRY["static"].train_config(cfg.with_overrides({"static.batch_size": 512}))
    assert (big.batch_size, big.epochs, cfg.student.batch_size) == (512, 7, 128)
    assert (st.keep, cfg.student.keep) == ("average", "last")
    off = RunConfig().with_overrides({"static.average_weights": False,
                                      "student.patience": 2, "student.keep": "best"})
    assert REGISTRY["static"].train_config(off).keep == "best"
    assert REGISTRY["bilstm"].train_config(cfg) is cfg.student


def test_tiny_transformer_keeps_the_teachers_last_layers_and_reads_student_ids(tiny_backbone):
    from kdstudio.student import TinyTransformerClassifier, load_student, save_student

    teacher = _Teacher(tiny_backbone)
    tok = teacher.tokenizer
    vocab = StudentVocab.build(tok, ["good movie", "bad film"], 16)
    cfg = RunConfig().with_overrides({"transformer.layers": 1})
    model = REGISTRY["transformer"].build(cfg, vocab, 2, teacher, 0, []).eval()
    assert isinstance(model, TinyTransformerClassifier)
    layers = model.model.bert.encoder.layer
    assert len(layers) == 1  # of the tiny teacher's 2: its last one
    assert torch.equal(layers[0].output.dense.weight,
                       teacher.model.bert.encoder.layer[1].output.dense.weight)
    # The table: the student's tokens, then a [CLS] row, both rows of the teacher's table.
    table = model.embedding.weight
    assert table.shape[0] == len(vocab) + 1 and model.cls_id == len(vocab)
    full = teacher.model.get_input_embeddings().weight
    assert torch.equal(table[-1], full[tok.cls_token_id])
    good = vocab.encode(tok, ["good"], 4)[0, 0]
    assert torch.equal(table[good], full[tok.convert_tokens_to_ids("good")])
    ids = torch.from_numpy(vocab.encode(tok, ["good movie", "bad"], 8))
    with torch.no_grad():
        out = model(ids)
        assert out.shape == (2, 2)
        # Right padding changes nothing: it is masked.
        padded = torch.cat([ids, torch.zeros_like(ids)], 1)
        assert torch.allclose(model(padded), out, atol=1e-5)
    assert REGISTRY["transformer"].max_rows(cfg) == cfg.transformer.max_rows
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        save_student(model, vocab, ["neg", "pos"], Path(d))
        loaded, _, meta = load_student(Path(d))
        assert meta["arch"]["family"] == "transformer"
        with torch.no_grad():
            assert torch.allclose(loaded(ids), out, atol=1e-6)


def test_the_families_on_teacher_tables_read_every_teacher_token_and_static_the_training_ones(
        tiny_backbone):
    teacher = _Teacher(tiny_backbone)
    tok = teacher.tokenizer
    cfg = RunConfig()
    run_vocab = StudentVocab.build(tok, ["good movie", "bad film"], 16)
    vocab = REGISTRY["transformer"].vocabulary(cfg, tok, run_vocab)
    assert REGISTRY["static"].vocabulary(cfg, tok, run_vocab) is run_vocab
    # The BiLSTM keeps every teacher token while its table starts from the teacher's (the
    # transfer set's first, with their ids); a random table has nothing to say about a token
    # training never uses.
    bilstm = REGISTRY["bilstm"].vocabulary(cfg, tok, run_vocab)
    assert sorted(bilstm.teacher_ids) == vocab.teacher_ids
    assert bilstm.teacher_ids[:len(run_vocab) - 2] == run_vocab.teacher_ids
    random_init = cfg.with_overrides({"student.embedding_init": "random"})
    assert REGISTRY["bilstm"].vocabulary(random_init, tok, run_vocab) is run_vocab
    special = set(tok.all_special_ids) - {tok.mask_token_id}
    assert len(vocab) == len(tok) - len(special) + 2
    # A word the training texts never use is unknown to the run's vocabulary, not to the
    # transformer's, whose row for it is the teacher's.
    unseen = "awful"
    assert run_vocab.encode(tok, [unseen], 4)[0, 0] == 1
    i = vocab.encode(tok, [unseen], 4)[0, 0]
    assert i > 1
    model = REGISTRY["transformer"].build(RunConfig(), vocab, 2, teacher, 0, [])
    full = teacher.model.get_input_embeddings().weight
    assert torch.equal(model.embedding.weight[i], full[tok.convert_tokens_to_ids(unseen)])
    # The run's ids carried over to the transformer's name the same teacher tokens.
    texts = ["good film", "bad movie", "awful"]
    to = run_vocab.ids_in(vocab)
    pairs = zip(run_vocab.encode_ragged(tok, texts, 8), vocab.encode_ragged(tok, texts, 8),
                strict=True)
    for a, b in pairs:
        known = a != 1
        assert np.array_equal(to[a][known], b[known])
    assert to[0] == 0 and to[1] == 1


def test_a_family_with_its_own_vocabulary_is_validated_as_compare_reads_it(tiny_backbone):
    """The tiny transformer (and the BiLSTM on the teacher's table) keeps every teacher token;
    its accuracy while training must not turn the validation words the transfer set never
    uses into unknowns (it read up to 1.6 points below Compare's figure for the same model on
    SST-2)."""
    from transformers import AutoTokenizer

    from kdstudio.families import family_rows
    from kdstudio.student import UNK
    from kdstudio.train import TrainSet

    tok = AutoTokenizer.from_pretrained(str(tiny_backbone))
    train, val = ["good movie", "bad movie"], ["good fine", "not bad"]
    vocab = StudentVocab.build(tok, train, 16)
    ids = vocab.encode_ragged(tok, train, 16)
    data = TrainSet(ids, np.array([1, 0]), np.zeros((2, 2), np.float32))
    val_ids = vocab.encode_ragged(tok, val, 16)
    assert (val_ids[0] == UNK).any()  # "fine" is unknown to the transfer set's vocabulary

    cfg = RunConfig().with_overrides({"student.max_length": 16})
    fvocab, fdata, fval = family_rows(REGISTRY["transformer"], cfg, vocab, tok, data, val_ids,
                                      val)
    whole = StudentVocab.whole(tok)
    for got, want in zip(fval, whole.encode_ragged(tok, val, 16), strict=True):
        np.testing.assert_array_equal(got, want)
    assert not any((r == UNK).any() for r in fval)
    for got, want in zip(fdata.ids, whole.encode_ragged(tok, train, 16), strict=True):
        np.testing.assert_array_equal(got, want)
    # The BiLSTM on the teacher's table reads "fine" too, through the teacher's row for it.
    bvocab, _, bval = family_rows(REGISTRY["bilstm"], cfg, vocab, tok, data, val_ids, val)
    assert not any((r == UNK).any() for r in bval)
    teacher = _Teacher(tiny_backbone)
    model = REGISTRY["bilstm"].build(cfg, bvocab, 2, teacher, 0, [])
    table = model.embedding.weight
    fine = int(bval[0][-1])
    rows = teacher.model.get_input_embeddings().weight  # 32 wide: no PCA below 200
    assert torch.equal(table[fine], rows[tok.convert_tokens_to_ids("fine")])
    # A family on the run's vocabulary gets its rows back untouched.
    assert family_rows(REGISTRY["static"], cfg, vocab, tok, data, val_ids, val) == (
        vocab, data, val_ids)
