"""The running process: its rooms, and what they share.

A room (stream/room.py) is one source with its pipelines, shared encoders, adaptation,
viewers, players and audio. The process holds the rooms, the WebRTC settings and the loaded
models they share; HTTP (stream/http.py) and auth (stream/auth.py, stream/guard.py) sit on
top. A server started without rooms has one, named "default", behind today's routes.
"""

from __future__ import annotations

import logging
import time

import infer

from . import webrtc
from .config import Config
from .metrics import Metrics
from .room import Room
from .webrtc import SignallingError

log = logging.getLogger(__name__)
DEFAULT_ROOM = "default"


class Service:
    """The rooms of one server process, started and stopped together."""

    def __init__(
        self,
        cfg: Config,
        model: infer.Model | None = None,
        model_name: str = "",
        extra_models: dict[str, infer.Model] | None = None,
    ) -> None:
        self.config = cfg
        self.started = time.time()
        self.rooms: dict[str, Room] = {
            DEFAULT_ROOM: Room(cfg, model, model_name, extra_models, name=DEFAULT_ROOM)
        }

    @property
    def room(self) -> Room:
        """The room behind the routes without /rooms/NAME (the default one)."""
        return self.room_named(DEFAULT_ROOM)

    def room_named(self, name: str) -> Room:
        room = self.rooms.get(name)
        if room is None:
            raise SignallingError(404, f"no room {name[:64]!r}")
        return room

    @property
    def metrics(self) -> Metrics:
        """The figures /metrics serves: the default room's."""
        return self.room.metrics

    async def start(self) -> None:
        webrtc.configure(self.config.server)
        for room in self.rooms.values():
            await room.start()

    async def stop(self) -> None:
        for room in self.rooms.values():
            await room.stop()
