// framesmith's browser runtime for a model exported by `python -m infer export-web`.
//
// The bundle holds what the engine's compiler made (manifest.json: per input shape, the
// pool of tensor buffers and the dispatches in order; kernels/*.wgsl; weights.bin). This file
// only binds and dispatches them: buffers per the plan, weights uploaded once, one compute
// pipeline per kernel, every dispatch in one command encoder, the outputs read back. Tensors
// lie in the engine's layout (channels last, padded to 4: infer/layout.py); run() takes and
// returns NCHW.

const USAGE = () => ({
  tensor: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
  constant: GPUBufferUsage.STORAGE | GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  readback: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
});

/** No WebGPU here (no navigator.gpu, or no adapter). */
export class WebGPUUnavailable extends Error {
  constructor(message) {
    super(message);
    this.name = "WebGPUUnavailable";
  }
}

/** The bundle cannot run on this device or with these arguments; the message says why. */
export class BundleError extends Error {
  constructor(message) {
    super(message);
    this.name = "BundleError";
  }
}

const product = (dims) => dims.reduce((a, b) => a * b, 1);
const align = (n, k) => Math.ceil(n / k) * k;

/** What `build` needs that a device with these features, limits and subgroup size lacks. */
function shortfalls(build, features, limits, subgroupMinSize) {
  const t = build.target;
  const out = [];
  for (const f of t.features) if (!features.has(f)) out.push(`the '${f}' feature`);
  if (t.subgroupMinSize > 0 && !(subgroupMinSize >= t.subgroupMinSize)) {
    out.push(`subgroups of ${t.subgroupMinSize}+ lanes (this one: ${subgroupMinSize ?? "unknown"})`);
  }
  for (const [name, need] of Object.entries(t.limits)) {
    const have = limits[name];
    if (have === undefined) continue; // a limit this browser does not name
    const ok = name.startsWith("min") ? have <= need : have >= need;
    if (!ok) out.push(`${name} ${need} (this one: ${have})`);
  }
  return out;
}

function pickBuild(manifest, features, limits, subgroupMinSize, where) {
  const why = [];
  for (const build of manifest.builds) {
    const lacks = shortfalls(build, features, limits, subgroupMinSize);
    if (!lacks.length) return build;
    why.push(`${build.target.name} needs ${lacks.join(", ")}`);
  }
  throw new BundleError(`${manifest.model}: ${where} cannot run any build of this bundle: ${why.join("; ")}`);
}

function requiredLimits(build, adapterLimits) {
  const out = {};
  for (const [name, need] of Object.entries(build.target.limits)) {
    if (adapterLimits[name] !== undefined) out[name] = need;
  }
  return out;
}

/** NCHW (or any rank) float32 data into the engine's layout for this tensor. */
function toPhysical(data, io) {
  const out = new Float32Array(io.bytes / 4);
  if (io.layout !== "image" || io.shape.length < 2) {
    out.set(data);
    return out;
  }
  const [n, c] = io.shape;
  const s = product(io.shape.slice(2));
  const c4 = io.physical[io.physical.length - 1];
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < c; ch++) {
      const src = (b * c + ch) * s;
      const dst = b * s * c4 + ch;
      for (let i = 0; i < s; i++) out[dst + i * c4] = data[src + i];
    }
  }
  return out;
}

function fromPhysical(raw, io) {
  const size = product(io.shape);
  if (io.layout !== "image" || io.shape.length < 2) return raw.slice(0, size);
  const out = new Float32Array(size);
  const [n, c] = io.shape;
  const s = product(io.shape.slice(2));
  const c4 = io.physical[io.physical.length - 1];
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < c; ch++) {
      const dst = (b * c + ch) * s;
      const src = b * s * c4 + ch;
      for (let i = 0; i < s; i++) out[dst + i] = raw[src + i * c4];
    }
  }
  return out;
}

async function fetchOk(url, what, fetcher = (u) => globalThis.fetch(u)) {
  const r = await fetcher(url);
  if (!r.ok) throw new BundleError(`${what} ${url}: HTTP ${r.status}`);
  return r;
}

/** One input shape's plan bound to GPU resources. */
class BoundPlan {
  constructor(model, plan) {
    this.plan = plan;
    const device = model.device;
    const usage = USAGE();
    this.pool = plan.pool.map((size, k) =>
      device.createBuffer({ size, usage: usage.tensor, label: `${model.name} pool ${k}` }),
    );
    this.steps = plan.steps.map((step) => {
      const pipeline = model.pipelines.get(step.shader);
      const entries = step.bindings.map((b, k) => ({
        binding: k,
        resource: {
          buffer: b.slot !== undefined ? this.pool[b.slot] : model.constants.get(b.const),
          offset: b.offset,
          size: b.size,
        },
      }));
      const group = device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries,
        label: step.label,
      });
      return { pipeline, group, grid: step.grid };
    });
    this.outOffsets = [];
    let total = 0;
    for (const io of plan.outputs) {
      this.outOffsets.push(total);
      total += align(io.bytes, 256);
    }
    this.readback = device.createBuffer({ size: Math.max(total, 256), usage: usage.readback });
  }

  destroy() {
    for (const b of this.pool) b.destroy();
    this.readback.destroy();
  }
}

class BundleModel {
  constructor(manifest, build, device, ownDevice) {
    this.manifest = manifest;
    this.build = build;
    this.device = device;
    this.name = manifest.model;
    this.ownDevice = ownDevice;
    this.pipelines = new Map(); // shader file -> GPUComputePipeline
    this.constants = new Map(); // constant index -> GPUBuffer
    this.bound = new Map(); // shape key -> BoundPlan
    this.tail = Promise.resolve();
    this.lost = null;
    device.lost.then((info) => {
      this.lost = info;
    });
  }

  /** The NCHW input shapes this bundle was exported for. */
  get inputShapes() {
    return this.build.plans.map((p) => p.inputs[0].shape);
  }

  plan(shape) {
    const key = shape.join("x");
    const plan = this.build.plans.find((p) => p.inputs[0].shape.join("x") === key);
    if (!plan) {
      const known = this.inputShapes.map((s) => `[${s}]`).join(", ");
      throw new BundleError(
        `${this.name}: exported for input shapes ${known}, not [${shape}]: ` +
          "export it again with that size (python -m infer export-web ... --size WxH)",
      );
    }
    let bound = this.bound.get(key);
    if (!bound) {
      bound = new BoundPlan(this, plan);
      this.bound.set(key, bound);
    }
    return bound;
  }

  /** Run on NCHW float32 data; resolves to the first output {data, shape}. */
  run(data, shape) {
    const result = this.tail.then(() => this._run(data, shape));
    this.tail = result.catch(() => {});
    return result.then((outs) => outs[0]);
  }

  /** Like run, every output: [{name, data, shape}]. */
  runAll(data, shape) {
    const result = this.tail.then(() => this._run(data, shape));
    this.tail = result.catch(() => {});
    return result;
  }

  async _run(data, shape) {
    if (this.lost) throw new BundleError(`${this.name}: the GPU device was lost (${this.lost.message})`);
    if (!(data instanceof Float32Array)) throw new BundleError("run() takes a Float32Array");
    if (!Array.isArray(shape)) throw new BundleError("run() takes the input's shape, [n, c, h, w]");
    if (data.length !== product(shape)) {
      throw new BundleError(`data has ${data.length} values, shape [${shape}] needs ${product(shape)}`);
    }
    const bound = this.plan(shape);
    const { plan } = bound;
    const device = this.device;
    device.pushErrorScope("validation");
    const input = plan.inputs[0];
    device.queue.writeBuffer(bound.pool[input.slot], 0, toPhysical(data, input));
    const encoder = device.createCommandEncoder({ label: this.name });
    const pass = encoder.beginComputePass();
    for (const s of bound.steps) {
      pass.setPipeline(s.pipeline);
      pass.setBindGroup(0, s.group);
      pass.dispatchWorkgroups(s.grid[0], s.grid[1], s.grid[2]);
    }
    pass.end();
    plan.outputs.forEach((io, k) => {
      encoder.copyBufferToBuffer(bound.pool[io.slot], 0, bound.readback, bound.outOffsets[k], io.bytes);
    });
    device.queue.submit([encoder.finish()]);
    const error = await device.popErrorScope();
    if (error) throw new BundleError(`${this.name}: ${error.message}`);
    await bound.readback.mapAsync(GPUMapMode.READ);
    try {
      const raw = bound.readback.getMappedRange();
      return plan.outputs.map((io, k) => ({
        name: io.name,
        shape: io.shape.slice(),
        data: fromPhysical(new Float32Array(raw, bound.outOffsets[k], io.bytes / 4), io),
      }));
    } finally {
      bound.readback.unmap();
    }
  }

  /** Free the GPU buffers (and the device, when load() made it). */
  destroy() {
    for (const b of this.bound.values()) b.destroy();
    for (const b of this.constants.values()) b.destroy();
    this.bound.clear();
    if (this.ownDevice) this.device.destroy();
  }
}

async function compile(model, base, plans, fetcher) {
  const files = [...new Set(plans.flatMap((p) => p.steps.map((s) => s.shader)))];
  const sources = await Promise.all(
    files.map(async (f) => (await fetchOk(new URL(f, base), "kernel", fetcher)).text()),
  );
  await Promise.all(
    files.map(async (file, k) => {
      const module = model.device.createShaderModule({ code: sources[k], label: file });
      const info = await module.getCompilationInfo();
      const errors = info.messages.filter((m) => m.type === "error");
      if (errors.length) {
        const lines = errors.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join("; ");
        throw new BundleError(`${model.name}: ${file} does not compile here: ${lines}`);
      }
      try {
        const pipeline = await model.device.createComputePipelineAsync({
          layout: "auto",
          compute: { module, entryPoint: "main" },
          label: file,
        });
        model.pipelines.set(file, pipeline);
      } catch (e) {
        throw new BundleError(`${model.name}: ${file}: ${e.message}`);
      }
    }),
  );
}

async function uploadConstants(model, base, manifest, plans, fetcher) {
  const used = new Set();
  for (const p of plans) for (const s of p.steps) for (const b of s.bindings) {
    if (b.const !== undefined) used.add(b.const);
  }
  const weights = await (await fetchOk(new URL(manifest.weights, base), "weights", fetcher)).arrayBuffer();
  const usage = USAGE().constant;
  for (const k of used) {
    const c = manifest.constants[k];
    if (c.offset + c.bytes > weights.byteLength) {
      throw new BundleError(`${manifest.model}: ${manifest.weights} is truncated (constant ${c.key})`);
    }
    const buf = model.device.createBuffer({
      size: align(c.bytes, 16),
      usage,
      mappedAtCreation: true,
      label: c.key,
    });
    new Uint8Array(buf.getMappedRange()).set(new Uint8Array(weights, c.offset, c.bytes));
    buf.unmap();
    model.constants.set(k, buf);
  }
}

/**
 * Load a bundle from `baseUrl` (the folder holding manifest.json). `options.device`: a
 * GPUDevice to run on (checked against what the bundle needs); without one, an adapter and
 * device are requested here. `options.fetch`: how the bundle's files are fetched (e.g. with
 * the page's bearer token; fetch by default). Refuses, with WebGPUUnavailable or BundleError,
 * when WebGPU or a feature or limit a build needs is missing.
 */
export async function loadBundle(baseUrl, options = {}) {
  const base = new URL(String(baseUrl).endsWith("/") ? baseUrl : `${baseUrl}/`, globalThis.location?.href);
  const fetcher = options.fetch ?? ((url) => globalThis.fetch(url));
  const manifest = await (await fetchOk(new URL("manifest.json", base), "manifest", fetcher)).json();
  if (manifest.format !== "framesmith-webgpu/1") {
    throw new BundleError(`unknown bundle format ${manifest.format}`);
  }
  let device = options.device;
  let build;
  if (device) {
    const info = device.adapterInfo ?? {};
    build = pickBuild(manifest, device.features, device.limits, info.subgroupMinSize, "the given device");
  } else {
    const gpu = globalThis.navigator?.gpu;
    if (!gpu) {
      throw new WebGPUUnavailable(
        `${manifest.model}: WebGPU is not available here (navigator.gpu is missing: the ` +
          "browser has no WebGPU, or it is off, or the page is not a secure context)",
      );
    }
    const adapter = await gpu.requestAdapter(options.adapterOptions);
    if (!adapter) {
      throw new WebGPUUnavailable(`${manifest.model}: WebGPU is on but no GPU adapter was found`);
    }
    const info = adapter.info ?? {};
    build = pickBuild(manifest, adapter.features, adapter.limits, info.subgroupMinSize, "this adapter");
    device = await adapter.requestDevice({
      requiredFeatures: build.target.features,
      requiredLimits: requiredLimits(build, adapter.limits),
      label: `framesmith ${manifest.model}`,
    });
  }
  const model = new BundleModel(manifest, build, device, !options.device);
  try {
    await compile(model, base, build.plans, fetcher);
    await uploadConstants(model, base, manifest, build.plans, fetcher);
  } catch (e) {
    model.destroy();
    throw e;
  }
  return model;
}
