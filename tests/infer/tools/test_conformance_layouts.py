"""The conformance count (`python -m infer conformance`) and the layout comparison (`python -m
infer bench MODEL --layouts`) on small selections."""

import json

import onnx
import pytest

from infer.tools.cli import main
from infer.tools.conformance import run_conformance, summary

from ..test_layouts import token_block

pytestmark = pytest.mark.gpu


def test_conformance_counts_passes_and_refusals():
    result = run_conformance(r"^test_(relu|softmax_axis_0|bitshift_right_uint8)$")
    assert result["cases"] == 3
    assert result["counts"] == {"pass": 2, "wrong": 0, "unsupported": 1, "error": 0}
    refused = [r for r in result["rows"] if r["status"] == "unsupported"]
    assert refused[0]["op"] == "BitShift" and "BitShift" in refused[0]["detail"]
    assert summary(result).startswith("2 of 3 onnx node tests pass")


def test_conformance_command_writes_json(tmp_path, capsys):
    out = tmp_path / "conformance.json"
    assert main(["conformance", "--filter", r"^test_sqrt$", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["counts"]["pass"] == 1
    assert "1 of 1 onnx node tests pass" in capsys.readouterr().out


def test_layouts_bench_compares_row_major_with_images(tmp_path, capsys):
    path = tmp_path / "tokens.onnx"
    onnx.save(token_block(), str(path))
    out = tmp_path / "layouts.json"
    assert main(["bench", str(path), "--layouts", "--runs", "2", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["rows"]["row_major_tensors"] > 0 == result["image"]["row_major_tensors"]
    assert result["rows"]["dispatches"] < result["image"]["dispatches"]  # views, no copies
    assert result["ratio_image_over_rows"] > 0
    assert "ratio (image / rows)" in capsys.readouterr().out
