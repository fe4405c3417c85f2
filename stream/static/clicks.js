// Click-to-photon: from a press on this page to the first frame on this screen showing its
// effect. The effect is read from an input counter in the picture (drawn by
// stream/tools/input_app.py in the frame marker's pattern, half-way down the left edge; any
// app that draws one works): the counter read on the frame shown at the press is the "before",
// and the first later frame showing another value is the effect. Both ends are on this page's
// clock. The stages between come from the server's input_ack and the frame's own message
// (found through the frame marker, when the server stamps one), put on this clock with the ping
// offset; stream/input/latency.py names them. One press is measured at a time.
// For an app that draws no counter (xcalc, xterm: the bench's --app), `region` names where its
// effect shows, as fractions of the picture ({x, y, w, h}): the effect is then the first frame
// in which `minPixels` pixels of that region differ from the press's frame by more than
// `level` (0-255) in some channel.

import { readMarker } from "./marker.js";

export const INPUT_MARKER_Y = 0.5; // stream/tools/input_app.py INPUT_MARKER_Y
const PENDING_MS = 3000; // a press with no visible effect by then is counted as missed
const KEEP = 300;

export class ClickToPhoton {
  constructor(state) {
    this.state = state; // app.js state: clockOffset (server - page, ms), frames (n -> message)
    this.canvas = document.createElement("canvas");
    this.ctx = this.canvas.getContext("2d", { willReadFrequently: true });
    this.hint = 0;
    this.pending = null; // {id, t, before, ack}
    this.waiting = new Map(); // frame n -> sample waiting for its frame message
    this.samples = [];
    this.missed = 0;
    this.region = null; // {x, y, w, h, level, minPixels}: watch a region, not a counter
  }

  // the pixels of `region` now on `video`, as RGBA bytes
  readRegion(video, vw, vh) {
    const r = this.region;
    const x = Math.floor(r.x * vw);
    const y = Math.floor(r.y * vh);
    const w = Math.max(1, Math.floor(r.w * vw));
    const h = Math.max(1, Math.floor(r.h * vh));
    if (this.canvas.width !== w || this.canvas.height !== h) {
      this.canvas.width = w;
      this.canvas.height = h;
    }
    this.ctx.drawImage(video, x, y, w, h, 0, 0, w, h);
    return this.ctx.getImageData(0, 0, w, h).data;
  }

  changed(before, now) {
    if (!this.region) return now !== before;
    if (before.length !== now.length) return true;
    const level = this.region.level ?? 64;
    let n = 0;
    for (let i = 0; i < now.length; i += 4) {
      const d = Math.max(
        Math.abs(now[i] - before[i]), Math.abs(now[i + 1] - before[i + 1]), Math.abs(now[i + 2] - before[i + 2]));
      if (d > level && ++n >= (this.region.minPixels ?? 8)) return true;
    }
    return false;
  }

  look(video, vw, vh) {
    return this.region ? this.readRegion(video, vw, vh) : this.read(video, vw, vh);
  }

  // the input counter in the picture now on `video` (null: none there)
  read(video, vw, vh) {
    const y0 = Math.floor(vh * INPUT_MARKER_Y);
    const sh = Math.min(vh - y0, Math.ceil(vh * 0.2) + 4);
    if (sh <= 0) return null;
    if (this.canvas.width !== vw || this.canvas.height !== sh) {
      this.canvas.width = vw;
      this.canvas.height = sh;
    }
    this.ctx.drawImage(video, 0, y0, vw, sh, 0, 0, vw, sh);
    const found = readMarker(this.ctx.getImageData(0, 0, vw, sh), vh, this.hint);
    if (!found) return null;
    this.hint = found.block;
    return found.n;
  }

  press(id, t, video) {
    const now = performance.timeOrigin + performance.now();
    if (this.pending && now - this.pending.t < PENDING_MS) return; // one at a time
    if (this.pending) this.missed++;
    const vw = video.videoWidth;
    const vh = video.videoHeight;
    const before = vw && vh ? this.look(video, vw, vh) : null;
    this.pending = before === null ? null : { id, t, before, ack: null };
  }

  ack(msg) {
    if (!this.pending || msg.id !== this.pending.id) return;
    if (msg.ok) this.pending.ack = msg;
    else this.pending = null; // refused: nothing will change
  }

  // every presented frame: `frameN` is its frame-marker number (or null), `meta` rVFC's
  onFrame(video, vw, vh, shown, frameN, meta) {
    const p = this.pending;
    if (!p) return;
    if (shown - p.t > PENDING_MS) {
      this.pending = null;
      this.missed++;
      return;
    }
    const n = this.look(video, vw, vh);
    if (n === null || !this.changed(p.before, n)) return;
    this.pending = null;
    const received = meta.receiveTime ? performance.timeOrigin + meta.receiveTime : null;
    // "decode" in its parts (stream/input/latency.py DECODE_PARTS): rVFC's presentationTime is
    // when the decoded frame went to the compositor, processingDuration the decoder's own time
    const presented = meta.presentationTime ? performance.timeOrigin + meta.presentationTime : null;
    const processing = typeof meta.processingDuration === "number" ? 1000 * meta.processingDuration : null;
    const sample = { press: p, shown, received, frameN, presented, processing };
    const msg = frameN !== null ? this.state.frames.get(frameN) : undefined;
    if (msg || frameN === null) this.finish(sample, msg);
    else {
      this.waiting.set(frameN, sample);
      setTimeout(() => {
        if (this.waiting.delete(frameN)) this.finish(sample, undefined);
      }, 500);
    }
  }

  // a frame message arrived: a sample may have been waiting for it
  onFrameMessage(n, msg) {
    const sample = this.waiting.get(n);
    if (sample) {
      this.waiting.delete(n);
      this.finish(sample, msg);
    }
  }

  finish({ press, shown, received, frameN, presented, processing }, msg) {
    const off = this.state.clockOffset; // server ms - page ms
    const s = { total: shown - press.t, frame: frameN };
    const a = press.ack;
    if (a && a.t_recv) {
      s.transit = a.t_recv - (press.t + off);
      if (a.t_injected) s.inject = a.t_injected - a.t_recv;
    }
    if (msg) {
      const st = msg.stages || {};
      const capture = st.capture || 0;
      if (a && a.t_injected) s.to_capture = msg.t_src - a.t_injected;
      if (st.capture !== undefined) s.capture = capture;
      if (st.source_to_processed !== undefined) {
        s.pipeline = st.source_to_processed - capture;
        s.encode = msg.t_sent - msg.t_src - st.source_to_processed;
      }
      if (received !== null) {
        s.network = received + off - msg.t_sent;
        s.decode = shown - received;
        if (presented !== null && processing !== null) {
          s.waiting = presented - processing - received;
          s.decoding = processing;
          s.render = shown - presented;
        }
      } else {
        s.network = shown + off - msg.t_sent; // network and decode together
      }
    }
    for (const k of Object.keys(s)) if (typeof s[k] === "number") s[k] = Math.round(s[k] * 100) / 100;
    this.samples.push(s);
    if (this.samples.length > KEEP) this.samples.shift();
    if (this.onSample) this.onSample(s);
  }
}
