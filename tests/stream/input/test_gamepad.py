"""Gamepads without a browser: the message checked field by field, the key profile and its
overrides, pads mapped to key events (recorded, then through a real Xvfb), and the uinput
path's bytes against the kernel's struct layout (this machine has no /dev/uinput: the device
itself is not driven here)."""

from __future__ import annotations

import ctypes
import json
import os

import pytest

from stream.config import ConfigError, InputConfig
from stream.config import load as load_config
from stream.input import InjectError, InputError, InputEvent
from stream.input import uinput as ui
from stream.input.gamepad import (
    DEFAULT_KEYS,
    GamepadEvent,
    GamepadSink,
    key_profile,
    parse_gamepad,
    resolve,
)
from stream.input.xtest import XTestInjector

from ..xhelpers import game, needs_xvfb


def pad(index: int = 0, pressed: tuple[int, ...] = (), axes=(0, 0, 0, 0), **extra) -> dict:
    buttons = [1.0 if i in pressed else 0.0 for i in range(17)]
    return {"type": "gamepad", "index": index, "id": "Xbox 360 Controller", "buttons": buttons,
            "axes": list(axes), "t": 1.7e12, **extra}  # fmt: skip


RIGHT, A, START = 15, 0, 9


def test_a_pad_message_is_checked_field_by_field():
    ev = parse_gamepad(pad(2, (A, RIGHT), (0.25, -1, 0, 1)))
    assert (ev.kind, ev.index, ev.pad_id, ev.t) == ("gamepad", 2, "Xbox 360 Controller", 1.7e12)
    assert ev.buttons[0] == 1.0 and ev.axes == (0.25, -1.0, 0.0, 1.0)
    assert ev.controls() == {"a", "right", "ls_up", "rs_down"}
    assert parse_gamepad(json.loads(json.dumps(ev.as_message()))) == ev  # what agents get
    bad = {
        "index": [4, -1, True, "0", None, 1.0],
        "buttons": [[0.0] * 16, [0.0] * 18, [1.5] + [0.0] * 16, [-0.1] + [0.0] * 16,
                    [float("nan")] + [0.0] * 16, [True] + [0.0] * 16, "x" * 17, None],
        "axes": [[0.0] * 3, [0.0] * 5, [2.0, 0, 0, 0], [-1.01, 0, 0, 0],
                 [float("inf"), 0, 0, 0], [None, 0, 0, 0]],
        "id": ["x" * 129, 7, ["a"]],
        "t": [float("nan"), float("inf"), -1, "now", True],
    }  # fmt: skip
    for field, values in bad.items():
        for v in values:
            with pytest.raises(InputError):
                parse_gamepad({**pad(), field: v})
    assert parse_gamepad({**pad(), "id": "x" * 128}).pad_id == "x" * 128


def test_the_key_profile_and_its_overrides():
    assert key_profile() == DEFAULT_KEYS
    assert DEFAULT_KEYS["right"] == DEFAULT_KEYS["ls_right"] == "ArrowRight"
    assert (DEFAULT_KEYS["a"], DEFAULT_KEYS["b"], DEFAULT_KEYS["x"]) == (
        "Space", "ControlLeft", "ShiftLeft",
    )  # fmt: skip
    assert (DEFAULT_KEYS["y"], DEFAULT_KEYS["start"], DEFAULT_KEYS["back"]) == (
        "AltLeft", "Enter", "Escape",
    )  # fmt: skip
    p = key_profile({"a": "KeyZ", "1": "KeyX", "back": "", "rs_up": "KeyW"})
    assert (p["a"], p["b"], p["rs_up"]) == ("KeyZ", "KeyX", "KeyW") and "back" not in p
    assert key_profile({"a": "MouseMiddle"})["a"] == "MouseMiddle"
    for bad in ({"turbo": "KeyZ"}, {"17": "KeyZ"}, {"a": "Nope"}, {"a": "z"}, {"a": "Mouse4"}):
        with pytest.raises(ValueError):
            key_profile(bad)
    assert InputConfig(gamepad_keys={"a": "KeyZ"}).gamepad_keys == {"a": "KeyZ"}
    with pytest.raises(ConfigError, match="turbo"):
        load_config(None, {"input.gamepad_keys": {"turbo": "KeyZ"}})
    with pytest.raises(ConfigError):
        load_config(None, {"input.gamepad": "joystick"})
    assert load_config(None, {}).input.gamepad == "auto"


class Recorder:
    """An inner sink that records what it is given; codes in `refuse` raise like the policy."""

    def __init__(self, refuse: tuple[str, ...] = ()) -> None:
        self.sent: list[tuple[str, str, str]] = []
        self.released: list[str] = []
        self.refuse = refuse

    def send(self, session: str, event: InputEvent) -> None:
        if event.kind == "keydown" and event.code in self.refuse:
            raise InjectError(f"key {event.code} refused: a blocked chord")
        self.sent.append((session, event.kind, event.code))

    def release(self, session: str) -> None:
        self.released.append(session)


def test_keys_mode_presses_what_the_pad_holds_and_lets_go_on_release():
    rec = Recorder()
    sink = GamepadSink(rec, "keys")
    mouse = InputEvent(kind="mousedown", x=0.5, y=0.5)
    sink.send("p", mouse)  # not a pad: passed through as it is
    assert rec.sent == [("p", "mousedown", "")]
    rec.sent.clear()
    sink.send("p", parse_gamepad(pad(0, (RIGHT, A))))
    assert rec.sent == [("p", "keydown", "ArrowRight"), ("p", "keydown", "Space")]
    rec.sent.clear()
    # the stick pushed right too, then the d-pad let go: ArrowRight stays down (the stick)
    sink.send("p", parse_gamepad(pad(0, (RIGHT, A), (0.9, 0, 0, 0))))
    sink.send("p", parse_gamepad(pad(0, (A,), (0.9, 0, 0, 0))))
    assert rec.sent == []
    sink.send("p", parse_gamepad(pad(0, (A,), (0.3, 0, 0, 0))))  # under the threshold
    assert rec.sent == [("p", "keyup", "ArrowRight")]
    # a second pad of the same player: its keys join
    sink.send("p", parse_gamepad(pad(1, (START,))))
    assert rec.sent[-1] == ("p", "keydown", "Enter")
    assert sink.held["p"] == {"Space", "Enter"}
    sink.release("p")  # left or lost control: the inner sink lets go of the keys
    assert rec.released == ["p"] and "p" not in sink.held
    rec.sent.clear()
    sink.send("p", parse_gamepad(pad(0, (A,))))  # pressed again after taking control back
    assert rec.sent == [("p", "keydown", "Space")]


def test_a_key_the_policy_refuses_is_not_held_and_the_others_still_act():
    rec = Recorder(refuse=("AltLeft",))
    sink = GamepadSink(rec, "keys", {"x": ""})
    with pytest.raises(InjectError, match="refused"):
        sink.send("p", parse_gamepad(pad(0, (A, 2, 3))))  # A, X (unmapped), Y (refused)
    assert rec.sent == [("p", "keydown", "Space")] and sink.held["p"] == {"Space"}
    off = GamepadSink(rec, "off")
    with pytest.raises(InjectError, match="off"):
        off.send("p", parse_gamepad(pad()))


def test_triggers_click_and_the_right_stick_moves_the_pointer():
    sent: list[InputEvent] = []

    class Inner:
        def send(self, session: str, event: InputEvent) -> None:
            sent.append(event)

        def release(self, session: str) -> None:
            pass

    sink = GamepadSink(Inner(), "keys")
    sink.send("p", parse_gamepad(pad(0, (7,))))  # RT
    assert [(e.kind, e.button) for e in sent] == [("mousedown", 0)]
    sink.send("p", parse_gamepad(pad(0, (), (0, 0, 1.0, 0.1))))  # RT up; stick full right
    assert (sent[-1].kind, sent[-1].button) == ("mouseup", 0)
    sent.clear()
    for _ in range(6):
        sink.tick(1 / 60)  # the event loop's timer does this AIM_HZ times a second
    assert all(e.kind == "mousemove" and e.relative and e.dy == 0 for e in sent)
    assert sum(e.dx for e in sent) == 100  # 1000 px/s at full tilt, 0.1 in the dead zone
    sent.clear()
    sink.send("p", parse_gamepad(pad(0, (), (0, 0, -0.6, 0))))  # half way past the dead zone
    for _ in range(60):
        sink.tick(1 / 60)
    assert sum(e.dx for e in sent) == -250  # squared: 0.5 ** 2 of full speed
    sent.clear()
    sink.release("p")  # lost control: the pointer stops
    sink.tick(1 / 60)
    assert sent == [] and sink.aim == {}
    mapped = GamepadSink(Inner(), "keys", {"rs_right": "KeyD", "rt": ""})
    mapped.send("p", parse_gamepad(pad(0, (7,), (0, 0, 1.0, 0))))  # a key, not the pointer
    mapped.tick(1 / 60)
    assert [(e.kind, e.code) for e in sent] == [("keydown", "KeyD")]


def test_auto_is_uinput_only_where_the_device_is_writable(tmp_path):
    assert resolve("auto", str(tmp_path / "none")) == "keys"
    dev = tmp_path / "uinput"
    dev.write_bytes(b"")
    assert resolve("auto", str(dev)) == "uinput"
    dev.chmod(0o444)
    if os.geteuid() != 0:  # root writes anything
        assert resolve("auto", str(dev)) == "keys"
    assert resolve("keys", str(dev)) == "keys" and resolve("off") == "off"


# -- uinput: the bytes, against the kernel's layout ---------------------------------------


class Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class KernelInputEvent(ctypes.Structure):  # linux/input.h
    _fields_ = [
        ("time", Timeval),
        ("type", ctypes.c_uint16),
        ("code", ctypes.c_uint16),
        ("value", ctypes.c_int32),
    ]


class KernelInputId(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint16) for n in ("bustype", "vendor", "product", "version")]


class KernelUserDev(ctypes.Structure):  # linux/uinput.h
    _fields_ = [
        ("name", ctypes.c_char * 80),
        ("id", KernelInputId),
        ("ff_effects_max", ctypes.c_uint32),
        ("absmax", ctypes.c_int32 * 64),
        ("absmin", ctypes.c_int32 * 64),
        ("absfuzz", ctypes.c_int32 * 64),
        ("absflat", ctypes.c_int32 * 64),
    ]


def kernel_events(data: bytes) -> list[tuple[int, int, int]]:
    size = ctypes.sizeof(KernelInputEvent)
    assert len(data) % size == 0
    evs = [KernelInputEvent.from_buffer_copy(data[i : i + size]) for i in range(0, len(data), size)]
    return [(e.type, e.code, e.value) for e in evs]


def test_uinput_structs_and_ioctls_match_the_kernel():
    assert ui.INPUT_EVENT.size == ctypes.sizeof(KernelInputEvent)  # 24 on 64-bit
    assert ui.USER_DEV.size == ctypes.sizeof(KernelUserDev) == 1116
    # linux/uinput.h, as the C preprocessor gives them on x86_64 and arm64
    assert ui.UI_DEV_CREATE == 0x5501 and ui.UI_DEV_DESTROY == 0x5502
    assert (ui.UI_SET_EVBIT, ui.UI_SET_KEYBIT, ui.UI_SET_ABSBIT) == (
        0x40045564, 0x40045565, 0x40045567,
    )  # fmt: skip
    press = ui.input_event(ui.EV_KEY, ui.BTN_A, 1)
    assert kernel_events(press) == [(1, 0x130, 1)]
    assert press[16:] == bytes([1, 0, 0x30, 0x01, 1, 0, 0, 0])  # little-endian type, code, value
    move = ui.input_event(ui.EV_ABS, ui.ABS_X, -32768)
    assert move[16:] == bytes([3, 0, 0, 0]) + (-32768).to_bytes(4, "little", signed=True)
    dev = KernelUserDev.from_buffer_copy(ui.user_dev("framesmith pad 0 (Xbox 360)"))
    assert dev.name == b"framesmith pad 0 (Xbox 360)"
    assert (dev.id.bustype, dev.id.vendor, dev.id.product) == (0x03, 0x045E, 0x028E)
    assert (dev.absmin[ui.ABS_X], dev.absmax[ui.ABS_X], dev.absflat[ui.ABS_X]) == (
        -32768,
        32767,
        128,
    )
    assert (dev.absmin[ui.ABS_RZ], dev.absmax[ui.ABS_RZ]) == (0, 255)
    assert (dev.absmin[ui.ABS_HAT0Y], dev.absmax[ui.ABS_HAT0Y]) == (-1, 1)


def test_a_virtual_pad_is_set_up_then_writes_only_what_changed(tmp_path):
    """The setup's ioctls and struct, and each change's events then SYN_REPORT, written to a
    file standing in for /dev/uinput (a pipe's reader would do too)."""
    calls: list[tuple[int, int]] = []
    out = tmp_path / "uinput"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT, 0o600)
    p = ui.VirtualPad(0, fd=fd, ioctl=lambda f, req, arg: calls.append((req, arg)))
    assert calls[0] == (ui.UI_SET_EVBIT, ui.EV_KEY) and calls[-1] == (ui.UI_DEV_CREATE, 0)
    keys = {arg for req, arg in calls if req == ui.UI_SET_KEYBIT}
    assert keys == {0x130, 0x131, 0x133, 0x134, 0x136, 0x137, 0x13A, 0x13B, 0x13C, 0x13D, 0x13E}
    absbits = {arg for req, arg in calls if req == ui.UI_SET_ABSBIT}
    assert absbits == {0, 1, 2, 3, 4, 5, 0x10, 0x11}
    setup = out.read_bytes()
    assert len(setup) == ui.USER_DEV.size
    buttons = [0.0] * 17
    buttons[0] = 1.0  # A
    buttons[7] = 0.5  # RT half way
    buttons[15] = 1.0  # d-pad right
    p.update(tuple(buttons), (0.5, -1.0, 0.0, 0.0))
    p.update(tuple(buttons), (0.5, -1.0, 0.0, 0.0))  # no change: nothing written
    p.neutral()
    events = kernel_events(out.read_bytes()[len(setup) :])
    syn = (0, 0, 0)
    assert events == [
        (1, 0x130, 1),  # BTN_A down
        (3, 0x00, 16384),  # ABS_X half right
        (3, 0x01, -32767),  # ABS_Y up
        (3, 0x05, 128),  # ABS_RZ (RT) half
        (3, 0x10, 1),  # HAT0X right
        syn,
        (1, 0x130, 0),
        (3, 0x00, 0),
        (3, 0x01, 0),
        (3, 0x05, 0),
        (3, 0x10, 0),
        syn,
    ]
    p.close()
    assert calls[-1] == (ui.UI_DEV_DESTROY, 0)


def test_uinput_mode_creates_a_pad_per_index_and_neutralises_on_release(tmp_path):
    made: list[ui.VirtualPad] = []

    def factory(index: int) -> ui.VirtualPad:
        fd = os.open(tmp_path / f"pad{index}", os.O_WRONLY | os.O_CREAT, 0o600)
        made.append(ui.VirtualPad(index, fd=fd, ioctl=lambda *a: None))
        return made[-1]

    rec = Recorder()
    sink = GamepadSink(rec, "uinput", pad_factory=factory)
    sink.send("p", parse_gamepad(pad(0, (A,))))
    sink.send("p", parse_gamepad(pad(3, (), (0, 0, 1, 0))))
    assert [m.index for m in made] == [0, 3] and rec.sent == []  # no keys in this mode
    assert made[0].state[(ui.EV_KEY, ui.BTN_A)] == 1
    sink.release("p")
    assert made[0].state == ui.NEUTRAL and made[1].state == ui.NEUTRAL
    assert rec.released == ["p"]

    def missing(index: int) -> ui.VirtualPad:
        return ui.VirtualPad(index, path=str(tmp_path / "no-such-uinput"))

    with pytest.raises(InjectError, match="virtual pad"):
        GamepadSink(rec, "uinput", pad_factory=missing).send("p", parse_gamepad(pad()))
    sink.close()


@needs_xvfb
@pytest.mark.timeout(60)
def test_keys_mode_through_xtest_reaches_an_x_client(tmp_path):
    with game(tmp_path) as (x, app):
        inj = XTestInjector(x.display)
        assert inj.ready(10)
        sink = GamepadSink(inj, "keys")
        sink.send("p", parse_gamepad(pad(0, (RIGHT,))))
        key = app.wait_for(lambda e: e["type"] == "key", 5)
        assert key["keysym"] == 0xFF53  # XK_Right
        sink.send("p", parse_gamepad(pad(0, (RIGHT, A))))
        space = app.wait_for(lambda e: e["type"] == "key" and e["keysym"] == ord(" "), 5)
        assert len(inj.keys) == 2
        sink.send("p", parse_gamepad(pad(0, (RIGHT, A, 7), (0, 0, 1.0, 0))))  # RT, stick
        click = app.wait_for(lambda e: e["type"] == "button", 5)
        assert click["button"] == 1
        for _ in range(3):
            sink.tick(1 / 60)
        x0 = click["x"]
        app.wait_for(lambda e: e["type"] == "motion" and e["x"] >= x0 + 49, 5)
        sink.release("p")
        app.wait_for(lambda e: e["type"] == "keyup" and e["keycode"] == space["keycode"], 5)
        app.wait_for(lambda e: e["type"] == "keyup" and e["keycode"] == key["keycode"], 5)
        app.wait_for(lambda e: e["type"] == "buttonup" and e["button"] == 1, 5)
        assert not inj.keys and not inj.buttons
        assert isinstance(parse_gamepad(pad()), GamepadEvent)
        inj.close()
