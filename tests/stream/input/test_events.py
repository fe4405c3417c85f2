"""Input events are checked before anything acts on them; control follows the policy; a
click-to-photon sample from a page is checked too (no X display needed here)."""

from __future__ import annotations

import math

import pytest

from stream.input import (
    CallbackSink,
    ClickToPhoton,
    InputControl,
    InputError,
    parse_input,
)
from stream.input.keys import DOM_CODES, known_key


@pytest.mark.parametrize(
    "msg",
    [
        {"kind": "mousemove", "x": 0.0, "y": 1.0},
        {"kind": "mousemove", "relative": True, "dx": -12, "dy": 3.5},
        {"kind": "mousedown", "button": 2, "x": 0.5, "y": 0.5, "id": 7, "t": 1.7e12},
        {"kind": "mouseup", "button": 0},
        {"kind": "wheel", "dx": 0, "dy": 120},
        {"kind": "keydown", "code": "KeyW", "key": "w", "repeat": True},
        {"kind": "keyup", "key": "é"},
        {"kind": "keydown", "key": "ArrowUp"},
        {"kind": "keydown", "code": "F13", "key": "F13"},
    ],
)
def test_good_events_parse_and_round_trip(msg):
    ev = parse_input({"type": "input", **msg})
    again = parse_input(ev.as_message())
    assert again == ev
    assert ev.kind == msg["kind"]


@pytest.mark.parametrize(
    ("msg", "reason"),
    [
        ({"kind": "teleport"}, "kind must be one of"),
        ({}, "kind must be one of"),
        ({"kind": "mousemove", "x": 1.5, "y": 0.5}, "x = 1.5 is out of range"),
        ({"kind": "mousemove", "x": -0.01, "y": 0.5}, "out of range"),
        ({"kind": "mousemove", "x": 0.5}, "x and y"),
        ({"kind": "mousemove"}, "x and y"),
        ({"kind": "mousemove", "x": math.nan, "y": 0.5}, "must be a number"),
        ({"kind": "mousemove", "x": "0.5", "y": 0.5}, "must be a number"),
        ({"kind": "mousemove", "x": True, "y": 0.5}, "must be a number"),
        ({"kind": "mousemove", "relative": True, "dx": 1e9, "dy": 0}, "out of range"),
        ({"kind": "mousemove", "relative": "yes", "dx": 1, "dy": 0}, "relative must be"),
        ({"kind": "mousedown", "button": 7}, "button must be 0..4"),
        ({"kind": "mousedown", "button": 1.0}, "button must be 0..4"),
        ({"kind": "mousedown", "x": 2, "y": 2}, "out of range"),
        ({"kind": "wheel", "dy": math.inf}, "must be a number"),
        ({"kind": "keydown", "code": "KeyNope", "key": "Nope"}, "unknown key"),
        ({"kind": "keydown"}, "unknown key"),
        ({"kind": "keydown", "key": "\x00"}, "unknown key"),
        ({"kind": "keydown", "key": "x" * 33}, "at most 32"),
        ({"kind": "keydown", "code": ["KeyA"]}, "must be a string"),
        ({"kind": "keydown", "key": "a", "repeat": 1}, "repeat must be"),
        ({"kind": "keydown", "key": "a", "id": -1}, "id must be"),
        ({"kind": "keydown", "key": "a", "t": "now"}, "t must be a number"),
    ],
)
def test_bad_events_are_refused_with_the_reason(msg, reason):
    with pytest.raises(InputError, match=reason.replace("(", r"\(").replace(".", r"\.")):
        parse_input({"type": "input", **msg})


def test_key_table_covers_the_keyboard():
    # letters, digits, F1-F24, numpad and the named keys of a 105-key keyboard
    assert len(DOM_CODES) >= 121
    assert all(known_key(f"Key{c}", "") for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    assert all(known_key(f"F{n}", "") for n in range(1, 25))
    assert known_key("", "ж") and not known_key("", "Unidentified")


class Recorder:
    def __init__(self):
        self.events: list[dict] = []

    def __call__(self, message: dict, session: str = "") -> None:
        self.events.append(message)


def test_single_control_auto_take_refusals_and_hand_over():
    allowed = {"a", "b"}
    told: list[tuple[str, dict]] = []
    ctl = InputControl(may_control=allowed.__contains__, notify=lambda s, m: told.append((s, m)))
    got = Recorder()
    ctl.sinks.append(CallbackSink(got))
    move = parse_input({"kind": "mousemove", "x": 0.5, "y": 0.5})
    # a viewer without the player role: refused, nothing injected
    out = ctl.submit("viewer", move)
    assert not out.ok and "player role" in out.reason
    # the first player to send input takes control; the second is refused
    assert ctl.submit("a", move).ok
    assert ctl.controller == "a"
    out = ctl.submit("b", move)
    assert not out.ok and "another player has control" in out.reason
    assert len(got.events) == 1
    # hand-over: b takes control, then a is refused
    assert ctl.state("a")["you"] is True  # a is told about control from now on
    state = ctl.take("b")
    assert state["you"] and state["controller"] == "you"
    assert ("a", ctl.state("a")) in told
    assert not ctl.submit("a", move).ok and ctl.submit("b", move).ok
    # the controller leaves: control is free, the next player's input takes it
    ctl.session_closed("b")
    assert ctl.controller is None
    assert ctl.submit("a", move).ok
    assert ctl.stats()["refused"] == {"role": 1, "not_controller": 2}
    assert ctl.take("viewer")["allowed"] is False and ctl.controller == "a"


def test_shared_control_lets_every_player_drive():
    ctl = InputControl(mode="shared", may_control=lambda s: s != "viewer")
    got = Recorder()
    ctl.sinks.append(CallbackSink(got))
    move = parse_input({"kind": "mousemove", "x": 0.5, "y": 0.5})
    assert ctl.submit("a", move).ok and ctl.submit("b", move).ok
    assert not ctl.submit("viewer", move).ok
    assert ctl.controller is None and len(got.events) == 2


def test_click_to_photon_samples_are_checked_and_summarised():
    c2p = ClickToPhoton()
    for total in range(10, 110, 10):
        assert c2p.add({"total": total, "transit": 1.0, "decode": 5, "frame": 3})
    assert not c2p.add({"total": "fast"})
    assert not c2p.add({"total": math.nan})
    assert not c2p.add({"transit": 3})  # no total
    assert not c2p.add({"total": 50, "network": 1e9})
    s = c2p.summary()
    assert s["samples"] == 10 and s["refused"] == 4
    assert s["p50_ms"] == 60 and s["p95_ms"] == 100
    assert s["stages_p50_ms"] == {"transit": 1.0, "decode": 5.0}
