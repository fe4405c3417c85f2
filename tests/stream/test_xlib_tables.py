"""python-xlib connections to two different X servers in one process (Xvfb, then Xtigervnc:
their extensions number events differently) each keep their own extension tables."""

from __future__ import annotations

import subprocess
import time

import pytest

from stream import xlib_tables
from stream.sources.xdamage import DamageWatch
from stream.tools.xvfb import Xvfb

from .xhelpers import need, needs_xvfb


@needs_xvfb
@pytest.mark.timeout(60)
def test_two_kinds_of_x_server_in_one_process():
    xlib_tables.check()
    vnc = need("Xtigervnc")
    display = ":4072"
    proc = subprocess.Popen(
        [vnc, display, "-geometry", "320x180", "-SecurityTypes", "None", "-localhost",
         "-rfbport", "0", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        with Xvfb(320, 180) as x:
            a = xlib_tables.open_display(x.display)
            watch_a = DamageWatch(x.display)
            deadline = time.monotonic() + 15
            while True:
                try:
                    b = xlib_tables.open_display(display)
                    break
                except Exception:  # noqa: BLE001 - Xtigervnc still starting
                    assert time.monotonic() < deadline, "Xtigervnc did not start"
                    time.sleep(0.2)
            watch_b = DamageWatch(display)
            assert a.display.event_classes is not b.display.event_classes
            # each connection decodes its own server's extension events: damage on both
            for d, watch in ((a, watch_a), (b, watch_b)):
                root = d.screen().root
                gc = root.create_gc(foreground=0xFFFFFF, subwindow_mode=1)
                root.fill_rectangle(gc, 0, 0, 50, 50)
                d.flush()
                assert watch.wait(5.0), f"no DamageNotify from {d.get_display_name()}"
            for d in (a, b):
                d.close()
            watch_a.close()
            watch_b.close()
    finally:
        proc.terminate()
        proc.wait(10)
