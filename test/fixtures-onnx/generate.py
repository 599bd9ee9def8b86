"""
Tiny ONNX models with content this project's ONNX reader does not carry (so no model view can be
built, or the view loses what onnxruntime needs), for the fall-back tests. Run once, offline:
    python3 test/fixtures-onnx/generate.py
Needs the `onnx` package; the test suite itself never needs Python. Both models map
x float[1, 256] to y = 2 * x + 1 + w with w[i] = i / 256.
"""
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).parent
w = (np.arange(256) / 256).astype(np.float32)
x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 256])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 256])
two = numpy_helper.from_array(np.array(2.0, np.float32), "two")
one = numpy_helper.from_array(np.array(1.0, np.float32), "one")

# 1. A DOUBLE initializer (the reader handles float, int and float16 types only).
w64 = numpy_helper.from_array(w.astype(np.float64), "w64")
nodes = [
    helper.make_node("Mul", ["x", "two"], ["x2"]),
    helper.make_node("Add", ["x2", "one"], ["x21"]),
    helper.make_node("Cast", ["w64"], ["w32"], to=TensorProto.FLOAT),
    helper.make_node("Add", ["x21", "w32"], ["y"]),
]
graph = helper.make_graph(nodes, "double-weights", [x], [y], [two, one, w64])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
onnx.checker.check_model(model, full_check=True)
onnx.save(model, HERE / "double-weights.onnx")

# 2. A model-local function (ModelProto.functions), which the reader does not keep.
fn = helper.make_function(
    "local",
    "TwiceplusOne",
    ["a"],
    ["b"],
    [
        helper.make_node("Constant", [], ["c2"], value=helper.make_tensor("c2v", TensorProto.FLOAT, [], [2.0])),
        helper.make_node("Constant", [], ["c1"], value=helper.make_tensor("c1v", TensorProto.FLOAT, [], [1.0])),
        helper.make_node("Mul", ["a", "c2"], ["a2"]),
        helper.make_node("Add", ["a2", "c1"], ["b"]),
    ],
    [helper.make_opsetid("", 17)],
)
nodes = [helper.make_node("TwiceplusOne", ["x"], ["x21"], domain="local"), helper.make_node("Add", ["x21", "w"], ["y"])]
graph = helper.make_graph(nodes, "local-function", [x], [y], [numpy_helper.from_array(w, "w")])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local", 1)], functions=[fn], ir_version=8)
onnx.checker.check_model(model, full_check=True)
onnx.save(model, HERE / "local-function.onnx")
