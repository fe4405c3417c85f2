"""Real X applications for the click-to-photon bench (`--app`), beside our input app.

Why: our input app draws a counter the page reads and redraws on the press itself; a real
client shows its effect its own way and time. xcalc (Athena Command widgets) acts on the
button *release* and redraws its display; xterm running `cat` echoes a key on its *press*
(the pty's echo). The page watches the region where the effect shows (static/clicks.js
`region`) instead of reading a counter. Positions are fractions of the picture, for the
display size the bench uses (640x360: xcalc fills it; other sizes move xcalc's buttons).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from ..xvfb import stop_process

# a press: ("click", x, y) as fractions of the picture, or ("key", DOM code)
Press = tuple[Any, ...]


@dataclass(frozen=True)
class App:
    name: str
    argv: tuple[str, ...]  # {w} {h}: the display's size
    region: dict[str, float]  # where the effect shows (clicks.js region), clear of the marker
    presses: tuple[Press, ...]  # cycled; each changes the region
    focus: tuple[float, float]  # a click that changes nothing there and gives keys a window
    acts_on: str  # "press" | "release"
    env: dict[str, str] = field(default_factory=dict)


APPS = {
    # 640x360: the display (0 -> 7 -> 0) is the top strip; "7" and "CE/C" alternate
    "xcalc": App(
        "xcalc",
        ("xcalc", "-geometry", "{w}x{h}+0+0"),
        {"x": 0.5, "y": 0.015, "w": 0.47, "h": 0.06, "level": 64, "minPixels": 8},
        (("click", 195 / 640, 261 / 360), ("click", 445 / 640, 69 / 360)),
        (0.995, 0.995),
        "release",
    ),
    # a window of `cat` at (160, 120): "a" echoed, then erased (Backspace, the tty's erase)
    "xterm": App(
        "xterm",
        ("xterm", "-geometry", "30x3+160+120", "-fa", "Monospace", "-fs", "14", "-e", "cat"),
        {"x": 0.25, "y": 0.335, "w": 0.3, "h": 0.16, "level": 64, "minPixels": 8},
        (("key", "KeyA"), ("key", "Backspace")),
        (0.4, 0.45),
        "press",
    ),
}


@contextmanager
def running(app: App, display: str, width: int, height: int) -> Iterator[subprocess.Popen]:
    """The app on `display`, given a second to map its window."""
    argv = [a.format(w=width, h=height) for a in app.argv]
    env = {**os.environ, "DISPLAY": display, **app.env}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.5)
        if proc.poll() is not None:
            raise RuntimeError(f"{app.name} exited ({proc.returncode}) on {display}")
        yield proc
    finally:
        stop_process(proc)
