"""The browser bundle in Debian's headless Chromium (WebGPU on SwiftShader, driven by
playwright): `python -m infer export-web`'s output, served over HTTP on 127.0.0.1, is
imported as an ES module, `load()` makes its own device, and `run()` on a random input of an
odd size matches onnxruntime on the bundled models and two reference architectures. `load()`
refuses by name where WebGPU is missing or the device lacks a build's feature, and the
subgroup kernels pass Chromium's WGSL compiler (Tint).

The bundles here force the tiled conv kernel (a fixed variant: `kernels=["tiled"]`): on
SwiftShader, Chromium's CPU WebGPU, the default direct kernel (an unrolled 8-pixel x 2-block
register tile) takes minutes to compile per kernel, the tiled one 1-3 s. Both come from the
same builders the server runs, and the default export is checked device-free in
test_export_web.py.
"""

from __future__ import annotations

import base64
import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import infer
from infer.bundled import bundled_models, resolve_model

pytestmark = [pytest.mark.browser]

CHROMIUM = os.environ.get("FRAMESMITH_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--enable-unsafe-webgpu",  # WebGPU on Linux: SwiftShader's Vulkan, with --disable-gpu
]
SHAPE = (1, 3, 37, 45)  # odd: no dimension divides a workgroup tile
# max |ours - onnxruntime| over max |onnxruntime|: fp32 throughout; SwiftShader measured 4e-7
RTOL = 1e-4
TARGETS = [infer.Target.browser(subgroups=True), infer.Target()]

RUN = """async ([url, b64, shape]) => {
  const x = new Float32Array(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)).buffer);
  const m = await (await import(url + "index.js")).load(url);
  const out = await m.run(x, shape);
  const bytes = new Uint8Array(out.data.buffer, out.data.byteOffset, out.data.byteLength);
  let s = "";
  for (let i = 0; i < bytes.length; i += 8192) {
    s += String.fromCharCode(...bytes.subarray(i, i + 8192));
  }
  const build = m.build.target.name;
  m.destroy();
  return { shape: out.shape, data: btoa(s), build, ctor: out.data.constructor.name };
}"""

# what load() / run() throws, as {name, message}
REFUSAL = """async ([url, how]) => {
  try {
    const mod = await import(url + "index.js");
    if (how === "plain-device") {
      const adapter = await navigator.gpu.requestAdapter();
      const device = await adapter.requestDevice();  // no features asked for
      await mod.load(url, { device });
    } else if (how === "wrong-shape") {
      const m = await mod.load(url);
      await m.run(new Float32Array(3 * 8 * 8), [1, 3, 8, 8]);
    } else {
      await mod.load(url);
    }
    return { name: "none", message: "" };
  } catch (e) {
    return { name: e.name, message: e.message };
  }
}"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A folder served on 127.0.0.1 (a secure context, as WebGPU needs): (folder, base URL)."""
    root = tmp_path_factory.mktemp("web")
    (root / "index.html").write_text("<!doctype html><title>bundle test</title>")
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def page(browser, site):
    pg = browser.new_page()
    pg.set_default_timeout(240_000)  # SwiftShader compiles each kernel on the CPU
    pg.goto(f"{site[1]}/index.html")
    ok = pg.evaluate("async () => !!(navigator.gpu && (await navigator.gpu.requestAdapter()))")
    if not ok:
        pytest.skip("this Chromium has no WebGPU adapter")
    yield pg
    pg.close()


def _export(site, name: str, model, targets=TARGETS, kernels=("tiled",)) -> str:
    root, base = site
    bundle = infer.export_webgpu(model, SHAPE, targets, kernels=list(kernels), name=name)
    bundle.write(root / name)
    return f"{base}/{name}/"


def bundled_models_names() -> set[str]:
    return {Path(n).stem for n in bundled_models()}


def _reference_model(name: str) -> Path:
    pytest.importorskip("torch", reason="reference architectures are exported with torch")
    from infer.tools.zoo import reference_models

    (path,) = reference_models(names=(name,))
    return path


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", ["upscale", "upscale-hq", "denoise", "espcn", "fsrcnn"])
def test_bundle_matches_onnxruntime(name, page, site):
    path = resolve_model(f"{name}.onnx") if name in bundled_models_names() else None
    path = path or _reference_model(name)
    url = _export(site, name, path)
    x = np.random.default_rng(1).random(SHAPE, dtype=np.float32)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (ref,) = sess.run(None, {sess.get_inputs()[0].name: x})
    r = page.evaluate(RUN, [url, base64.b64encode(x.tobytes()).decode(), list(SHAPE)])
    # SwiftShader has 4-lane subgroups: the subgroup build (8+ lanes) is passed over
    assert r["build"] == "webgpu-default"
    assert r["ctor"] == "Float32Array"
    got = np.frombuffer(base64.b64decode(r["data"]), np.float32).reshape(r["shape"])
    assert got.shape == ref.shape
    err = float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-6))
    print(f"{name}: max relative error {err:.2e} vs onnxruntime")
    assert err <= RTOL, f"{name}: max relative error {err:.2e}"


def test_load_refuses_without_webgpu(browser, site):
    url = _export(site, "upscale-nogpu", "upscale.onnx")
    ctx = browser.new_context()
    # a browser without WebGPU: navigator.gpu is not there
    ctx.add_init_script("Object.defineProperty(Navigator.prototype, 'gpu', {get: () => undefined})")
    pg = ctx.new_page()
    try:
        pg.goto(f"{site[1]}/index.html")
        assert pg.evaluate("() => navigator.gpu") is None
        r = pg.evaluate(REFUSAL, [url, "load"])
    finally:
        ctx.close()
    assert r["name"] == "WebGPUUnavailable"
    assert "WebGPU is not available" in r["message"] and "navigator.gpu" in r["message"]


def test_load_refuses_a_device_without_the_features_a_build_needs(page, site):
    only_sg = _export(site, "upscale-sg-only", "upscale.onnx", [infer.Target.browser(True)])
    r = page.evaluate(REFUSAL, [only_sg, "load"])  # SwiftShader: 4-lane subgroups
    assert r["name"] == "BundleError"
    assert "webgpu-subgroups needs subgroups of 8+ lanes (this one: 4)" in r["message"]
    r = page.evaluate(REFUSAL, [only_sg, "plain-device"])  # a device made without subgroups
    assert r["name"] == "BundleError" and "the 'subgroups' feature" in r["message"]
    both = _export(site, "upscale-both", "upscale.onnx")
    r = page.evaluate(REFUSAL, [both, "wrong-shape"])
    assert r["name"] == "BundleError"
    assert "[1,3,37,45]" in r["message"] and "--size" in r["message"]


def test_subgroup_kernels_compile_in_chromium(page, site):
    """The subgroup build (the rule's subgroup variants, not forced to tiled) passes Tint:
    `enable subgroups;` is there and the broadcasts satisfy its uniformity analysis."""
    root, base = site
    bundle = infer.export_webgpu("upscale.onnx", SHAPE, [infer.Target.browser(True)])
    sources = [s for s in bundle.shaders.values() if "subgroupBroadcast" in s]
    assert sources
    messages = page.evaluate(
        """async (sources) => {
          const adapter = await navigator.gpu.requestAdapter();
          const device = await adapter.requestDevice({ requiredFeatures: ["subgroups"] });
          const out = [];
          for (const code of sources) {
            const info = await device.createShaderModule({ code }).getCompilationInfo();
            out.push(info.messages.filter((m) => m.type === "error").map((m) => m.message));
          }
          device.destroy();
          return out;
        }""",
        sources,
    )
    assert messages == [[] for _ in sources]
