"""Screen changes of an X display, from the DAMAGE extension (python-xlib): grab on change.

Why: with a fixed capture tick, a click waits for the next tick, half an interval on average
(0-33 ms at 30 fps; measured injection -> captured frame 16.7 ms p50, 33.9 ms p95). Grabbing
as soon as the display reports damage took that to 3.05 ms p50 / 6.9 ms p95 for mostly static
screens (desktop apps, menus, turn-based games), and an idle screen costs no capture at all
(/work/scratch/x11/REPORT.md). A game that redraws all the time damages every frame, and
capture falls back to the rate cap. Damage on the root window covers every window drawn into.
"""

from __future__ import annotations

import contextlib
import select
import time

from Xlib import error as xerror
from Xlib.ext import damage

from ..xlib_tables import open_display
from .xshm import XServerLost

_LOST = (xerror.ConnectionClosedError, xerror.DisplayError, OSError)


class DamageWatch:
    """`wait(timeout)`: True as soon as something was drawn since the last call."""

    def __init__(self, display: str) -> None:
        try:
            self.d = open_display(display)
            if not self.d.has_extension("DAMAGE"):
                self.d.close()
                raise XServerLost(f"X display {display} has no DAMAGE extension")
            self.d.damage_query_version()  # required before any other DAMAGE request
            self.root = self.d.screen().root
            self.handle = self.root.damage_create(damage.DamageReportNonEmpty)
            self.d.flush()
        except _LOST as e:
            raise XServerLost(f"cannot watch X display {display} for changes: {e}") from None
        self.display = display
        self.events = 0

    def wait(self, timeout_s: float) -> bool:
        """Block up to `timeout_s`; True when the display changed (and re-arm)."""
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                changed = False
                while self.d.pending_events():
                    if self.d.next_event().__class__.__name__ == "DamageNotify":
                        changed = True
                        self.events += 1
                if changed:
                    self.d.damage_subtract(self.handle)
                    self.d.flush()
                    return True
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self.d.fileno()], [], [], left)[0]:
                    return False
        except _LOST as e:
            raise XServerLost(f"X server {self.display} went away ({e})") from None

    def close(self) -> None:
        with contextlib.suppress(*_LOST):
            self.d.close()
