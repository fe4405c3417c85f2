"""XTEST injection into a real Xvfb: our input app logs what arrives; xterm (a client we did
not write) runs a command typed through the DOM key path."""

from __future__ import annotations

import subprocess
import time

import pytest

from stream.input import InjectError, parse_input
from stream.input.policy import InputPolicy
from stream.input.xtest import XTestInjector
from stream.tools.xvfb import Xvfb

from ..xhelpers import game, need, needs_xvfb

pytestmark = [needs_xvfb, pytest.mark.timeout(60)]


def send(inj: XTestInjector, session: str, **msg) -> None:
    inj.send(session, parse_input(msg))


def injector(display: str, policy: InputPolicy | None = None) -> XTestInjector:
    inj = XTestInjector(display, policy=policy)
    assert inj.ready(10), f"no XTEST connection to {display}"
    return inj


def test_pointer_buttons_wheel_and_relative_motion(tmp_path):
    with game(tmp_path) as (x, app):
        inj = injector(x.display)
        # the picture's 0..1 mapped onto the 320x180 display (pixel (0,0) .. (319,179))
        for (nx, ny), want in [
            ((0.5, 0.25), (160, 45)),
            ((1.0, 1.0), (319, 179)),
            ((0, 0), (0, 0)),
        ]:
            send(inj, "s", kind="mousemove", x=nx, y=ny)
            app.wait_for(lambda e, w=want: e["type"] == "motion" and (e["x"], e["y"]) == w, 5)
        send(inj, "s", kind="mousedown", button=2, x=0.75, y=0.2)  # DOM right -> X 3
        send(inj, "s", kind="mouseup", button=2)
        ev = app.wait_for(lambda e: e["type"] == "button", 5)
        assert (ev["button"], ev["x"], ev["y"]) == (3, 240, 36)
        app.wait_for(lambda e: e["type"] == "buttonup" and e["button"] == 3, 5)
        send(inj, "s", kind="wheel", dx=0, dy=120)  # scroll down: one notch, button 5
        send(inj, "s", kind="wheel", dx=-300, dy=0)  # scroll left: buttons 6
        app.wait_for(lambda e: e["type"] == "button" and e["button"] == 5, 5)
        app.wait_for(lambda e: e["type"] == "button" and e["button"] == 6, 5)
        send(inj, "s", kind="mousemove", x=0.5, y=0.5)
        send(inj, "s", kind="mousemove", relative=True, dx=10, dy=-5)
        app.wait_for(lambda e: e["type"] == "motion" and (e["x"], e["y"]) == (170, 85), 5)
        assert not inj.buttons and not inj.keys
        inj.close()


def test_keys_by_code_by_key_and_remapped(tmp_path):
    with game(tmp_path) as (x, app):
        inj = injector(x.display, InputPolicy(unicode=True))  # characters remapped (issue 25)
        for msg in (
            {"code": "KeyA", "key": "a"},
            {"code": "ArrowUp", "key": "ArrowUp"},
            {"code": "F13", "key": "F13"},  # no keycode in the us keymap: a spare one
            {"code": "", "key": "é"},  # the key fallback, Latin-1
            {"code": "", "key": "ж"},  # Unicode keysym, remapped
            {"code": "", "key": "!"},  # shifted: Shift added around the press
        ):
            send(inj, "s", kind="keydown", **msg)
            send(inj, "s", kind="keyup", **msg)
        keys = [e for e in app.events() if e["type"] == "key"]
        deadline = time.monotonic() + 5
        while len(keys) < 7 and time.monotonic() < deadline:  # 6 keys + the added Shift
            time.sleep(0.05)
            keys = [e for e in app.events() if e["type"] == "key"]
        syms = [k["keysym"] for k in keys]
        assert syms[:3] == [ord("a"), 0xFF52, 0xFFCA], syms  # a, Up, F13
        assert syms[3] == 0xE9 and syms[4] == 0x1000436  # é, ж
        assert keys[-1]["name"] == "!" and keys[-1]["state"] & 1  # Shift held
        inj.close()


def test_release_lets_go_of_what_a_session_holds(tmp_path):
    with game(tmp_path) as (x, app):
        inj = injector(x.display)
        send(inj, "a", kind="keydown", code="KeyW", key="w")
        send(inj, "b", kind="keydown", code="KeyW", key="w")  # shared control: both hold W
        send(inj, "a", kind="keydown", code="ShiftLeft", key="Shift")
        send(inj, "a", kind="mousedown", button=0, x=0.9, y=0.1)
        app.wait_for(lambda e: e["type"] == "button", 5)
        inj.release("a")
        app.wait_for(lambda e: e["type"] == "buttonup", 5)
        app.wait_for(lambda e: e["type"] == "keyup" and e["keycode"] == 50, 5)  # Shift_L
        time.sleep(0.3)
        w_ups = [e for e in app.events() if e["type"] == "keyup" and e["keycode"] == 25]
        assert w_ups == []  # b still holds W
        inj.release("b")
        app.wait_for(lambda e: e["type"] == "keyup" and e["keycode"] == 25, 5)
        assert not inj.keys and not inj.buttons
        inj.close()


def test_a_lost_display_is_an_error_then_reconnects(tmp_path):
    x = Xvfb(320, 180)
    x.start()
    try:
        inj = injector(x.display)
        send(inj, "s", kind="keydown", code="KeyQ", key="q")
        x.kill()
        with pytest.raises(InjectError, match="went away|not reachable|cannot open"):
            for _ in range(50):  # the first writes may still fit the socket's buffer
                send(inj, "s", kind="mousemove", x=0.5, y=0.5)
                time.sleep(0.02)
        assert not inj.keys  # nothing is held on a server that is gone
        again = Xvfb(320, 180, display=x.display)
        again.start()
        try:
            time.sleep(1.1)  # reconnects at most once a second, in a thread
            assert inj.ready(10)
            send(inj, "s", kind="mousemove", x=0.5, y=0.5)
            assert inj.lost == 1 and inj.d is not None
        finally:
            inj.close()
            again.stop()
    finally:
        x.stop()


def test_typing_into_xterm_runs_a_command(tmp_path):
    xterm = need("xterm")
    out = tmp_path / "typed.txt"
    with Xvfb(640, 360) as x:
        term = subprocess.Popen(
            [xterm, "-geometry", "100x30+0+0", "-e", "sh"],
            env={"DISPLAY": x.display, "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        )
        try:
            inj = injector(x.display)
            deadline = time.monotonic() + 20  # xterm maps its window (keys before are lost)
            while not [w for w in inj.root.query_tree().children if w.get_attributes().map_state]:
                assert time.monotonic() < deadline, "xterm never mapped its window"
                time.sleep(0.1)
            time.sleep(0.3)
            send(inj, "s", kind="mousemove", x=0.3, y=0.3)  # no WM: focus follows the pointer
            for ch in f"echo hi-$((6*7)) > {out}":
                code = f"Key{ch.upper()}" if ch.isalpha() and ch.islower() else ""
                send(inj, "s", kind="keydown", code=code, key=ch)
                send(inj, "s", kind="keyup", code=code, key=ch)
            send(inj, "s", kind="keydown", code="Enter", key="Enter")
            send(inj, "s", kind="keyup", code="Enter", key="Enter")
            deadline = time.monotonic() + 10
            while not (out.exists() and out.read_text()) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert out.read_text() == "hi-42\n"
            inj.close()
        finally:
            term.kill()
            term.wait(5)


def test_a_display_that_stops_reading_is_refused_not_waited_for(tmp_path):
    """A hung X server (SIGSTOP) neither freezes the caller (the service's event loop) nor
    makes it buffer without end."""
    import os
    import signal

    with game(tmp_path) as (x, _app):
        inj = injector(x.display)
        os.kill(x.proc.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            with pytest.raises(InjectError, match="not reading"):
                for _ in range(20_000):  # ~1 MB of motion: far more than a socket buffers
                    send(inj, "s", kind="mousemove", x=0.5, y=0.5)
            assert time.monotonic() - t0 < 10
        finally:
            os.kill(x.proc.pid, signal.SIGCONT)
        inj.close()
