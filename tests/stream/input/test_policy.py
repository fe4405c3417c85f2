"""The `[input]` policy against a real X server (issue 25: on a desktop display a player token
was a shell): xev, a client we did not write, reports what reaches it; xdotool reports where
the pointer is. The same injector serves the x11 source and the remote agent, and both are
driven here."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import aiohttp
import pytest

from stream.config import InputConfig
from stream.input import InjectError, parse_input
from stream.input.agent import Agent
from stream.input.policy import InputPolicy, PolicyError, parse_chord
from stream.input.xtest import XTestInjector
from stream.tools.xvfb import Xvfb

from ..xhelpers import need, needs_xvfb

pytestmark = [needs_xvfb, pytest.mark.timeout(60)]
GAME = "framesmith-game-window"


class Xev:
    """xev's window at a given place; the keys that reach it, read from its output."""

    def __init__(self, display: str, out: Path, geometry: str, name: str = GAME) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            # unbuffered: xev's stdout is a file, where C buffers it
            [need("stdbuf"), "-o0", need("xev"), "-geometry", geometry, "-name", name]
            + ["-event", "keyboard"],
            env={"DISPLAY": display, "PATH": "/usr/bin:/bin"},
            stdout=out.open("w"),
            stderr=subprocess.STDOUT,
        )
        self.display = display
        deadline = time.monotonic() + 20
        while "Outer window is" not in out.read_text():
            assert time.monotonic() < deadline and self.proc.poll() is None, "xev never came"
            time.sleep(0.05)

    def presses(self) -> list[str]:
        """The keysym names of the KeyPress events xev got, in order."""
        blocks = self.out.read_text().split("\n\n")
        found = (re.search(r"keysym 0x[0-9a-f]+, ([^)]+)\)", b) for b in blocks)
        return [
            m.group(1)
            for b, m in zip(blocks, found, strict=True)
            if m and b.lstrip().startswith("KeyPress")
        ]

    def wait_for(self, name: str, timeout_s: float = 5.0) -> list[str]:
        deadline = time.monotonic() + timeout_s
        while name not in self.presses():
            assert time.monotonic() < deadline, f"{name} never reached xev: {self.presses()}"
            time.sleep(0.05)
        return self.presses()

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(5)


@contextmanager
def xev_in(display: str, tmp_path: Path, geometry: str, name: str = GAME) -> Iterator[Xev]:
    xev = Xev(display, tmp_path / f"xev-{time.monotonic_ns()}.txt", geometry, name)
    try:
        yield xev
    finally:
        xev.stop()


def injector(display: str, **policy) -> XTestInjector:
    inj = XTestInjector(display, policy=InputPolicy.build(**policy))
    assert inj.ready(10), f"no XTEST connection to {display}"
    return inj


def send(inj: XTestInjector, *chord: str, session: str = "s") -> None:
    """Press the keys in order (DOM codes), then let go in reverse; refusals are swallowed
    here (each is counted by the injector)."""
    for code in chord:
        with suppress(InjectError):
            inj.send(session, parse_input({"kind": "keydown", "code": code, "key": ""}))
    for code in reversed(chord):
        inj.send(session, parse_input({"kind": "keyup", "code": code, "key": ""}))


def pointer(display: str) -> tuple[int, int]:
    out = subprocess.run(
        [need("xdotool"), "getmouselocation"],
        env={"DISPLAY": display},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    m = re.match(r"x:(\d+) y:(\d+)", out)
    assert m, out
    return int(m.group(1)), int(m.group(2))


def geometry(display: str) -> tuple[int, int, int, int]:
    """The game window's inside on the root, as xwininfo sees it (xev adds a border and some
    height to what it is asked for)."""
    out = subprocess.run(
        [need("xwininfo"), "-name", GAME],
        env={"DISPLAY": display},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    x, y, w, h, border = (
        int(re.search(rf"{field}:\s+(-?\d+)", out).group(1))  # type: ignore[union-attr]
        for field in ("Absolute upper-left X", "Absolute upper-left Y", "Width", "Height",
                      "Border width")
    )  # fmt: skip
    return x + border, y + border, w, h  # xwininfo's corner is the border's


def wait_rect(inj: XTestInjector, want: object, timeout_s: float = 10.0) -> None:
    assert inj.window is not None
    deadline = time.monotonic() + timeout_s
    while inj.window.rect != want:
        assert time.monotonic() < deadline, f"window rect {inj.window.rect} ({inj.window.why})"
        time.sleep(0.05)


def test_settings_are_checked_and_chords_parse():
    assert parse_chord("Ctrl+Alt+KeyT") == parse_chord("control+alt+t") == {"ctrl", "alt", "t"}
    assert parse_chord("Ctrl++") == {"ctrl", "+"}
    assert InputConfig(keys=["KeyW", "Space"], allow_chords=["Alt+F4"]).allow_chords == ["Alt+F4"]
    for bad in ({"keys": ["Key W"]}, {"allow_chords": ["Alt+"]}, {"allow_chords": ["Alt++F4"]}):
        with pytest.raises(ValueError, match="not a"):
            InputConfig.model_validate(bad)
    with pytest.raises(PolicyError):
        InputPolicy.build(allow_chords=["Ctrl+Alt+Shift Tab"])


def test_pointer_confined_to_the_window_by_name_and_by_id(tmp_path):
    with Xvfb(320, 180) as x, xev_in(x.display, tmp_path, "100x60+50+40") as xev:
        inj = injector(x.display, window=GAME)
        gx, gy, gw, gh = rect = geometry(x.display)
        right, bottom = gx + gw - 1, gy + gh - 1
        deadline = time.monotonic() + 10  # the window is found in a thread: refused till then
        while pointer(x.display) != (right, bottom) and time.monotonic() < deadline:
            with suppress(InjectError):
                inj.send("s", parse_input({"kind": "mousemove", "x": 1.0, "y": 1.0}))
            time.sleep(0.05)
        assert pointer(x.display) == (right, bottom), f"(1, 1) is not the corner of {rect}"
        assert inj.window is not None and inj.window.rect == rect
        for (nx, ny), want in (((1.0, 1.0), (right, bottom)), ((0.0, 0.0), (gx, gy))):
            inj.send("s", parse_input({"kind": "mousemove", "x": nx, "y": ny}))
            assert pointer(x.display) == want
        # pointer lock: relative moves stop at the window's edge (the X server's barriers)
        for dx, dy, want in (
            (5000, 0, (right, gy)),
            (0, 5000, (right, bottom)),
            (-5000, -5000, (gx, gy)),
        ):
            inj.send("s", parse_input({"kind": "mousemove", "relative": True, "dx": dx, "dy": dy}))
            assert pointer(x.display) == want
        # a click with a point lands inside too
        inj.send("s", parse_input({"kind": "mousedown", "button": 0, "x": 1.0, "y": 0.5}))
        inj.send("s", parse_input({"kind": "mouseup", "button": 0}))
        assert pointer(x.display) == (right, gy + int(0.5 * gh))
        assert inj.window is not None
        wid = inj.window._win.id if inj.window._win is not None else 0
        inj.close()

        by_id = injector(x.display, window=hex(wid))
        wait_rect(by_id, rect)
        by_id.send("s", parse_input({"kind": "mousemove", "x": 0.0, "y": 0.0}))
        assert pointer(x.display) == (gx, gy)
        xev.stop()  # the window goes away: input is refused, counted, until it is back
        wait_rect(by_id, None)
        with pytest.raises(InjectError, match="refused"):
            by_id.send("s", parse_input({"kind": "mousemove", "x": 1.0, "y": 1.0}))
        assert by_id.blocked["window"] == 1 and pointer(x.display) == (gx, gy)
        by_id.close()

        by_name = injector(x.display, window=GAME)
        wait_rect(by_name, None)
        with xev_in(x.display, tmp_path, "80x40+200+100"):  # a new window of that name
            nx, ny, nw, nh = again = geometry(x.display)
            wait_rect(by_name, again)
            by_name.send("s", parse_input({"kind": "mousemove", "x": 1.0, "y": 1.0}))
            assert pointer(x.display) == (nx + nw - 1, ny + nh - 1)
        by_name.close()


def test_no_window_policy_clamps_to_the_display(tmp_path):
    with Xvfb(320, 180) as x:
        inj = injector(x.display)
        inj.send("s", parse_input({"kind": "mousemove", "x": 1.0, "y": 1.0}))
        assert pointer(x.display) == (319, 179)
        inj.close()


BLOCKED = [
    ("MetaLeft",),
    ("OSRight",),
    ("ControlLeft", "AltLeft", "KeyT"),
    ("ControlLeft", "AltRight", "Delete"),
    ("ControlRight", "AltLeft", "Backspace"),
    ("AltLeft", "F2"),
    ("AltLeft", "Tab"),
    ("PrintScreen",),
]
NEVER = {"Super_L", "Super_R", "t", "Delete", "BackSpace", "F2", "Tab", "Print"}


def test_desktop_chords_never_reach_a_client_and_ordinary_keys_do(tmp_path):
    with Xvfb(320, 180) as x, xev_in(x.display, tmp_path, "320x180+0+0") as xev:
        inj = injector(x.display)
        inj.send("s", parse_input({"kind": "mousemove", "x": 0.5, "y": 0.5}))  # focus: xev
        for chord in BLOCKED:
            send(inj, *chord)
        send(inj, "ShiftLeft", "KeyA")  # ordinary keys and a harmless chord
        send(inj, "F5")
        send(inj, "KeyZ")  # the last: everything before it has reached xev when it has
        got = xev.wait_for("z")
        assert not NEVER & set(got), got
        assert {"Shift_L", "A", "F5", "z"} <= set(got)
        assert inj.blocked == {"chord": len(BLOCKED)}
        assert not inj.keys  # everything pressed was let go
        inj.close()


def test_chord_order_holds_and_release_order_is_tracked(tmp_path):
    with Xvfb(320, 180) as x, xev_in(x.display, tmp_path, "320x180+0+0") as xev:
        inj = injector(x.display, allow_chords=["Alt+F4"])

        def key(kind: str, code: str, session: str = "s") -> None:
            inj.send(session, parse_input({"kind": kind, "code": code, "key": ""}))

        inj.send("s", parse_input({"kind": "mousemove", "x": 0.5, "y": 0.5}))
        key("keydown", "KeyW")  # W held, then Ctrl and Alt: the server's autorepeat of W
        key("keydown", "ControlLeft")  # would deliver Ctrl+Alt+W, so Alt is refused
        with pytest.raises(InjectError, match="Ctrl\\+Alt"):
            key("keydown", "AltLeft")
        key("keyup", "KeyW")
        key("keyup", "ControlLeft")
        key("keyup", "AltLeft")  # never pressed: nothing to let go
        key("keydown", "AltLeft", "a")  # two players in shared control: X sees Alt+Tab
        with pytest.raises(InjectError, match="Alt\\+tab"):
            key("keydown", "Tab", "b")
        key("keyup", "AltLeft", "a")
        key("keyup", "Tab", "b")  # dropped on the way down: no release either
        key("keydown", "Tab", "b")  # alone it is an ordinary key
        key("keyup", "Tab", "b")
        key("keydown", "AltLeft")
        key("keydown", "F4")  # re-allowed by allow_chords
        key("keyup", "F4")
        key("keyup", "AltLeft")
        key("keydown", "KeyZ")
        key("keyup", "KeyZ")
        got = [k for i, k in enumerate(xev.wait_for("z")) if i == 0 or k != xev.presses()[i - 1]]
        assert got == ["w", "Control_L", "Alt_L", "Tab", "Alt_L", "F4", "z"], got
        assert inj.blocked == {"chord": 2} and not inj.keys
        inj.close()


def test_a_key_allowlist_lets_only_its_keys_through(tmp_path):
    with Xvfb(320, 180) as x, xev_in(x.display, tmp_path, "320x180+0+0") as xev:
        inj = injector(x.display, keys=["KeyW", "Space", "KeyZ"])
        inj.send("s", parse_input({"kind": "mousemove", "x": 0.5, "y": 0.5}))
        for code in ("KeyW", "KeyQ", "Escape", "Space", "KeyZ"):
            send(inj, code)
        assert xev.wait_for("z") == ["w", "space", "z"]
        assert inj.blocked == {"keys": 2}
        inj.close()


@pytest.mark.parametrize("unicode", [False, True])
def test_characters_off_the_keymap_only_with_unicode(tmp_path, unicode):
    with Xvfb(320, 180) as x, xev_in(x.display, tmp_path, "320x180+0+0") as xev:
        inj = injector(x.display, unicode=unicode)
        inj.send("s", parse_input({"kind": "mousemove", "x": 0.5, "y": 0.5}))
        for ch in ("ж", "q"):  # Cyrillic zhe: no keycode in the us keymap
            try:
                inj.send("s", parse_input({"kind": "keydown", "code": "", "key": ch}))
                inj.send("s", parse_input({"kind": "keyup", "code": "", "key": ch}))
            except InjectError as e:
                assert not unicode and "unicode" in str(e)
        got = xev.wait_for("q")
        assert bool({"U0436", "Cyrillic_zhe"} & set(got)) is unicode, got  # xev's names for it
        assert inj.blocked == ({} if unicode else {"unicode": 1})
        inj.close()


def test_the_agent_injects_under_the_same_policy(tmp_path):
    """`python -m stream agent` injects into its own display through the same injector: a
    server that streams Super or Ctrl+Alt+T gets them refused there too."""
    with Xvfb(320, 180) as x, xev_in(x.display, tmp_path, "320x180+0+0") as xev:
        inj = XTestInjector(x.display)  # what the agent builds without --config
        assert inj.ready(10)
        agent = Agent(inj, "http://127.0.0.1:9")
        agent.handle({"type": "input", "session": "s", "kind": "mousemove", "x": 0.5, "y": 0.5})
        for code in ("MetaLeft", "ControlLeft", "AltLeft", "KeyT"):
            agent.handle({"type": "input", "session": "s", "kind": "keydown", "code": code})
        agent.handle({"type": "release", "session": "s"})  # the viewer left: Ctrl, Alt go
        agent.handle({"type": "input", "session": "s", "kind": "keydown", "code": "KeyZ"})
        got = xev.wait_for("z")
        assert not {"Super_L", "t"} & set(got), got
        assert agent.refused == 2 and inj.blocked == {"chord": 2}
        inj.close()


@pytest.mark.gpu
@pytest.mark.timeout(90)
async def test_a_player_of_the_service_gets_the_policy_from_its_config(tmp_path):
    """serve's [input] reaches the injector of its x11 source: a player's Super and Alt+Tab
    over the data channel are refused there (the ack says why), Alt+F4 re-allowed passes."""
    from ..rtc import recv_frames, start_server, whep
    from ..test_remote_play import channel_open, message, x11_config
    from ..test_remote_play import send as send_input
    from ..xhelpers import game

    with game(tmp_path) as (x, app):
        cfg = x11_config(x.display, **{"input.allow_chords": ["Alt+F4"]})
        srv = await start_server(cfg)
        try:
            async with aiohttp.ClientSession() as http:
                v = await whep(http, srv.url, datachannel=True)
                await recv_frames(v.tracks[0], 3, 30)
                await channel_open(v)
                send_input(v, kind="keydown", code="MetaLeft", key="Meta", id=1)
                send_input(v, kind="keyup", code="MetaLeft", key="Meta")
                send_input(v, kind="keydown", code="AltLeft", key="Alt")
                send_input(v, kind="keydown", code="Tab", key="Tab", id=2)
                send_input(v, kind="keydown", code="F4", key="F4", id=3)
                for code in ("F4", "Tab", "AltLeft"):
                    send_input(v, kind="keyup", code=code, key="")
                send_input(v, kind="keydown", code="KeyJ", key="j")
                send_input(v, kind="keyup", code="KeyJ", key="j")
                assert "Super" in (await message(v, lambda m: m.get("id") == 1))["reason"]
                assert "Alt+tab" in (await message(v, lambda m: m.get("id") == 2))["reason"]
                assert (await message(v, lambda m: m.get("id") == 3))["reason"] == ""
                await asyncio.to_thread(
                    app.wait_for, lambda e: e["type"] == "key" and e["keysym"] == ord("j"), 10
                )
                keys = [e["keysym"] for e in app.events() if e["type"] == "key"]
                assert keys == [0xFFE9, 0xFFC1, ord("j")], keys  # Alt_L, F4, j
                assert srv.service.stats()["input"]["x11_blocked"] == {"chord": 2}
                await v.close(http, srv.url)
        finally:
            await srv.close()


def test_the_agent_reads_its_policy_from_a_config(tmp_path, capsys):
    from stream.input.agent import main

    bad = tmp_path / "input.toml"
    bad.write_text('[input]\nallow_chords = ["Alt+Nope Key"]\n')
    assert main(["--display", ":999", "--url", "http://127.0.0.1:9", "--config", str(bad)]) == 2
    assert "allow_chords" in capsys.readouterr().out


def test_keys_wait_for_the_game_window_to_have_the_focus(tmp_path):
    """The operator's terminal has the focus (it started the service): with a window policy a
    player's keys are refused until the game window has it, though the pointer is inside."""
    with (
        Xvfb(320, 180) as x,
        xev_in(x.display, tmp_path, "150x100+0+0") as game,
        xev_in(x.display, tmp_path, "150x100+160+0", name="operator-shell") as shell,
    ):

        def focus(name: str) -> None:
            subprocess.run(
                [need("xdotool"), "search", "--name", name, "windowfocus", "--sync"],
                env={"DISPLAY": x.display},
                check=True,
                timeout=10,
            )

        def press(code: str) -> None:
            inj.send("s", parse_input({"kind": "keydown", "code": code, "key": ""}))
            inj.send("s", parse_input({"kind": "keyup", "code": code, "key": ""}))

        focus("operator-shell")
        inj = injector(x.display, window=GAME)
        corner = geometry(x.display)[:2]
        deadline = time.monotonic() + 10
        while pointer(x.display) != corner:  # found in a thread: refused till then
            assert time.monotonic() < deadline, "the pointer never got into the game window"
            with suppress(InjectError):
                inj.send("s", parse_input({"kind": "mousemove", "x": 0.0, "y": 0.0}))
            time.sleep(0.05)
        with pytest.raises(InjectError, match="focus"):
            press("KeyQ")
        assert inj.blocked.get("focus") == 1
        focus(GAME)
        deadline = time.monotonic() + 10
        while True:
            try:
                press("KeyZ")
                break
            except InjectError:
                assert time.monotonic() < deadline, "the game's focus was never seen"
                time.sleep(0.05)
        assert game.wait_for("z") == ["z"]
        time.sleep(0.2)
        assert shell.presses() == []
        inj.close()
