"""Benchmarks, plots, viz and intermediates: each command writes its JSON / PNGs on tiny inputs.

Timings are not asserted (they are measured, and only printed); what is checked is that every
command runs end to end, its JSON has the documented shape, and its PNGs are real images.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

import infer
from infer.tools import plots
from infer.tools.benchmark import dispatch_bytes, parse_size, stats
from infer.tools.cli import main

pytestmark = pytest.mark.gpu

SIZE = "64x36"


def tiny_upscaler(path: Path) -> Path:
    """Conv3x3+Relu -> Conv3x3 to 12 channels -> DepthToSpace(2), plus a nearest-upsampled
    base: the shape of the bundled upscalers, at a few kFLOP per pixel."""
    rng = np.random.default_rng(0)
    inits = []

    def const(name: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(arr, np.float32), name))
        return name

    conv = {"pads": [1, 1, 1, 1], "kernel_shape": [3, 3]}
    nodes = [
        helper.make_node(
            "Conv",
            ["x", const("w1", rng.normal(0, 0.3, (8, 3, 3, 3))), const("b1", rng.random(8) * 0.1)],
            ["c1"],
            **conv,
        ),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node(
            "Conv",
            ["r1", const("w2", rng.normal(0, 0.2, (12, 8, 3, 3))), const("b2", np.zeros(12))],
            ["c2"],
            **conv,
        ),
        helper.make_node("DepthToSpace", ["c2"], ["d"], blocksize=2, mode="CRD"),
        helper.make_node("Resize", ["x", "", const("s", [1, 1, 2, 2])], ["up"], mode="nearest"),
        helper.make_node("Add", ["d", "up"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_upscaler",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, "oh", "ow"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    return tiny_upscaler(tmp_path_factory.mktemp("models") / "tiny.onnx")


def assert_png(path: Path, min_size: int = 100) -> None:
    assert path.is_file() and path.stat().st_size > 0, path
    with Image.open(path) as img:
        img.verify()
    with Image.open(path) as img:
        assert img.format == "PNG"
        assert min(img.size) >= min_size, img.size
        arr = np.asarray(img.convert("RGB"), np.float32)
    assert arr.std() > 1.0, f"{path} is a blank image"


def test_bench_default_output_unchanged(model_path, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", str(model_path), "--size", SIZE, "--runs", "2", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "framesmith      median" in text and "onnxruntime CPU median" in text
    result = json.loads(out.read_text())
    assert result["input_shape"] == [1, 3, 36, 64]
    assert {"median_ms", "p95_ms", "runs"} <= set(result["framesmith"])
    assert result["ratio_ours_over_ort"] > 0


def test_bench_matrix_json_plot_and_report(model_path, tmp_path, capsys):
    out, report = tmp_path / "engine.json", tmp_path / "report.md"
    argv = ["bench", "--models", str(model_path), "--sizes", f"{SIZE},48x32"]
    argv += ["--precisions", "fp32,fp16", "--runs", "2", "--json", str(out), "--plot"]
    assert main([*argv, "--report", str(report)]) == 0
    print(capsys.readouterr().out)
    result = json.loads(out.read_text())
    assert result["kind"] == "engine"
    assert "CPUExecutionProvider" in result["providers"]
    rows = result["rows"]
    assert [(r["size"], r["precision"]) for r in rows] == [
        (SIZE, "fp32"),
        (SIZE, "fp16"),
        ("48x32", "fp32"),
        ("48x32", "fp16"),
    ]
    for r in rows:
        if "skipped" in r:  # fp16 not implemented on this engine/device: recorded, not fatal
            assert r["precision"] == "fp16" and r["skipped"]
            continue
        ours = r["framesmith"]
        assert ours["runs"] == 2 and ours["median_ms"] > 0 and ours["gflops"] > 0
        ref = r["references"]["ort_cpu"]
        assert r["ratios"]["ort_cpu"] == pytest.approx(ours["median_ms"] / ref["median_ms"])
    assert_png(tmp_path / "engine.engine.png")
    page = report.read_text()
    assert "![Engine vs onnxruntime](engine.engine.png)" in page
    assert "| model | size | precision |" in page


def test_bench_layers_profile_and_roofline(model_path, tmp_path, capsys):
    out = tmp_path / "layers.json"
    argv = ["bench", str(model_path), "--layers", "--size", SIZE, "--repeats", "2"]
    assert main([*argv, "--json", str(out), "--plot"]) == 0
    print(capsys.readouterr().out)
    result = json.loads(out.read_text())
    assert result["kind"] == "layers"
    layers = result["layers"]
    ms = [r["ms"] for r in layers]
    assert ms == sorted(ms, reverse=True), "slowest first"
    assert all(r["bytes"] > 0 for r in layers)
    assert {r["kernel"] for r in layers} >= {"conv2d.wgsl"}
    assert sum(r["flops"] for r in layers) / 1e9 == pytest.approx(result["gflop"])
    conv = next(r for r in layers if r["flops"] > 0)
    assert conv["intensity"] == pytest.approx(conv["flops"] / conv["bytes"])
    ceil = result["ceilings"]
    assert ceil["gflops"] > 0 and ceil["gbps"] > 0
    assert_png(tmp_path / "layers.layers.png")
    assert_png(tmp_path / "layers.roofline.png")


def test_dispatch_bytes_counts_every_binding(model_path):
    model = infer.load(model_path)
    program = model.program({"x": (1, 3, 36, 64)})
    add = next(d for d in program.dispatches if d.template == "binary_same.wgsl")
    # Add reads two 1x3x72x128 tensors and writes one: channels padded to 4, fp32
    assert dispatch_bytes(program, add) >= 3 * 72 * 128 * 4 * 4


def test_plot_command_and_unknown_kind(model_path, tmp_path, capsys):
    result = {
        "kind": "engine",
        "device": "test",
        "runs": 2,
        "providers": ["CPUExecutionProvider"],
        "rows": [
            {
                "model": "m",
                "size": "360p",
                "precision": "fp32",
                "gflop": 1.0,
                "framesmith": stats([0.010, 0.012], 1.0),
                "references": {"ort_cpu": stats([0.020, 0.021], 1.0)},
                "ratios": {"ort_cpu": 0.5},
            },
            {"model": "m", "size": "360p", "precision": "fp16", "skipped": "no shader-f16"},
        ],
    }
    src = tmp_path / "e.json"
    src.write_text(json.dumps(result))
    assert main(["plot", str(src), "--report", str(tmp_path / "r.md")]) == 0
    assert_png(tmp_path / "e.engine.png")
    assert "skipped: no shader-f16" in (tmp_path / "r.md").read_text()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"kind": "soak", "frames": []}))
    assert main(["plot", str(bad)]) == 2
    assert "stream plot" in capsys.readouterr().err


def test_parse_size():
    assert parse_size("720p") == (1280, 720)
    assert parse_size("64x36") == (64, 36)
    with pytest.raises(ValueError):
        parse_size("big")


# ---- intermediates and viz --------------------------------------------------------------


def test_intermediates_are_the_fused_programs_tensors(model_path):
    model = infer.load(model_path)
    x = np.random.default_rng(1).random((1, 3, 11, 17), dtype=np.float32)
    got = model.intermediates(x)
    names = list(got)
    # Relu fused into the first Conv: its pre-activation tensor c1 no longer exists
    assert "c1" not in names and "r1" in names
    assert names[-1] == "y"
    np.testing.assert_array_equal(got["y"], model.run(x))
    assert got["r1"].shape == (1, 8, 11, 17) and got["r1"].min() >= 0.0
    np.testing.assert_allclose(got["up"], x.repeat(2, axis=2).repeat(2, axis=3), rtol=0, atol=0)
    np.testing.assert_allclose(got["y"], got["d"] + got["up"], rtol=1e-6, atol=1e-6)
    # a subset, in the order asked; the values do not depend on what else is kept
    sub = model.intermediates(x, ["up", "r1"])
    assert list(sub) == ["up", "r1"]
    np.testing.assert_array_equal(sub["r1"], got["r1"])
    with pytest.raises(infer.ModelError, match="c1"):
        model.intermediates(x, ["c1"])
    np.testing.assert_array_equal(model.run(x), got["y"])  # run's cached program unaffected


def test_viz_draws_graph_and_activations(model_path, tmp_path, capsys):
    from infer.tools.images import test_frame, write_image

    img = tmp_path / "frame.png"
    write_image(img, test_frame(48, 32))
    out = tmp_path / "viz"
    assert main(["viz", str(model_path), "--input", str(img), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "1 with a fused activation" in text
    assert_png(out / "tiny.graph.png")
    assert_png(out / "tiny.activations.png")
    # without an image: the graph alone, at --size
    out2 = tmp_path / "viz2"
    assert main(["viz", str(model_path), "--size", SIZE, "--out", str(out2)]) == 0
    assert_png(out2 / "tiny.graph.png")
    assert not (out2 / "tiny.activations.png").exists()


def test_graph_levels_and_fused_label(model_path):
    model = infer.load(model_path)
    program = model.program({"x": (1, 3, 8, 8)})
    levels = plots.graph_levels(program.graph)
    by_op = {n.op_type: levels[n.name] for n in program.graph.nodes}
    assert by_op["Conv"] >= 1 and by_op["Resize"] == 1 and by_op["Add"] == max(levels.values())
    first = program.graph.nodes[0]
    text, fused = plots._node_text(first, program.values)
    assert fused and "+ Relu" in text


def test_ceilings_quick():
    from infer.tools import ceilings

    c = ceilings.measure(quick=True)
    assert c["kind"] == "ceilings" and c["gflops"] > 0 and c["gbps"] > 0
