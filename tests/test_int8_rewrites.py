import numpy as np
import onnx


def _dequantize_then_matmul(w: np.ndarray, second_reader: bool = False) -> onnx.ModelProto:
    """uint8 (B, K) → DequantizeLinear (scale 0.05, zero 120) → MatMul by ``w`` → ``y``."""
    from onnx import TensorProto, helper, numpy_helper

    n = helper.make_node
    nodes = [n("DequantizeLinear", ["q", "s", "z"], ["x"]), n("MatMul", ["x", "w"], ["y"])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", w.shape[1]])]
    if second_reader:
        nodes.append(n("Relu", ["x"], ["x_relu"]))
        outputs.append(helper.make_tensor_value_info("x_relu", TensorProto.FLOAT,
                                                     ["b", w.shape[0]]))
    inits = [numpy_helper.from_array(np.array(0.05, np.float32), "s"),
             numpy_helper.from_array(np.array(120, np.uint8), "z"),
             numpy_helper.from_array(w, "w")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "q", TensorProto.UINT8, ["b", w.shape[0]])], outputs, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def test_integer_matmul_after_dequantize_keeps_the_products(tmp_path):
    """The rewrite multiplies the 8-bit input as it is. Full-range inputs against the largest
    weights are where x86's u8s8 kernel saturates with 8-bit weights; 7 bits stay within
    half a weight step of the float product."""
    import onnxruntime as ort

    from kdstudio.int8_rewrites import integer_matmul_after_dequantize

    rng = np.random.default_rng(0)
    w = rng.normal(0, 1, (64, 16)).astype(np.float32)
    w[:, 3] *= 20  # one column far larger than the rest: its own scale
    q = np.concatenate([np.full((1, 64), 255, np.uint8),
                        rng.integers(0, 256, (7, 64)).astype(np.uint8)])
    m = _dequantize_then_matmul(w)
    assert integer_matmul_after_dequantize(m.graph)
    onnx.checker.check_model(m)
    assert [n.op_type for n in m.graph.node] == ["MatMulInteger", "Cast", "Mul"]
    y = ort.InferenceSession(m.SerializeToString()).run(None, {"q": q})[0]
    ref = ((q.astype(np.float32) - 120) * 0.05) @ w
    step = np.abs(w).max(0) / 63  # one 7-bit weight step, per column
    assert np.all(np.abs(y - ref) <= 0.5 * step * np.abs(q.astype(np.float32) - 120).sum(1,
                                                                        keepdims=True) * 0.05)
    # The scale the DequantizeLinear read is folded into the Mul's and goes with it.
    assert "s" not in {i.name for i in m.graph.initializer}
    # A float tensor read twice, or one the graph returns, stays float.
    shared = _dequantize_then_matmul(w, second_reader=True)
    assert not integer_matmul_after_dequantize(shared.graph)
    assert [n.op_type for n in shared.graph.node] == ["DequantizeLinear", "MatMul", "Relu"]
    returned = _dequantize_then_matmul(w)
    returned.graph.output.append(returned.graph.output[0])
    returned.graph.output[1].name = "x"
    assert not integer_matmul_after_dequantize(returned.graph)


def test_integer_matmul_after_dequantize_rewrites_every_pair():
    """Two DequantizeLinear → MatMul pairs in one graph: both become integer products."""
    from onnx import TensorProto, helper, numpy_helper

    from kdstudio.int8_rewrites import integer_matmul_after_dequantize

    m = _dequantize_then_matmul(np.eye(4, dtype=np.float32))
    g = m.graph
    g.node.extend([helper.make_node("DequantizeLinear", ["q", "s", "z"], ["x2"]),
                   helper.make_node("MatMul", ["x2", "w2"], ["y2"])])
    g.initializer.append(numpy_helper.from_array(2 * np.eye(4, dtype=np.float32), "w2"))
    g.output.append(helper.make_tensor_value_info("y2", TensorProto.FLOAT, ["b", 4]))
    assert integer_matmul_after_dequantize(g)
    onnx.checker.check_model(m)
    assert [n.op_type for n in g.node].count("MatMulInteger") == 2
    assert "DequantizeLinear" not in [n.op_type for n in g.node]


def test_max_before_dequantize_moves_every_dequantize_past_its_pooling():
    """Two 8-bit inputs, each dequantized then max-pooled: both maxima are taken over the
    8-bit values, the logits unchanged; a pooled tensor the graph returns stays float."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from kdstudio.int8_rewrites import max_before_dequantize

    n = helper.make_node
    nodes, outputs = [], []
    for k in ("a", "b"):
        nodes += [n("DequantizeLinear", [f"q{k}", "s", "z"], [f"x{k}"]),
                  n("Transpose", [f"x{k}"], [f"t{k}"], perm=[0, 2, 1]),
                  n("ReduceMax", [f"t{k}"], [f"y{k}"], axes=[2], keepdims=0)]
        outputs.append(helper.make_tensor_value_info(f"y{k}", TensorProto.FLOAT, ["b", 3]))
    g = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info(f"q{k}", TensorProto.UINT8, ["b", "r", 3])
                     for k in ("a", "b")], outputs,
        [numpy_helper.from_array(np.array(0.5, np.float32), "s"),
         numpy_helper.from_array(np.array(7, np.uint8), "z")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    q = {k: np.random.default_rng(0).integers(0, 256, (2, 5, 3)).astype(np.uint8)
         for k in ("qa", "qb")}
    before = ort.InferenceSession(m.SerializeToString()).run(None, q)
    returned = onnx.ModelProto()
    returned.CopyFrom(m)
    assert max_before_dequantize(m.graph)
    onnx.checker.check_model(m)
    assert [x.op_type for x in m.graph.node] == ["Transpose", "ReduceMax", "DequantizeLinear"] * 2
    after = ort.InferenceSession(m.SerializeToString()).run(None, q)
    assert all(np.array_equal(x, y) for x, y in zip(before, after, strict=True))
    returned.graph.output.append(helper.make_tensor_value_info("ta", TensorProto.FLOAT,
                                                               ["b", 3, "r"]))
    assert max_before_dequantize(returned.graph)  # only the second chain moves
    assert [x.op_type for x in returned.graph.node][:3] == [
        "DequantizeLinear", "Transpose", "ReduceMax"]
