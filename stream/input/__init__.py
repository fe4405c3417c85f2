"""Player input: checked events (events.py, keys.py), who may drive the game (control.py),
and where events go: an X display through XTEST (xtest.py, imported only for x11 sources
and agents), remote game hosts' agents (remote.py, agent.py); click-to-photon (latency.py)."""

from __future__ import annotations

from .control import CallbackSink, ControlMode, InputControl, InputOutcome, InputSink
from .events import InjectError, InputError, InputEvent, parse_input
from .latency import ClickToPhoton
from .remote import AgentHub, session_alias

__all__ = [
    "AgentHub",
    "CallbackSink",
    "ClickToPhoton",
    "ControlMode",
    "InjectError",
    "InputControl",
    "InputError",
    "InputEvent",
    "InputOutcome",
    "InputSink",
    "parse_input",
    "session_alias",
]
