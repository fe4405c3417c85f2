"""The op registry: one registration per (domain, op, since); the newest not above the opset."""

from __future__ import annotations

import pytest

from infer.ops import lookup
from infer.ops.registry import Value, register


def _infer(node, ins, opset):
    return [ins[0].shape]


def test_a_second_registration_of_the_same_version_is_refused_naming_both():
    with pytest.raises(ValueError) as e:
        register("Relu", infer=_infer, since=1)
    msg = str(e.value)
    assert "ai.onnx::Relu since opset 1 is registered twice" in msg
    assert "infer.ops.unary" in msg and "test_registry._infer" in msg
    assert lookup("Relu", 17).infer is not _infer  # the original stays


def test_the_newest_version_not_above_the_opset_is_chosen():
    register("FramesmithProbe", infer=_infer, since=3, domain="test.framesmith")
    register("FramesmithProbe", infer=lambda n, i, o: [(1,)], since=7, domain="test.framesmith")
    assert lookup("FramesmithProbe", 2, "test.framesmith") is None
    assert lookup("FramesmithProbe", 5, "test.framesmith").since == 3
    assert lookup("FramesmithProbe", 9, "test.framesmith").since == 7
    assert lookup("FramesmithProbe", 9, "test.framesmith").infer(None, [Value((2,))], 9) == [(1,)]
