import json

import numpy as np
import onnx
import pytest
from PIL import Image

from infer.tools.cli import main

from ...stream.clips import tiny_upscaler

pytestmark = pytest.mark.gpu


@pytest.fixture
def model_path(tmp_path):
    path = tmp_path / "tiny.onnx"
    onnx.save(tiny_upscaler(), str(path))
    return path


def test_run_writes_the_upscaled_image(model_path, tmp_path, capsys):
    src = tmp_path / "in.png"
    Image.fromarray((np.random.default_rng(0).random((45, 61, 3)) * 255).astype(np.uint8)).save(src)
    out = tmp_path / "out.png"
    assert main(["run", str(model_path), "--input", str(src), "--output", str(out)]) == 0
    assert Image.open(out).size == (122, 90)
    assert "61x45 -> 122x90" in capsys.readouterr().out


def test_check_prints_op_table_and_parity(model_path, capsys):
    assert main(["check", str(model_path), "--size", "37x29"]) == 0
    text = capsys.readouterr().out
    assert "Conv" in text and "DepthToSpace" in text
    assert "parity vs onnxruntime" in text and "OK" in text


def test_check_fails_on_unsupported_ops(tmp_path, capsys):
    from onnx import TensorProto, helper

    node = helper.make_node("NonMaxSuppression", ["x", "s"], ["y"], name="nms")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4, 4]) for n in "xs"],
        [helper.make_tensor_value_info("y", TensorProto.INT64, None)],
    )
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    assert main(["check", str(path)]) == 1
    text = capsys.readouterr().out
    assert "UNSUPPORTED" in text
    assert "does not load" in text and "NonMaxSuppression: nms" in text  # op and node


def test_check_prints_cost_per_1080p_frame_and_kernels(model_path, capsys):
    assert main(["check", str(model_path), "--size", "37x29", "--kernels", "rules"]) == 0
    text = capsys.readouterr().out
    assert "cost per 1080p frame (1920x1080 in, 3840x2160 out):" in text and "GFLOP" in text
    assert "kernels: " in text and "conv" in text.split("kernels: ")[1].splitlines()[0]


def test_check_fp16_file(tmp_path, capsys):
    """An fp16 file (float16 weights, input and output) is fed float16 for onnxruntime."""
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float16)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1], name="conv")],
        "half",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT16, None)],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    path = tmp_path / "half.onnx"
    onnx.save(model, str(path))
    args = ["check", str(path), "--size", "21x17", "--precision", "fp16", "--tolerance", "5e-3"]
    code = main(args)
    text = capsys.readouterr().out
    assert code == 0 and "parity vs onnxruntime" in text, text


def test_bench_reports_ratio_and_json(model_path, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert (
        main(["bench", str(model_path), "--size", "64x36", "--runs", "2", "--json", str(out)]) == 0
    )
    data = json.loads(out.read_text())
    assert data["framesmith"]["median_ms"] > 0 and data["onnxruntime_cpu"]["median_ms"] > 0
    assert data["ratio_ours_over_ort"] > 0
    assert "ratio (ours / onnxruntime)" in capsys.readouterr().out


def test_missing_model_is_a_clear_error(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.onnx"), "--output", str(tmp_path / "o.png")]) == 2
    assert "not found" in capsys.readouterr().err
