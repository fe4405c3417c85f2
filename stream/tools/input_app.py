"""A small X client that shows every input it gets: the "game" of the remote-play tests and
the click-to-photon benchmark (python-xlib only, no toolkit, no window manager needed).

    python -m stream.tools.input_app :1 [--log events.jsonl]

A window covers the display. Each button or key press adds one to a counter, drawn at once
as the frame-number marker's pattern (stream/sources/marker.py: same blocks, same check bits)
with its top-left corner at the left edge, half-way down (INPUT_MARKER_Y), so the marker
the service may stamp top-left never covers it; the viewer page and the tests read it with
the same reader. A cross marks the last click and a bar the last key. Every event is one
JSON line (with the wall-clock time it arrived) on stdout or in --log, so a test can tell
"the event reached the client" from "the effect reached the picture".
"""

from __future__ import annotations

import argparse
import json
import select
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from Xlib import XK, X
from Xlib import display as xdisplay

from ..sources import marker
from .xvfb import stop_process

INPUT_MARKER_Y = 0.5  # the input counter's top edge, as a fraction of the picture's height
BACKGROUND = 0x303030


def read_input_marker(luma: np.ndarray) -> int | None:
    """The input counter (mod 2**16) in a picture's luma plane, at any integer scale."""
    h = luma.shape[0]
    return marker.read(luma[int(h * INPUT_MARKER_Y) :])


class InputApp:
    def __init__(self, display: str | None, log: TextIO) -> None:
        self.d = xdisplay.Display(display)
        screen = self.d.screen()
        self.root = screen.root
        g = self.root.get_geometry()
        self.w, self.h = g.width, g.height
        self.log = log
        self.win = self.root.create_window(
            0,
            0,
            self.w,
            self.h,
            0,
            screen.root_depth,
            X.InputOutput,
            X.CopyFromParent,
            background_pixel=BACKGROUND,
            override_redirect=True,
            event_mask=X.ExposureMask
            | X.ButtonPressMask
            | X.ButtonReleaseMask
            | X.KeyPressMask
            | X.KeyReleaseMask
            | X.PointerMotionMask
            | X.StructureNotifyMask,
        )
        self.root.change_attributes(event_mask=X.StructureNotifyMask)
        self.win.set_wm_name("framesmith-input-app")
        self.gc = self.win.create_gc(foreground=0xFFFFFF, background=0)
        self.counter = 0
        self.click: tuple[int, int] | None = None
        self.key_bar = 0
        self.win.map()
        # no window manager on a bare Xvfb: take the keyboard focus ourselves
        self.win.set_input_focus(X.RevertToParent, X.CurrentTime)
        self.d.sync()
        self.draw()
        self.emit({"type": "ready", "w": self.w, "h": self.h})

    def emit(self, obj: dict[str, Any]) -> None:
        obj.setdefault("t", time.time())
        self.log.write(json.dumps(obj) + "\n")
        self.log.flush()

    def _fill(self, colour: int, rects: list[tuple[int, int, int, int]]) -> None:
        if rects:
            self.gc.change(foreground=colour)
            self.win.poly_fill_rectangle(self.gc, rects)

    def draw(self) -> None:
        b = marker.block_size(self.h)
        y0 = int(self.h * INPUT_MARKER_Y)
        self._fill(0x000000, [(0, y0, (marker.BLOCKS + 2) * b, 3 * b)])
        bits = marker.bits_of(self.counter)
        self._fill(0xFFFFFF, [((k + 1) * b, y0 + b, b, b) for k, bit in enumerate(bits) if bit])
        # the last key: a bar whose length changes with each key; the last click: a cross
        bar_y = y0 + 4 * b
        self._fill(BACKGROUND, [(0, bar_y, self.w, b)])
        self._fill(0x40C0FF, [(0, bar_y, self.key_bar % max(1, self.w), b)])
        if self.click is not None:  # never over the counter (a click may land on it)
            x, y = self.click
            box_w, box_h = (marker.BLOCKS + 2) * b + 8, 3 * b + 8
            if not (x < box_w and y0 - 8 <= y < y0 + box_h):
                self._fill(0xFFD040, [(x - 6, y, 13, 1), (x, y - 6, 1, 13)])
        self.d.flush()

    def run(self) -> None:
        while True:
            if not self.d.pending_events():
                select.select([self.d.fileno()], [], [], 1.0)
                if not self.d.pending_events():
                    continue
            ev = self.d.next_event()
            t = time.time()
            if ev.type == X.Expose:
                if ev.count == 0:
                    self.draw()
            elif ev.type == X.ButtonPress:
                self.counter += 1
                if ev.detail in (1, 2, 3):
                    self.click = (ev.event_x, ev.event_y)
                self.draw()
                self.emit(
                    {
                        "t": t,
                        "type": "button",
                        "button": ev.detail,
                        "x": ev.event_x,
                        "y": ev.event_y,
                        "counter": self.counter,
                    }
                )
            elif ev.type == X.KeyPress:
                self.counter += 1
                keysym = self.d.keycode_to_keysym(ev.detail, 1 if ev.state & X.ShiftMask else 0)
                self.key_bar = (self.key_bar + 37) % max(1, self.w)
                self.draw()
                self.emit(
                    {
                        "t": t,
                        "type": "key",
                        "keycode": ev.detail,
                        "state": ev.state,
                        "keysym": keysym,
                        "name": XK.keysym_to_string(keysym),
                        "counter": self.counter,
                    }
                )
            elif ev.type == X.KeyRelease:
                self.emit({"t": t, "type": "keyup", "keycode": ev.detail})
            elif ev.type == X.ButtonRelease:
                self.emit({"t": t, "type": "buttonup", "button": ev.detail})
            elif ev.type == X.MotionNotify:
                self.emit({"t": t, "type": "motion", "x": ev.event_x, "y": ev.event_y})
            elif ev.type == X.MappingNotify:
                self.d.refresh_keyboard_mapping(ev)
            elif (
                ev.type == X.ConfigureNotify
                and ev.window == self.root
                and ((ev.width, ev.height) != (self.w, self.h))
            ):
                self.w, self.h = ev.width, ev.height
                self.win.configure(width=self.w, height=self.h)
                self.draw()
                self.emit({"type": "resized", "w": self.w, "h": self.h})


class InputAppProcess:
    """The app in a child process (`with InputAppProcess(":1", log) as app:`): its events are
    read back from the log file."""

    def __init__(self, display: str, log: Path) -> None:
        self.display, self.log = display, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 20.0) -> InputAppProcess:
        self.log.write_text("")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stream.tools.input_app", self.display, "--log", str(self.log)]
        )
        self.wait_for(lambda e: e["type"] == "ready", timeout_s)
        return self

    def events(self) -> list[dict[str, Any]]:
        lines = self.log.read_text().splitlines()
        return [json.loads(line) for line in lines if line.endswith("}")]

    def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], timeout_s: float
    ) -> dict[str, Any]:
        """The first event matching `predicate`, waiting up to `timeout_s` (TimeoutError)."""
        deadline = time.monotonic() + timeout_s
        while True:
            for e in self.events():
                if predicate(e):
                    return e
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the input app exited ({self.proc.returncode})")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no such input app event within {timeout_s:g} s")
            time.sleep(0.02)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        stop_process(proc)

    def __enter__(self) -> InputAppProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m stream.tools.input_app", description=__doc__)
    ap.add_argument("display", nargs="?", default=None, help="X display (default $DISPLAY)")
    ap.add_argument("--log", help="append the JSON events here instead of stdout")
    args = ap.parse_args(argv)
    out = open(args.log, "a", buffering=1) if args.log else sys.stdout  # noqa: SIM115
    InputApp(args.display, out).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
