// Touch drives the pointer, so a phone can play: a tap is a left click where the finger was, a
// one-finger drag moves the pointer (no button held: a drag that clicked at its start would
// click whatever the finger first touched), two fingers scroll (the wheel, "natural" like the
// phone's own pages: fingers up scroll down). Everything goes through PlayerInput's messages
// (input.js), so the server checks and rates them like the mouse's.

const TAP_MS = 300; // longer than this, or ...
const TAP_PX = 10; // ... further than this, and it is a drag, not a tap

export class TouchInput {
  constructor(player) {
    this.player = player; // PlayerInput: point(), input(), moveAbsolute()
    this.start = null; // {x, y, t} of a single finger
    this.dragging = false;
    this.two = null; // {x, y}: the two fingers' mid-point
  }

  attach() {
    const s = this.player.stage;
    const opts = { passive: false };
    s.addEventListener("touchstart", (ev) => this.touchstart(ev), opts);
    s.addEventListener("touchmove", (ev) => this.touchmove(ev), opts);
    s.addEventListener("touchend", (ev) => this.touchend(ev), opts);
    s.addEventListener("touchcancel", () => this.reset(), opts);
  }

  reset() {
    this.start = null;
    this.dragging = false;
    this.two = null;
  }

  mid(touches) {
    return { x: (touches[0].clientX + touches[1].clientX) / 2, y: (touches[0].clientY + touches[1].clientY) / 2 };
  }

  touchstart(ev) {
    ev.preventDefault(); // no page scroll, zoom or emulated mouse events
    this.player.stage.focus();
    if (ev.touches.length === 1) {
      const t = ev.touches[0];
      this.start = { x: t.clientX, y: t.clientY, t: performance.now() };
      this.dragging = false;
      this.two = null;
    } else if (ev.touches.length === 2) {
      this.start = null; // a second finger: no tap, no drag
      this.two = this.mid(ev.touches);
    }
  }

  touchmove(ev) {
    ev.preventDefault();
    if (ev.touches.length === 2 && this.two) {
      const m = this.mid(ev.touches);
      const dx = this.two.x - m.x;
      const dy = this.two.y - m.y;
      this.two = m;
      if (dx || dy) {
        const p = this.player.point(m) || {};
        this.player.input("wheel", { ...p, dx, dy });
      }
      return;
    }
    if (ev.touches.length !== 1 || !this.start) return;
    const t = ev.touches[0];
    if (!this.dragging && Math.hypot(t.clientX - this.start.x, t.clientY - this.start.y) > TAP_PX) this.dragging = true;
    if (this.dragging) this.player.moveAbsolute(t);
  }

  touchend(ev) {
    ev.preventDefault();
    if (ev.touches.length > 0) return; // a finger is still down
    const s = this.start;
    const tapped = s && !this.dragging && performance.now() - s.t <= TAP_MS;
    this.reset();
    if (!tapped) return;
    const p = this.player.point({ clientX: s.x, clientY: s.y });
    if (!p) return; // a letterbox bar
    this.player.input("mousemove", p);
    this.player.input("mousedown", { ...p, button: 0 }, true);
    this.player.input("mouseup", { ...p, button: 0 });
  }
}
