// Player input from the stage: mouse, wheel and keys to the server over the data channel
// (checked there by stream/input/events.py), pointer lock for games that read relative motion,
// and "take control" (one controlling player at a time unless the server says shared).
//
// Coordinates are 0..1 of the picture itself: the <video> letterboxes (object-fit: contain), so
// the bars around the picture are taken off, and a click on a bar is not sent at all.
// Everything held is let go (keyup / mouseup sent) when the page loses focus or the pointer
// lock ends, so no key stays down on the server because the browser swallowed its release.

export class PlayerInput {
  constructor({ stage, video, send, onPress = () => {}, display = () => video }) {
    this.stage = stage;
    this.video = video;
    this.display = display; // the element showing the picture: the <video>, or render.js's canvas
    this.send = send; // (message) => void
    this.onPress = onPress; // (id, tEpochMs) for click-to-photon
    this.keys = new Map(); // code (or key) -> {code, key}
    this.buttons = new Set();
    this.lockWanted = false;
    this.nextId = 1;
    this.lastMove = 0;
    this.moveTimer = null;
    this.pendingMove = null;
    this.rel = { dx: 0, dy: 0, timer: null };
  }

  get locked() {
    return document.pointerLockElement === this.stage;
  }

  // position within the displayed picture, or null on the letterbox bars
  point(ev) {
    const el = this.display();
    const r = el.getBoundingClientRect();
    const vw = el.videoWidth || el.width || r.width; // a canvas's size is its picture's
    const vh = el.videoHeight || el.height || r.height;
    const scale = Math.min(r.width / vw, r.height / vh);
    const w = vw * scale;
    const h = vh * scale;
    const x = (ev.clientX - r.left - (r.width - w) / 2) / w;
    const y = (ev.clientY - r.top - (r.height - h) / 2) / h;
    if (!(x >= 0 && x <= 1 && y >= 0 && y <= 1)) return null;
    return { x, y };
  }

  input(kind, extra, press = false) {
    const msg = { type: "input", kind, t: performance.timeOrigin + performance.now(), ...extra };
    if (press) {
      msg.id = this.nextId++;
      this.onPress(msg.id, msg.t);
    }
    this.send(msg);
  }

  moveAbsolute(ev) {
    const p = this.point(ev);
    if (!p) return;
    const now = performance.now();
    const flush = () => {
      this.moveTimer = null;
      this.lastMove = performance.now();
      if (this.pendingMove) this.input("mousemove", this.pendingMove);
      this.pendingMove = null;
    };
    this.pendingMove = p;
    if (now - this.lastMove >= 16) flush();
    else if (!this.moveTimer) this.moveTimer = setTimeout(flush, 16 - (now - this.lastMove));
  }

  // relative moves are summed, never dropped: at most one message per 8 ms
  moveRelative(ev) {
    this.rel.dx += ev.movementX;
    this.rel.dy += ev.movementY;
    if (this.rel.timer) return;
    this.rel.timer = setTimeout(() => {
      const { dx, dy } = this.rel;
      this.rel = { dx: 0, dy: 0, timer: null };
      if (dx || dy) this.input("mousemove", { relative: true, dx, dy });
    }, 8);
  }

  releaseAll() {
    for (const k of this.keys.values()) this.input("keyup", k);
    for (const b of this.buttons) this.input("mouseup", { button: b });
    this.keys.clear();
    this.buttons.clear();
  }

  attach() {
    const s = this.stage;
    s.addEventListener("mousemove", (ev) => (this.locked ? this.moveRelative(ev) : this.moveAbsolute(ev)));
    s.addEventListener("mousedown", (ev) => {
      s.focus();
      ev.preventDefault();
      if (this.lockWanted && !this.locked) {
        s.requestPointerLock();
        return; // this click only locks
      }
      const p = this.locked ? {} : this.point(ev);
      if (!p) return; // a letterbox bar
      this.buttons.add(ev.button);
      this.input("mousedown", { ...p, button: ev.button }, true);
    });
    s.addEventListener("mouseup", (ev) => {
      if (!this.buttons.delete(ev.button)) return;
      const p = this.locked ? {} : this.point(ev) || {};
      this.input("mouseup", { ...p, button: ev.button });
    });
    s.addEventListener("contextmenu", (ev) => ev.preventDefault());
    s.addEventListener(
      "wheel",
      (ev) => {
        ev.preventDefault();
        const unit = ev.deltaMode === 1 ? 100 / 3 : ev.deltaMode === 2 ? 400 : 1; // lines, pages -> px
        const p = this.locked ? {} : this.point(ev) || {};
        this.input("wheel", { ...p, dx: ev.deltaX * unit, dy: ev.deltaY * unit });
      },
      { passive: false },
    );
    s.addEventListener("keydown", (ev) => {
      if (ev.key === "F2") return; // the overlay's key (app.js)
      ev.preventDefault();
      const id = ev.code || ev.key;
      const held = this.keys.has(id);
      this.keys.set(id, { code: ev.code, key: ev.key });
      this.input("keydown", { code: ev.code, key: ev.key, repeat: ev.repeat || held }, !ev.repeat && !held);
    });
    s.addEventListener("keyup", (ev) => {
      const id = ev.code || ev.key;
      if (!this.keys.delete(id)) return;
      ev.preventDefault();
      this.input("keyup", { code: ev.code, key: ev.key });
    });
    s.addEventListener("blur", () => this.releaseAll());
    window.addEventListener("blur", () => this.releaseAll());
    document.addEventListener("visibilitychange", () => {
      if (document.hidden) this.releaseAll();
    });
    document.addEventListener("pointerlockchange", () => {
      if (!this.locked) this.releaseAll();
    });
  }
}

// the header's "take control" button and status, from the server's {"type": "control"} messages
export function showControl(msg, button, status) {
  if (!msg.allowed) {
    button.hidden = true;
    status.textContent = "viewer only";
    return;
  }
  button.hidden = msg.you || msg.mode === "shared";
  status.textContent =
    msg.mode === "shared" ? "shared control" : msg.you ? "you control" : msg.controller === "other" ? "another player controls" : "nobody controls";
}
