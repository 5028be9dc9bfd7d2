import numpy as np
import onnx
import pytest
import torch

from kdstudio.families import REGISTRY
from kdstudio.quantize import (
    check_quantized,
    dynamically_quantized,
    export_student,
    op_counts,
    quantize_int8,
    run_student_onnx,
    session,
)
from kdstudio.student import BiLSTMClassifier


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    m = BiLSTMClassifier(3000, 64, 32, 16, 3, dropout=0.0).eval()
    d = tmp_path_factory.mktemp("onnx")
    fp32 = export_student(m, d / "s.onnx")
    int8 = quantize_int8(fp32, d / "s.int8.onnx")
    return m, fp32, int8


def _ids(b, length, seed):
    rng = np.random.default_rng(seed)
    ids = rng.integers(2, 3000, (b, length))
    for i in range(b):  # ragged: right padding
        ids[i, rng.integers(1, length + 1):] = 0
    return ids


def test_fp32_onnx_matches_pytorch_with_dynamic_axes(exported):
    m, fp32, _ = exported
    sess = session(fp32)
    for b, length in ((1, 3), (7, 11), (32, 40)):
        ids = _ids(b, length, b)
        ids[-1, :] = 0  # an all-padding row: both take one step over padding
        with torch.no_grad():
            ref = m(torch.from_numpy(ids)).numpy()
        assert np.abs(run_student_onnx(sess, ids) - ref).max() <= 1e-4


def test_export_is_a_forward_and_a_reverse_lstm_over_sequence_lengths(exported):
    m, fp32, _ = exported
    import onnx

    lstms = [n for n in onnx.load(str(fp32)).graph.node if n.op_type == "LSTM"]
    dirs = [{a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}["direction"]
            for n in lstms]
    assert dirs == [b"forward", b"reverse"] and all(n.input[4] == "lens" for n in lstms)
    # Only the final states are used, not each direction's whole output sequence.
    assert not any(n.output[0] for n in lstms)


def test_padding_does_not_change_the_onnx_output(exported):
    m, fp32, _ = exported
    sess = session(fp32)
    ids = _ids(1, 6, 3)
    ids[0, 3:] = 0
    padded = np.concatenate([ids, np.zeros((1, 30), np.int64)], 1)
    assert np.abs(run_student_onnx(sess, ids) - run_student_onnx(sess, padded)).max() <= 1e-5


def test_int8_graph_is_really_quantized_and_smaller(exported):
    _, fp32, int8 = exported
    ops = check_quantized(int8)
    assert ops["DynamicQuantizeLSTM"] == 2 and ops.get("MatMulInteger", 0) >= 2
    assert "Gemm" not in op_counts(fp32)  # rewritten to MatMul so it can be quantized
    assert int8.stat().st_size < 0.35 * fp32.stat().st_size
    # Its activations are quantized as it runs (one scale per batch); fp32's are not.
    assert dynamically_quantized(int8) and not dynamically_quantized(fp32)


def test_int8_agrees_with_fp32(exported):
    _, fp32, int8 = exported
    ids = _ids(200, 20, 5)
    a = run_student_onnx(session(fp32), ids)
    b = run_student_onnx(session(int8), ids)
    # This random model gives its most common class to 88% of the inputs, so agreement has
    # to beat that share: an int8 graph that always answered one class would not.
    agree = (a.argmax(-1) == b.argmax(-1)).mean()
    majority = np.bincount(a.argmax(-1), minlength=3).max() / len(a)
    assert majority < 0.95 and agree >= 0.95 and agree > majority
    # int8 error against the logits' spread (about 0.3 here). Measured: max 0.003 with VNNI;
    # 0.030 (mean 0.004) on an AVX2-only CPU, whose u8s8 kernel saturates on this random
    # model's weights. A graph answering constant logits would err by about half the spread.
    err, spread = np.abs(a - b), a.max() - a.min()
    assert err.mean() < 0.03 * spread and err.max() < 0.15 * spread


def test_check_quantized_rejects_a_float_graph(exported):
    _, fp32, _ = exported
    with pytest.raises(RuntimeError, match="not fully quantized"):
        check_quantized(fp32)


@pytest.mark.parametrize("opset", [17, 18, 21])
def test_student_exports_at_every_supported_opset(tmp_path, opset):
    torch.manual_seed(0)
    m = BiLSTMClassifier(3000, 8, 6, 5, 2, dropout=0.0).eval()
    path = export_student(m, tmp_path / "s.onnx", opset=opset)
    ids = _ids(4, 9, opset)
    with torch.no_grad():
        ref = m(torch.from_numpy(ids)).numpy()
    assert np.abs(run_student_onnx(session(path), ids) - ref).max() <= 1e-4


@pytest.mark.parametrize("opset", [14, 17, 21, 23])
def test_a_table_with_narrow_rows_exports_at_every_supported_opset(tmp_path, opset):
    """The two-table read at the opsets `quantize.opset` allows, on the ids at its edges."""
    torch.manual_seed(0)
    m = BiLSTMClassifier(300, 16, 6, 5, 2, dropout=0.0, narrow=(100, 4)).eval()
    with torch.no_grad():
        m.embedding.weight[100:, 4:] = 0.0
    path = export_student(m, tmp_path / "s.onnx", opset=opset)
    ids = np.array([[1, 99, 100, 299, 0], [100, 0, 0, 0, 0], [299, 2, 101, 98, 7]])
    with torch.no_grad():
        ref = m(torch.from_numpy(ids)).numpy()
    assert np.abs(run_student_onnx(session(path), ids) - ref).max() <= 1e-4
    assert "embedding.narrow" in {i.name for i in onnx.load(str(path)).graph.initializer}


@pytest.mark.parametrize("bigrams,max_length", [(0, 64), (40, 64), (40, 3)])
def test_static_student_exports_and_quantizes_its_table(tmp_path, bigrams, max_length):
    """``max_length`` 3: the 12-token rows span several pooling windows, still exact."""
    from kdstudio.student import StaticClassifier, top_bigrams

    torch.manual_seed(0)
    m = StaticClassifier(3000, 64, 32, 3, dropout=0.0, bigrams=bigrams).eval()
    ids = _ids(16, 12, 3)
    ids[1:3, :4] = ids[0, :4] = [7, 8, 9, 10]  # pairs that repeat, so some rows are used
    with torch.no_grad():
        m.embedding.weight[0] = 0  # the padding row, as nn.Embedding(padding_idx=0) keeps it
        if bigrams:
            m.bigram_codes.copy_(torch.from_numpy(top_bigrams(list(ids), 3000, bigrams)))
            used = m.table_rows(torch.from_numpy(ids))[:, 12:]
            assert (used >= 3000).sum() >= 9  # each row's own pairs, the repeated ones too
            m.embedding.weight[3000:] += 2.0  # so that the pairs' rows win some maxima
    fp32 = export_student(m, tmp_path / "static.onnx", max_length=max_length)
    int8 = quantize_int8(fp32, tmp_path / "static.int8.onnx",
                         op_types=REGISTRY["static"].int8_op_types)
    ops = check_quantized(int8, REGISTRY["static"].int8_ops)
    # The table is int8, and the first layer multiplies the pooled int8 row without turning
    # it to float; the last layer (to the logits) stays a float MatMul.
    assert ops["MatMulInteger"] == 1 and ops["MatMul"] == 1 and "DequantizeLinear" not in ops
    assert "LSTM" not in op_counts(fp32)
    assert ops.get("LabelEncoder", 0) == (1 if bigrams else 0)
    assert not dynamically_quantized(int8)  # a stored int8 table: no batch-wide scale
    order = [n.op_type for n in onnx.load(str(int8)).graph.node]
    # The max of int8 rows: pooled, then turned to float.
    assert order.index("MaxPool") < order.index("ReduceMax") < order.index("MatMulInteger")
    with torch.no_grad():
        ref = m(torch.from_numpy(ids)).numpy()
    s32, s8 = session(fp32), session(int8)
    y32, y8 = run_student_onnx(s32, ids), run_student_onnx(s8, ids)
    assert np.abs(y32 - ref).max() < 1e-5
    assert np.abs(y8 - ref).max() < 0.05 * (ref.max() - ref.min())
    # Padding never wins the max, float or int8: a row alone gives what it gives padded.
    for sess, y in ((s32, y32), (s8, y8)):
        for i in (0, 5):
            alone = ids[i:i + 1, :max(1, int((ids[i] > 0).sum()))]
            assert np.allclose(run_student_onnx(sess, alone)[0], y[i], rtol=0, atol=1e-5)
    # The table is stored as int8: the file is about a quarter of fp32's.
    assert int8.stat().st_size < 0.3 * fp32.stat().st_size
    with pytest.raises(RuntimeError, match="no DynamicQuantizeLSTM"):
        check_quantized(int8)


@pytest.mark.parametrize("opset", [14, 17, 18, 21, 23])
def test_static_student_exports_at_every_supported_opset(tmp_path, opset):
    from kdstudio.student import StaticClassifier, top_bigrams

    ids = _ids(4, 9, 2)
    ids[:, :3] = [5, 6, 7]  # pairs that every row has, so the pairs' rows are used
    codes = top_bigrams(list(ids), 3000, 2)
    torch.manual_seed(0)
    m = StaticClassifier(3000, 16, 8, 2, dropout=0.0, bigrams=len(codes)).eval()
    with torch.no_grad():
        m.bigram_codes.copy_(torch.from_numpy(codes))
        m.embedding.weight[3000:] += 2.0  # so that the pairs' rows win some maxima
    fp32 = export_student(m, tmp_path / "s.onnx", opset=opset, max_length=4)
    int8 = quantize_int8(fp32, tmp_path / "s.int8.onnx",
                         op_types=REGISTRY["static"].int8_op_types)
    with torch.no_grad():
        ref = m(torch.from_numpy(ids)).numpy()
    assert np.abs(run_student_onnx(session(fp32), ids) - ref).max() <= 1e-5
    assert np.abs(run_student_onnx(session(int8), ids) - ref).max() < 0.05 * np.ptp(ref)


def test_tiny_transformer_exports_with_dynamic_batch_and_length(tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    from kdstudio.student import TinyTransformerClassifier

    torch.manual_seed(0)
    bert = BertForSequenceClassification(BertConfig(
        vocab_size=60, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64))
    m = TinyTransformerClassifier(bert).eval()
    fp32 = export_student(m, tmp_path / "t.onnx")  # traced on (2, 8)
    int8 = quantize_int8(fp32, tmp_path / "t.int8.onnx")
    check_quantized(int8, ("MatMulInteger",))
    # Other batch sizes and lengths than the trace's, and one past the position table's 64
    # (the model reads the first 63 tokens after its [CLS]).
    for b, length in ((1, 3), (5, 30), (2, 80)):
        ids = _ids(b, length, b) % 59
        ids[:, 0] = np.maximum(ids[:, 0], 2)
        with torch.no_grad():
            ref = m(torch.from_numpy(ids)).numpy()
        assert np.abs(run_student_onnx(session(fp32), ids) - ref).max() < 1e-4


def test_rows_zero_past_their_first_columns_are_stored_narrow_and_read_the_same(
        tmp_path, exported):
    """A BiLSTM's rows for tokens training never reads keep only their first columns; the
    graph stores them as a second, narrower table (what keeps its file small) and must give
    the logits the PyTorch model gives, for ids in both tables."""
    torch.manual_seed(0)
    m = BiLSTMClassifier(3000, 64, 32, 16, 3, dropout=0.0, narrow=(1000, 8)).eval()
    with torch.no_grad():
        m.embedding.weight[1000:, 8:] = 0.0
    fp32 = export_student(m, tmp_path / "n.onnx")
    shapes = {i.name: tuple(i.dims) for i in onnx.load(str(fp32)).graph.initializer}
    assert shapes["embedding.weight"] == (1000, 64) and shapes["embedding.narrow"] == (2000, 8)
    ids = _ids(32, 20, 7)
    ids[-1, :] = 0
    assert (ids >= 1000).any() and ((ids > 1) & (ids < 1000)).any()
    with torch.no_grad():
        ref = m(torch.from_numpy(ids)).numpy()
    assert np.abs(run_student_onnx(session(fp32), ids) - ref).max() <= 1e-4
    int8 = quantize_int8(fp32, tmp_path / "n.int8.onnx")
    assert op_counts(int8)["DequantizeLinear"] >= 2  # both tables in 8 bits
    # 2,000 rows of 8 bytes instead of 64: the file is smaller by about their difference.
    _, _, whole8 = exported
    assert int8.stat().st_size < whole8.stat().st_size - 0.9 * 2000 * 56
    a, b = run_student_onnx(session(fp32), ids), run_student_onnx(session(int8), ids)
    assert (a.argmax(-1) == b.argmax(-1)).mean() >= 0.9
    # Rows that are not zero past those columns (a table trained after all) keep one table,
    # and say so.
    with torch.no_grad():
        m.embedding.weight[1500, 20] = 1.0
    with pytest.warns(UserWarning, match="exported whole"):
        whole = export_student(m, tmp_path / "w.onnx")
    assert "embedding.narrow" not in {i.name for i in onnx.load(str(whole)).graph.initializer}
    assert np.abs(run_student_onnx(session(whole), ids) - m(torch.from_numpy(ids)).detach()
                  .numpy()).max() <= 1e-4
