// Gamepads to the server: the Gamepad API read once a frame (requestAnimationFrame), a pad's
// whole state sent as {"type": "gamepad", "index", "id", "buttons": [17], "axes": [4], "t"}
// when it changes (checked by stream/input/gamepad.py). Only pads with the W3C "standard"
// mapping are sent: the server reads button 0 as A and axis 1 as the left stick's y, which
// other mappings do not promise. At most one message per pad per MIN_MS; a change within
// that time goes with the next frame, so the last state always arrives. A pad that goes away,
// a hidden page and a player who may no longer play send the pad's neutral state, so nothing
// the server pressed for it stays down.

const BUTTONS = 17;
const AXES = 4;
const PADS = 4;
const MIN_MS = 1000 / 60;

const clamp = (v, lo, hi) => (Number.isFinite(v) ? Math.min(hi, Math.max(lo, v)) : 0);
// 3 decimals: analogue noise below that does not make a message
const round = (v) => Math.round(v * 1000) / 1000;

export function padState(gp) {
  const buttons = [];
  for (let i = 0; i < BUTTONS; i++) {
    const b = gp.buttons[i];
    const v = b ? (typeof b === "number" ? b : b.value || (b.pressed ? 1 : 0)) : 0;
    buttons.push(round(clamp(v, 0, 1)));
  }
  const axes = [];
  for (let i = 0; i < AXES; i++) axes.push(round(clamp(gp.axes[i], -1, 1)));
  return { buttons, axes };
}

export class GamepadInput {
  constructor({ send, allowed = () => true, onStatus = () => {} }) {
    this.send = send; // (message) => void
    this.allowed = allowed; // () => bool: this session may play now
    this.onStatus = onStatus;
    this.last = new Map(); // index -> {key, t, id, sent}
    this.running = false;
    this.told = new Set(); // pads told about (non-standard mapping)
    this.sent = 0;
  }

  start() {
    if (this.running || typeof navigator.getGamepads !== "function") return;
    this.running = true;
    const tick = () => {
      if (!this.running) return;
      this.poll();
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
    document.addEventListener("visibilitychange", () => {
      if (document.hidden) this.releaseAll();
    });
    window.addEventListener("gamepaddisconnected", () => this.poll());
  }

  stop() {
    this.running = false;
    this.releaseAll();
  }

  message(index, id, state) {
    return { type: "gamepad", index, id: String(id || "").slice(0, 128), ...state, t: performance.timeOrigin + performance.now() };
  }

  poll() {
    if (!this.allowed()) {
      this.releaseAll();
      return;
    }
    const now = performance.now();
    const seen = new Set();
    for (const gp of navigator.getGamepads() || []) {
      if (!gp || gp.index >= PADS || !gp.connected) continue;
      if (gp.mapping !== "standard") {
        if (!this.told.has(gp.id)) {
          this.told.add(gp.id);
          this.onStatus(`gamepad "${gp.id}" has no standard mapping: not sent`);
        }
        continue;
      }
      seen.add(gp.index);
      const state = padState(gp);
      const key = JSON.stringify(state);
      const prev = this.last.get(gp.index);
      if (prev && prev.key === key) continue;
      if (prev && now - prev.t < MIN_MS) continue; // the next frame sends it
      const atRest = !state.buttons.some((v) => v) && !state.axes.some((v) => Math.abs(v) >= 0.5);
      if (!prev && atRest) continue; // a pad at rest sends nothing until it is used
      this.send(this.message(gp.index, gp.id, state));
      this.sent++;
      this.last.set(gp.index, { key, t: now, id: gp.id });
    }
    for (const index of [...this.last.keys()]) if (!seen.has(index)) this.neutral(index);
  }

  neutral(index) {
    const prev = this.last.get(index);
    this.last.delete(index);
    if (!prev) return;
    this.send(this.message(index, prev.id, { buttons: new Array(BUTTONS).fill(0), axes: new Array(AXES).fill(0) }));
  }

  releaseAll() {
    for (const index of [...this.last.keys()]) this.neutral(index);
  }
}
