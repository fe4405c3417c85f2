// Where the picture is upscaled (stream/placement.py): by the server (the <video> shows the
// model's output) or here, in the viewer (the server sends the frames before the model and
// this module runs the same model, exported for WebGPU by the server at model/WxH/, drawing
// its output into a WebGPU <canvas> laid over the <video>). Input and the overlay follow
// whichever element shows the picture (`display`).
//
// Placement "auto" measures the bundle on this page (its time per frame against the frame
// interval) and asks for the viewer placement only when it keeps up, and for the server
// again when it stops keeping up. Every frame the canvas shows is one the <video> decoded:
// drawn to a 2D canvas, read as RGB in 0..1, run, and presented.

import { authHeaders } from "./auth.js";

const KEEP_UP = 0.8; // the model may take this share of a frame interval (the rest: read, draw)
const WINDOW = 30; // frames the live check looks at
const median = (v) => {
  if (!v.length) return NaN;
  const s = [...v].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};
const authedFetch = (url) => fetch(url, { headers: authHeaders() });

export class Placement {
  constructor({ video, send, select, onStatus = () => {} }) {
    this.video = video;
    this.send = send; // (message) => void, over the data channel
    this.select = select;
    this.onStatus = onStatus;
    this.canvas = document.createElement("canvas");
    this.canvas.id = "upscaled";
    this.canvas.hidden = true;
    video.after(this.canvas);
    this.reader = document.createElement("canvas").getContext("2d", { willReadFrequently: true });
    this.wanted = new URLSearchParams(location.search).get("placement"); // this page's choice
    this.hello = {};
    this.placement = "server"; // what the server sends this session now
    this.reason = "";
    this.model = null;
    this.loading = null;
    this.frames = 0; // pictures presented on the canvas
    this.modelMs = []; // recent model times per frame (ms)
    this.mediaTimes = []; // recent frame times of the video (s), for the frame interval
    this.busy = false;
    this.snapshotWanted = false; // a test asks for the next frame's input and canvas pixels
    this.snapshot = null;
    this.error = "";
    if (select) select.onchange = () => this.choose(select.value);
    video.requestVideoFrameCallback((now, meta) => this.onFrame(now, meta));
  }

  /** The element that shows the picture now (input maps pointer positions onto it). */
  get display() {
    return this.canvas.hidden ? this.video : this.canvas;
  }

  get frameMs() {
    const t = this.mediaTimes;
    const d = [];
    for (let i = 1; i < t.length; i++) if (t[i] > t[i - 1]) d.push(1000 * (t[i] - t[i - 1]));
    return d.length >= 5 ? median(d) : 1000 / (this.hello.fps || 30);
  }

  get keepsUp() {
    return this.modelMs.length > 0 && median(this.modelMs.slice(-WINDOW)) <= KEEP_UP * this.frameMs;
  }

  // -- the session ---------------------------------------------------------------------------

  /** A new session's hello: what the server allows, and this page's starting placement. */
  onHello(hello) {
    this.hello = hello;
    this.placement = "server";
    this.show(false);
    const choice = this.wanted || hello.placement || "server";
    if (this.select) {
      this.select.value = choice;
      this.select.disabled = !hello.bundle;
    }
    this.choose(choice);
  }

  /** The server's answer to a "placement" message: what this session receives now. */
  onAnswer(msg) {
    this.placement = msg.placement;
    if (msg.refused) this.onStatus(`placement: ${msg.refused}`);
    if (msg.placement === "server") this.show(false);
  }

  async choose(choice) {
    this.wanted = choice;
    if (choice === "server" || !this.hello.bundle) {
      this.ask("server", choice === "server" ? "asked" : "no model on the server");
      return;
    }
    try {
      await this.load();
    } catch (e) {
      this.error = `${e.name}: ${e.message}`;
      this.ask("server", `${choice}: ${e.name}`); // no WebGPU, or the bundle cannot run here
      this.onStatus(`placement: the server upscales (${this.error})`);
      return;
    }
    if (choice === "viewer") {
      this.ask("viewer", "asked");
    } else if (this.keepsUp) {
      this.ask("viewer", "auto: keeps up");
    } else {
      this.ask("server", "auto: too slow here");
    }
  }

  ask(placement, reason) {
    this.reason = reason;
    const figures = { model_ms: median(this.modelMs.slice(-WINDOW)), frame_ms: this.frameMs };
    for (const k of Object.keys(figures)) if (!isFinite(figures[k])) delete figures[k];
    this.asked = { placement, reason, auto: reason.startsWith("auto"), ...figures };
    if (placement === this.placement && placement === "server") return;
    this.send({ type: "placement", placement, reason, ...figures });
  }

  // -- the model -----------------------------------------------------------------------------

  /** Load the bundle (once a session) and time it on this page: a few runs on a blank
   * frame of the stream's low-resolution size. */
  load() {
    const url = this.hello.bundle;
    if (this.model && this.model.url === url) return Promise.resolve(this.model);
    if (!this.loading) {
      this.loading = (async () => {
        // page-relative: the room's own routes (/ or /rooms/NAME/)
        const { loadBundle } = await import(new URL("model/runtime.js", location.href).href);
        const model = await loadBundle(new URL(url, location.href), { fetch: authedFetch });
        model.url = url;
        const shape = model.inputShapes[0];
        const blank = new Float32Array(shape.reduce((a, b) => a * b, 1));
        for (let i = 0; i < 4; i++) {
          const t0 = performance.now();
          await model.run(blank, shape);
          if (i) this.modelMs.push(performance.now() - t0); // the first compiles
        }
        await this.setupPresent(model);
        this.model = model;
        return model;
      })().finally(() => {
        this.loading = null;
      });
    }
    return this.loading;
  }

  async setupPresent(model) {
    const device = model.device;
    const code = await (await fetch(new URL("model/present.wgsl", location.href))).text();
    const format = navigator.gpu.getPreferredCanvasFormat();
    this.gpu = this.canvas.getContext("webgpu");
    this.gpu.configure({ device, format, alphaMode: "opaque" });
    const module = device.createShaderModule({ code, label: "present" });
    this.pipeline = await device.createRenderPipelineAsync({
      layout: "auto",
      vertex: { module, entryPoint: "vs" },
      fragment: { module, entryPoint: "fs", targets: [{ format }] },
      primitive: { topology: "triangle-list" },
    });
    this.dims = device.createBuffer({ size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  }

  // -- every decoded frame -------------------------------------------------------------------

  onFrame(now, meta) {
    this.video.requestVideoFrameCallback((n, m) => this.onFrame(n, m));
    this.mediaTimes.push(meta.mediaTime);
    if (this.mediaTimes.length > WINDOW) this.mediaTimes.shift();
    const m = this.model;
    if (!m || this.placement !== "viewer" || this.busy) return; // busy: newest frame wins
    const [, , h, w] = m.inputShapes[0];
    if ((meta.width || this.video.videoWidth) !== w || (meta.height || this.video.videoHeight) !== h) {
      return; // a frame of the model's output, still in flight from before the switch
    }
    this.busy = true;
    this.upscale(m, w, h)
      .catch((e) => {
        this.error = `${e.name}: ${e.message}`;
        console.error(e);
        this.choose("server");
      })
      .finally(() => {
        this.busy = false;
      });
  }

  async upscale(m, w, h) {
    const rd = this.reader;
    if (rd.canvas.width !== w || rd.canvas.height !== h) {
      rd.canvas.width = w;
      rd.canvas.height = h;
    }
    rd.drawImage(this.video, 0, 0, w, h);
    const rgba = rd.getImageData(0, 0, w, h).data;
    const plane = w * h;
    const x = new Float32Array(3 * plane);
    for (let i = 0; i < plane; i++) {
      x[i] = rgba[4 * i] / 255;
      x[plane + i] = rgba[4 * i + 1] / 255;
      x[2 * plane + i] = rgba[4 * i + 2] / 255;
    }
    const t0 = performance.now();
    const out = await m.run(x, [1, 3, h, w]);
    this.modelMs.push(performance.now() - t0);
    if (this.modelMs.length > 4 * WINDOW) this.modelMs.splice(0, WINDOW);
    if (this.placement !== "viewer") return;
    this.present(m.device, out);
    this.frames++;
    if (this.snapshotWanted) {
      this.snapshotWanted = false;
      this.snapshot = { input: [w, h, Array.from(rgba)], output: this.readCanvas(), frames: this.frames };
    }
    this.show(true);
    if (this.wanted === "auto" && this.frames % WINDOW === 0 && !this.keepsUp) {
      this.ask("server", "auto: fell behind");
    }
  }

  present(device, out) {
    const [, , oh, ow] = out.shape;
    const c = this.canvas;
    if (c.width !== ow || c.height !== oh) {
      c.width = ow;
      c.height = oh;
    }
    if (!this.picture || this.picture.size < out.data.byteLength) {
      if (this.picture) this.picture.destroy();
      this.picture = device.createBuffer({
        size: out.data.byteLength,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
      });
      this.group = null;
    }
    device.queue.writeBuffer(this.picture, 0, out.data);
    device.queue.writeBuffer(this.dims, 0, new Uint32Array([ow, oh, 0, 0]));
    this.group ||= device.createBindGroup({
      layout: this.pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: this.picture } },
        { binding: 1, resource: { buffer: this.dims } },
      ],
    });
    const encoder = device.createCommandEncoder({ label: "present" });
    const pass = encoder.beginRenderPass({
      colorAttachments: [{ view: this.gpu.getCurrentTexture().createView(), loadOp: "clear", storeOp: "store", clearValue: [0, 0, 0, 1] }],
    });
    pass.setPipeline(this.pipeline);
    pass.setBindGroup(0, this.group);
    pass.draw(3);
    pass.end();
    device.queue.submit([encoder.finish()]);
  }

  // the canvas's pixels as drawn this frame (read before the browser presents it)
  readCanvas() {
    const c = this.canvas;
    const copy = document.createElement("canvas").getContext("2d");
    copy.canvas.width = c.width;
    copy.canvas.height = c.height;
    copy.drawImage(c, 0, 0);
    return [c.width, c.height, Array.from(copy.getImageData(0, 0, c.width, c.height).data)];
  }

  /** The canvas over the <video> (which keeps the stage's size: the canvas's, in CSS px). */
  show(on) {
    if (on === !this.canvas.hidden) return;
    this.canvas.hidden = !on;
    this.video.style.width = on ? `${this.canvas.width}px` : "";
    this.video.style.height = on ? `${this.canvas.height}px` : "";
  }

  /** The overlay's line. */
  line() {
    const f = (v) => (isFinite(v) ? v.toFixed(1) : "–");
    const c = this.canvas;
    const where = this.placement === "viewer" ? `viewer (WebGPU canvas ${c.width}x${c.height})` : "server";
    return `placement ${where}  [${this.wanted || "server"}]  model ${f(median(this.modelMs.slice(-WINDOW)))} ms/frame  frame ${f(this.frameMs)} ms  canvas frames ${this.frames}`;
  }
}
