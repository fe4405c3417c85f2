// framesmith viewer: plays the WHEP stream, shows a Moonlight-style stats overlay with the
// glass-to-glass latency read from the frame marker, a split compare (CNN vs bilinear), a
// mode switch, and sends keyboard/mouse input to the server over the data channel (input.js),
// with click-to-photon measured when the picture carries an input counter (clicks.js).

import { authHeaders, refusal } from "./auth.js";
import { ClickToPhoton } from "./clicks.js";
import { ClipboardBridge } from "./clipboard.js";
import { GamepadInput } from "./gamepad.js";
import { PlayerInput, showControl } from "./input.js";
import { readMarker, MODULO } from "./marker.js";
import { showPreparing } from "./preparing.js";
import { Placement } from "./render.js";
import { GameSound } from "./sound.js";
import { TouchInput } from "./touch.js";
import { WhepSession } from "./whep.js";

const $ = (id) => document.getElementById(id);
const video = $("main");
const side = $("side");
const overlay = $("overlay");
const statusEl = $("status");
const params = new URLSearchParams(location.search);

const state = {
  session: null,
  hello: {},
  clockOffset: 0, // server ms - client ms
  bestRtt: Infinity,
  frames: new Map(), // marker n (mod 2^16) -> frame message from the server
  pending: new Map(), // marker n -> display time (client epoch ms), waiting for its message
  latencies: [], // glass-to-glass ms, recent
  latencyWindow: 300,
  markerHint: 0,
  markersRead: 0,
  markersMissed: 0,
  lastFrame: null,
  stats: {},
  prevStats: null,
};

// exposed for tests and the console
window.framesmith = state;
state.c2p = new ClickToPhoton(state);
state.c2p.onSample = (s) => {
  if (state.session) state.session.send({ type: "c2p", ...s });
};

const sound = new GameSound({ audio: $("sound-out"), button: $("sound"), meter: $("level") });
state.sound = sound;
// where the model upscales: the server, or this page's WebGPU canvas (render.js)
const placement = new Placement({
  video,
  send: (msg) => state.session && state.session.send(msg),
  select: $("placement"),
  onStatus: setStatus,
});
state.render = placement;
const codecSel = $("codec");
const compareBox = $("compare");
codecSel.value = params.get("codec") || "vp8";
compareBox.checked = params.get("compare") === "1";

function setStatus(text) {
  statusEl.textContent = text;
}

async function connect() {
  if (state.session) state.session.close();
  state.frames.clear();
  state.pending.clear();
  state.latencies = [];
  state.prevStats = null;
  const compare = compareBox.checked;
  const s = new WhepSession({ codec: codecSel.value, videos: compare ? 2 : 1 });
  state.session = s;
  side.hidden = !compare;
  $("split").hidden = !compare;
  $("slider").hidden = !compare;
  s.onTrack = (index, stream) => {
    const el = index === 0 ? video : side;
    el.srcObject = stream;
    el.play().catch(() => {});
  };
  sound.none();
  s.onAudio = (stream) => sound.attach(stream); // the game's sound (sound.js)
  s.onState = (st) => setStatus(st);
  s.onMessage = onMessage;
  s.onOpen = () => {
    for (let i = 0; i < 5; i++) setTimeout(ping, 100 * i);
  };
  setStatus("connecting…");
  try {
    await s.start();
  } catch (e) {
    setStatus(String(e));
    console.error(e);
  }
}

function ping() {
  if (state.session) state.session.send({ type: "ping", t: performance.timeOrigin + performance.now() });
}

function onMessage(msg) {
  if (msg.type === "frame") {
    const key = msg.n % MODULO;
    state.frames.set(key, msg);
    state.lastFrame = msg;
    if (state.frames.size > 600) state.frames.delete(state.frames.keys().next().value);
    const shown = state.pending.get(key);
    if (shown !== undefined) {
      state.pending.delete(key);
      addLatency(shown, msg);
    }
    state.c2p.onFrameMessage(key, msg);
  } else if (msg.type === "input_ack") {
    state.c2p.ack(msg);
    if (!msg.ok) setStatus(`input refused: ${msg.reason}`);
  } else if (msg.type === "clipboard") {
    clip.received(msg); // an X client copied
  } else if (msg.type === "placement") {
    placement.onAnswer(msg);
  } else if (msg.type === "preparing") {
    showPreparing(msg); // a model being made ready while a cheap mode serves
  } else if (msg.type === "control") {
    state.control = msg;
    showControl(msg, $("take"), $("control"));
  } else if (msg.type === "pong") {
    const now = performance.timeOrigin + performance.now();
    const rtt = now - msg.t;
    if (rtt < state.bestRtt * 1.2 || state.bestRtt === Infinity) {
      state.bestRtt = Math.min(rtt, state.bestRtt);
      state.clockOffset = msg.server - (msg.t + rtt / 2);
    }
  } else if (msg.type === "hello") {
    state.hello = msg;
    const sel = $("mode");
    sel.innerHTML = "";
    for (const m of msg.modes || []) {
      const o = document.createElement("option");
      o.textContent = m === "model" ? `model (${msg.model || "CNN"})` : m.replace(/^model:/, "model ");
      o.value = m;
      sel.appendChild(o);
    }
    sel.value = msg.mode;
    sel.disabled = !(msg.may || ["admin"]).includes("admin"); // only admins switch the mode
    $("label-left").textContent = msg.mode.startsWith("model") ? "CNN" : msg.mode;
    compareBox.disabled = !msg.compare;
    if ((msg.may || []).includes("play") && msg.gamepad) pads.start(); // players' pads
    clip.enabled = (msg.may || []).includes("play") && !!msg.clipboard;
    showPreparing(msg.preparing);
    placement.onHello(msg);
  }
}

function addLatency(shownEpochMs, msg) {
  const g2g = shownEpochMs + state.clockOffset - msg.t_src;
  if (g2g > -50 && g2g < 10000) {
    state.latencies.push(g2g);
    if (state.latencies.length > state.latencyWindow) state.latencies.shift();
  }
}

// -- marker reading on every presented frame ---------------------------------------------------

const canvas = document.createElement("canvas");
const ctx = canvas.getContext("2d", { willReadFrequently: true });

function onVideoFrame(now, meta) {
  const vw = meta.width || video.videoWidth;
  const vh = meta.height || video.videoHeight;
  if (vw && vh) {
    const sw = vw;
    const sh = Math.min(vh, Math.ceil(vh * 0.2) + 4);
    if (canvas.width !== sw || canvas.height !== sh) {
      canvas.width = sw;
      canvas.height = sh;
    }
    ctx.drawImage(video, 0, 0, sw, sh, 0, 0, sw, sh);
    const found = readMarker(ctx.getImageData(0, 0, sw, sh), vh, state.markerHint);
    const shown = performance.timeOrigin + (meta.expectedDisplayTime || now);
    state.c2p.onFrame(video, vw, vh, shown, found ? found.n : null, meta);
    if (found) {
      state.markerHint = found.block;
      state.markersRead++;
      const msg = state.frames.get(found.n);
      if (msg) addLatency(shown, msg);
      else {
        state.pending.set(found.n, shown);
        if (state.pending.size > 120) state.pending.delete(state.pending.keys().next().value);
      }
    } else {
      state.markersMissed++;
    }
  }
  video.requestVideoFrameCallback(onVideoFrame);
}

if ("requestVideoFrameCallback" in HTMLVideoElement.prototype) {
  video.requestVideoFrameCallback(onVideoFrame);
}

// -- stats overlay -----------------------------------------------------------------------------

function percentile(values, p) {
  if (!values.length) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

async function pollStats() {
  const pc = state.session && state.session.pc;
  if (!pc) return;
  const report = await pc.getStats();
  let inbound = null;
  let codec = null;
  let pair = null;
  report.forEach((r) => {
    if (r.type === "inbound-rtp" && r.kind === "video" && (!inbound || r.mid === "0")) inbound = r;
    if (r.type === "candidate-pair" && r.nominated && r.state === "succeeded") pair = r;
  });
  if (inbound && inbound.codecId) codec = report.get(inbound.codecId);
  const t = performance.now();
  const prev = state.prevStats;
  const s = {};
  if (inbound) {
    s.width = inbound.frameWidth;
    s.height = inbound.frameHeight;
    s.framesDecoded = inbound.framesDecoded;
    s.framesDropped = inbound.framesDropped || 0;
    s.freezeCount = inbound.freezeCount || 0;
    s.packetsLost = inbound.packetsLost || 0;
    s.jitterBufferMs = inbound.jitterBufferEmittedCount
      ? (1000 * inbound.jitterBufferDelay) / inbound.jitterBufferEmittedCount : NaN;
    s.decodeMs = inbound.framesDecoded ? (1000 * inbound.totalDecodeTime) / inbound.framesDecoded : NaN;
    if (prev && prev.inbound) {
      const dt = (t - prev.t) / 1000;
      s.fps = (inbound.framesDecoded - prev.inbound.framesDecoded) / dt;
      s.kbps = (8 * (inbound.bytesReceived - prev.inbound.bytesReceived)) / dt / 1000;
      const dj = inbound.jitterBufferEmittedCount - prev.inbound.jitterBufferEmittedCount;
      if (dj > 0) s.jitterBufferMs = (1000 * (inbound.jitterBufferDelay - prev.inbound.jitterBufferDelay)) / dj;
    }
  }
  s.codec = codec ? codec.mimeType.replace("video/", "") : "?";
  s.rttMs = pair && pair.currentRoundTripTime !== undefined ? 1000 * pair.currentRoundTripTime : NaN;
  s.g2gMedian = percentile(state.latencies, 50);
  s.g2gP95 = percentile(state.latencies, 95);
  s.g2gLast = state.latencies.length ? state.latencies[state.latencies.length - 1] : NaN;
  s.g2gSamples = state.latencies.length;
  s.markersRead = state.markersRead;
  s.markersMissed = state.markersMissed;
  s.clockOffsetMs = state.clockOffset;
  const totals = state.c2p.samples.map((c) => c.total);
  s.c2pMedian = percentile(totals, 50);
  s.c2pP95 = percentile(totals, 95);
  s.c2pSamples = totals.length;
  state.prevStats = { t, inbound };
  state.stats = s;
  render(s);
  if (state.session) state.session.send({ type: "report", ...roundAll(s) });
}

function roundAll(s) {
  const out = {};
  for (const [k, v] of Object.entries(s)) out[k] = typeof v === "number" && isFinite(v) ? Math.round(v * 10) / 10 : v;
  return out;
}

const f1 = (v, unit = "") => (typeof v === "number" && isFinite(v) ? `${v.toFixed(1)}${unit}` : "–");

function render(s) {
  const fr = state.lastFrame;
  const st = (fr && fr.stages) || {};
  const stage = (k) => f1(st[k], " ms");
  const enc = st.encode_vp8 !== undefined ? st.encode_vp8 : st.encode_h264;
  overlay.textContent = [
    `${s.width || "?"}x${s.height || "?"}  ${f1(s.fps)} fps  ${s.codec}  ${f1(s.kbps / 1000)} Mbit/s`,
    `glass-to-glass  ${f1(s.g2gMedian, " ms")} median  ${f1(s.g2gP95, " ms")} p95  (${s.g2gSamples})`,
    `jitter buffer   ${f1(s.jitterBufferMs, " ms")}   decode ${f1(s.decodeMs, " ms")}`,
    `dropped ${s.framesDropped ?? "–"}  freezes ${s.freezeCount ?? "–"}  lost ${s.packetsLost ?? "–"}  rtt ${f1(s.rttMs, " ms")}`,
    `server: ${st.capture !== undefined ? `capture ${stage("capture")} ` : ""}upload ${stage("upload")} gpu ${stage("gpu")} readback ${stage("readback")}`,
    `        pipeline ${stage("pipeline")} encode ${f1(enc, " ms")} send ${f1(fr && fr.server_ms, " ms")}`,
    placement.line(),
    `mode ${(fr && fr.mode) || state.hello.mode || "?"}  scale ${fr && fr.scale ? Math.round(fr.scale * 100) : "?"}%  source ${state.hello.source || "?"}  markers ${s.markersRead}/${s.markersRead + s.markersMissed}`,
    ...c2pLines(s),
  ].join("\n");
}

// click-to-photon and the median of each stage (stream/input/latency.py names them)
function c2pLines(s) {
  if (!s.c2pSamples) return [];
  const med = (k) => f1(percentile(state.c2p.samples.filter((c) => k in c).map((c) => c[k]), 50));
  return [
    `click-to-photon ${f1(s.c2pMedian, " ms")} p50  ${f1(s.c2pP95, " ms")} p95  (${s.c2pSamples})`,
    `  transit ${med("transit")} inject ${med("inject")} to capture ${med("to_capture")} capture ${med("capture")}`,
    `  pipeline ${med("pipeline")} encode ${med("encode")} network ${med("network")} decode ${med("decode")}`,
  ];
}

setInterval(() => pollStats().catch((e) => console.warn(e)), 1000);
setInterval(ping, 2000);

// -- controls ----------------------------------------------------------------------------------

$("connect").onclick = connect;
codecSel.onchange = connect;
compareBox.onchange = connect;
$("toggle-overlay").onclick = () => overlay.classList.toggle("hidden");
$("mode").onchange = async (ev) => {
  const resp = await fetch("api/mode", {
    method: "POST",
    headers: authHeaders({ "Content-Type": "application/json" }),
    body: JSON.stringify({ mode: ev.target.value }),
  });
  if (!resp.ok) setStatus(`mode: ${refusal(resp.status, await resp.text())}`);
  if (resp.ok) {
    const d = await resp.json();
    state.hello.mode = d.mode;
    $("label-left").textContent = d.mode.startsWith("model") ? "CNN" : d.mode;
  }
};
const slider = $("slider");
function applySplit() {
  const x = Number(slider.value);
  side.style.clipPath = `inset(0 0 0 ${x}%)`;
  document.querySelector("#split .handle").style.left = `${x}%`;
}
slider.oninput = applySplit;
applySplit();

// -- input to the server -----------------------------------------------------------------------

const stage = $("stage");
const player = new PlayerInput({
  stage,
  video,
  // not while another player controls (the server would refuse it): take control first
  send: (msg) => {
    const c = state.control;
    if (c && (!c.allowed || (c.mode === "single" && c.controller === "other"))) return;
    if (state.session) state.session.send(msg);
  },
  onPress: (id, t) => state.c2p.press(id, t, video),
  display: () => placement.display, // the canvas while this page upscales
});
player.attach();
new TouchInput(player).attach(); // tap = click, drag = move, two fingers = wheel
// pads (gamepad.js), for players while no one else controls
const mayPlay = () => {
  const c = state.control;
  return !(c && (!c.allowed || (c.mode === "single" && c.controller === "other")));
};
const pads = new GamepadInput({
  send: (msg) => state.session && state.session.send(msg),
  allowed: mayPlay,
  onStatus: setStatus,
});
state.pads = pads;
const clip = new ClipboardBridge({ player, send: (msg) => player.send(msg), onStatus: setStatus });
clip.attach();
state.clipboard = clip;
stage.addEventListener("keydown", (ev) => {
  if (ev.key === "F2") overlay.classList.toggle("hidden");
});
$("take").onclick = () => state.session && state.session.send({ type: "control", take: true });
$("lock").onchange = (ev) => {
  player.lockWanted = ev.target.checked;
  if (!player.lockWanted && document.pointerLockElement) document.exitPointerLock();
};

// -- leaving -----------------------------------------------------------------------------------

window.addEventListener("pagehide", () => {
  if (state.session) state.session.close({ keepalive: true });
});

connect();
