"""The browser bundle's compile side, with no GPU: `infer.export_webgpu` specialises a model
for a WebGPU target without asking for an adapter, its manifest is complete (every kernel,
constant, pool slot and I/O layout the JavaScript runtime reads), kernels are written in the
browser's dialect (`enable subgroups;`), the target's limits are what the builders see, and
`python -m infer export-web` writes the bundle."""

from __future__ import annotations

import json

import numpy as np
import pytest
import wgpu

import infer
from infer import wgsl
from infer.errors import ModelError
from infer.tools.cli import main as cli_main
from infer.web.export import WEBGPU_DEFAULT_LIMITS

SHAPE = (1, 3, 37, 45)  # odd sizes: no dimension divides a tile


@pytest.fixture
def no_gpu(monkeypatch):
    """Any request for an adapter fails the test: the export must be device-free."""

    def refuse(*args, **kwargs):
        raise AssertionError("export_webgpu asked for a GPU adapter")

    monkeypatch.setattr(wgpu.gpu, "request_adapter_sync", refuse)
    monkeypatch.setattr(wgpu.gpu, "enumerate_adapters_sync", refuse)
    monkeypatch.setattr(infer.device, "get_device", refuse)


def _check_complete(bundle, shapes):
    m = bundle.manifest
    assert m["format"] == "framesmith-webgpu/1"
    assert m["input"] == "input" and m["outputs"] == ["output"]
    weights = bundle.weights
    for c in m["constants"]:
        assert c["offset"] % 256 == 0 and c["offset"] + c["bytes"] <= len(weights)
        assert c["dtype"] in ("float32", "uint32", "int32")
    for build in m["builds"]:
        t = build["target"]
        assert t["limits"]["maxStorageBufferBindingSize"] == 128 * 2**20
        assert t["limits"]["maxComputeWorkgroupStorageSize"] == 16 * 2**10
        assert [p["inputs"][0]["shape"] for p in build["plans"]] == [list(s) for s in shapes]
        for plan in build["plans"]:
            pool = plan["pool"]
            for io in plan["inputs"] + plan["outputs"]:
                assert io["layout"] == "image"
                n, c, h, w = io["shape"]
                assert io["physical"] == [n, h, w, (c + 3) // 4 * 4]
                assert io["bytes"] == 4 * np.prod(io["physical"]) <= pool[io["slot"]]
            for step in plan["steps"]:
                assert step["shader"] in bundle.shaders
                assert all(0 < g <= 65535 for g in step["grid"])
                for b in step["bindings"]:
                    assert b["offset"] % 256 == 0 and b["size"] > 0
                    if "slot" in b:
                        assert b["offset"] + b["size"] <= pool[b["slot"]]
                    else:
                        assert b["offset"] + b["size"] <= m["constants"][b["const"]]["bytes"]
            assert plan["kernels"]  # each conv's variant is recorded


def test_export_needs_no_gpu_and_its_manifest_is_complete(no_gpu):
    shapes = [SHAPE, (1, 3, 24, 32)]
    bundle = infer.export_webgpu("upscale.onnx", shapes, infer.Target())
    _check_complete(bundle, shapes)
    (build,) = bundle.manifest["builds"]
    out = build["plans"][0]["outputs"][0]
    assert out["shape"] == [1, 3, 74, 90]
    assert set(build["plans"][0]["kernels"].values()) == {"direct"}  # the rule, no timing
    assert not any("enable subgroups" in s for s in bundle.shaders.values())
    # every weight of the model is in the file: the convs' kernels and biases at least
    assert len(bundle.weights) > 4 * 3000


def test_subgroup_build_enables_subgroups_and_falls_back(no_gpu):
    targets = [infer.Target.browser(subgroups=True), infer.Target()]
    bundle = infer.export_webgpu("denoise.onnx", SHAPE, targets)
    _check_complete(bundle, [SHAPE])
    sg, plain = bundle.manifest["builds"]
    assert sg["target"]["features"] == ["subgroups"] and sg["target"]["subgroupMinSize"] == 8
    assert plain["target"]["features"] == [] and plain["target"]["subgroupMinSize"] == 0
    assert {"winograd2-sg", "direct-sg"} & set(sg["plans"][0]["kernels"].values())
    assert not {"winograd2-sg", "direct-sg"} & set(plain["plans"][0]["kernels"].values())
    used = {s["shader"] for s in sg["plans"][0]["steps"]}
    sources = [bundle.shaders[f] for f in used]
    assert any(wgsl.uses_subgroups(s) for s in sources)
    for s in sources:  # Tint wants the extension enabled; naga refuses the directive
        assert s.startswith("enable subgroups;") == wgsl.uses_subgroups(s)
    for f in {s["shader"] for s in plain["plans"][0]["steps"]}:
        assert not wgsl.uses_subgroups(bundle.shaders[f])


def test_render_dialects():
    src = "@compute @workgroup_size(1) fn main(@builtin(subgroup_invocation_id) l: u32) {}"
    assert wgsl.uses_subgroups(src) and not wgsl.uses_subgroups("// no subgroup here")
    from infer.compile import specialise
    from infer.graph import from_onnx, load_proto
    from infer.ops.registry import Value

    graph = from_onnx(load_proto("upscale.onnx"))
    prog = specialise(graph, {"input": Value(SHAPE)}, dict(WEBGPU_DEFAULT_LIMITS))
    d = prog.dispatches[-1]
    naga = wgsl.render(d.template, d.variables)
    assert wgsl.render(d.template, d.variables, dialect="webgpu") == naga  # no subgroups
    with pytest.raises(ValueError, match="dialect"):
        wgsl.render(d.template, d.variables, dialect="glsl")


def test_target_limits_are_what_the_builders_see(no_gpu):
    # a binding limit below one frame's tensors: refused at export, by name, not in a browser
    small = infer.Target(limits={**WEBGPU_DEFAULT_LIMITS, "max-storage-buffer-binding-size": 4096})
    with pytest.raises(ModelError, match="storage binding limit"):
        infer.export_webgpu("upscale.onnx", SHAPE, small)
    with pytest.raises(ModelError, match="dimension 1 must be 3"):
        infer.export_webgpu("upscale.onnx", (1, 4, 37, 45))
    with pytest.raises(ModelError, match="only 'subgroups'"):
        infer.export_webgpu("upscale.onnx", SHAPE, infer.Target(features=frozenset({"f16"})))


def test_cli_writes_the_bundle(tmp_path, capsys):
    out = tmp_path / "bundle"
    rc = cli_main(["export-web", "upscale.onnx", str(out), "--size", "45x37", "--size", "32x24"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["shapes"] == [[1, 3, 37, 45], [1, 3, 24, 32]]
    for name in ("index.js", "runtime.js", "manifest.json", "weights.bin"):
        assert (out / name).is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    for build in manifest["builds"]:
        for plan in build["plans"]:
            for step in plan["steps"]:
                assert (out / step["shader"]).is_file()
    index = (out / "index.js").read_text()
    assert 'from "./runtime.js"' in index and "export function load" in index
    # a dynamic-size model without --size is refused with the flag to use
    assert cli_main(["export-web", "upscale.onnx", str(tmp_path / "x")]) == 2
    assert "--size" in capsys.readouterr().err


@pytest.mark.gpu
def test_manifest_runs_on_wgpu_as_the_browser_runtime_would():
    """A second reader of the manifest (wgpu here, runtime.js in a browser): pool buffers,
    constants cut from weights.bin, kernels, bindings and grids, in order. Run on the local
    adapter (lavapipe: 8-lane subgroups), so the subgroup build, which SwiftShader's 4-lane
    subgroups pass over in Chromium, is checked against onnxruntime too."""
    import onnxruntime as ort

    from infer.bundled import resolve_model
    from infer.layout import from_physical, to_physical

    device = infer.get_device()
    dev = device.device
    targets = [infer.Target.browser(subgroups=True), infer.Target()]
    bundle = infer.export_webgpu("denoise.onnx", SHAPE, targets)
    m = bundle.manifest
    x = np.random.default_rng(2).random(SHAPE, dtype=np.float32)
    sess = ort.InferenceSession(str(resolve_model("denoise.onnx")))
    (ref,) = sess.run(None, {"input": x})
    usage = wgpu.BufferUsage
    ran = []
    for build in m["builds"]:
        if build["target"]["subgroupMinSize"] > device.limits.get("subgroup-size", 0):
            continue
        (plan,) = build["plans"]
        pool = [
            dev.create_buffer(size=n, usage=usage.STORAGE | usage.COPY_SRC | usage.COPY_DST)
            for n in plan["pool"]
        ]
        consts = {}
        for step in plan["steps"]:
            for b in step["bindings"]:
                if "const" in b and b["const"] not in consts:
                    c = m["constants"][b["const"]]
                    data = bundle.weights[c["offset"] : c["offset"] + c["bytes"]]
                    consts[b["const"]] = dev.create_buffer_with_data(
                        data=data, usage=usage.STORAGE | usage.UNIFORM
                    )
        (inp,), (out,) = plan["inputs"], plan["outputs"]
        dev.queue.write_buffer(pool[inp["slot"]], 0, to_physical(x, inp["layout"]))
        enc = dev.create_command_encoder()
        cp = enc.begin_compute_pass()
        for step in plan["steps"]:
            source = bundle.shaders[step["shader"]].replace("enable subgroups;\n", "")  # naga
            pipeline = device.pipeline(source, step["label"])
            entries = [
                {
                    "binding": k,
                    "resource": {
                        "buffer": pool[b["slot"]] if "slot" in b else consts[b["const"]],
                        "offset": b["offset"],
                        "size": b["size"],
                    },
                }
                for k, b in enumerate(step["bindings"])
            ]
            layout = pipeline.get_bind_group_layout(0)
            cp.set_pipeline(pipeline)
            cp.set_bind_group(0, dev.create_bind_group(layout=layout, entries=entries))
            cp.dispatch_workgroups(*step["grid"])
        cp.end()
        dev.queue.submit([enc.finish()])
        raw = np.frombuffer(dev.queue.read_buffer(pool[out["slot"]]), np.float32)
        got = from_physical(raw, tuple(out["shape"]), out["layout"])
        err = float(np.abs(got - ref).max() / np.abs(ref).max())
        assert err <= 1e-4, f"{build['target']['name']}: max relative error {err:.2e}"
        ran.append(build["target"]["name"])
    assert "webgpu-default" in ran
    if device.limits.get("subgroup-size", 0) >= 8:
        assert "webgpu-subgroups" in ran
