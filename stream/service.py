"""The running process: its rooms, and what they share.

A room (stream/room.py) is one source with its pipelines, shared encoders, adaptation,
viewers, players and audio. The process holds the rooms, the WebRTC settings and the loaded
models they share; HTTP (stream/http.py) and auth (stream/auth.py, stream/guard.py) sit on
top. A server started without rooms has one, named "default", behind today's routes; with
[[rooms]] (or `serve --room NAME=SOURCE`) each is reached under /rooms/NAME/, and admins add
and remove rooms while it runs (/api/rooms).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import infer

from . import webrtc
from .config import Config, RoomConfig, validate_as
from .metrics import Metrics
from .room import Room
from .webrtc import SignallingError

log = logging.getLogger(__name__)
DEFAULT_ROOM = "default"
MAX_ROOMS = 16  # rooms one process holds at most (each has a source and its own pipelines)


def room_config(cfg: Config, spec: RoomConfig) -> Config:
    """The whole config one room runs with: the top level's, with the room's own source,
    mode, model, audio and viewer cap."""
    data = cfg.model_dump()
    data["rooms"] = []
    source = data["source"]
    source["uri"] = spec.source
    for key in ("width", "height", "fps"):
        if getattr(spec, key) is not None:
            source[key] = getattr(spec, key)
    if spec.mode is not None:
        data["model"]["mode"] = spec.mode
    if spec.model is not None:
        data["model"]["path"] = spec.model
    if spec.audio is not None:
        data["audio"]["source"] = spec.audio
    if spec.max_viewers is not None:
        data["server"]["max_viewers"] = spec.max_viewers
    return validate_as(Config, data, f"room {spec.name}")


class Service:
    """The rooms of one server process, started and stopped together."""

    def __init__(
        self,
        cfg: Config,
        model: infer.Model | None = None,
        model_name: str = "",
        extra_models: dict[str, infer.Model] | None = None,
        room_models: dict[str, tuple[infer.Model | None, str]] | None = None,
        max_rooms: int = MAX_ROOMS,
    ) -> None:
        """`room_models`: a room's `model` path -> the model loaded for it (serve.py loads
        each path once); a room without one shares `model`."""
        self.config = cfg
        self.started = time.time()
        self.max_rooms = max(max_rooms, len(cfg.rooms))
        self._model = (model, model_name)
        self._extra = extra_models
        self._room_models = dict(room_models or {})
        self._running = False
        self._lock = asyncio.Lock()
        self.rooms: dict[str, Room] = {}
        if not cfg.rooms:
            self.rooms[DEFAULT_ROOM] = self._joined(
                Room(cfg, model, model_name, extra_models, DEFAULT_ROOM)
            )
        for spec in cfg.rooms:
            self.rooms[spec.name] = self._make(spec)

    def _make(self, spec: RoomConfig) -> Room:
        cfg = room_config(self.config, spec)
        model, name = self._model
        if spec.model is not None:
            if spec.model not in self._room_models:
                raise SignallingError(400, f"model {spec.model[:64]!r} is not loaded here")
            model, name = self._room_models[spec.model]
        return self._joined(Room(cfg, model, name, self._extra, spec.name))

    def _joined(self, room: Room) -> Room:
        """A token's session cap counts its sessions in every room of the process."""
        room.sessions.siblings = lambda: [r.sessions for r in self.rooms.values()]
        return room

    @property
    def room(self) -> Room:
        """The room behind the routes without /rooms/NAME (the default one)."""
        if DEFAULT_ROOM not in self.rooms and self.config.rooms:
            raise SignallingError(404, "this server has rooms: use /rooms/NAME/ (GET /api/rooms)")
        return self.room_named(DEFAULT_ROOM)

    def room_named(self, name: str) -> Room:
        room = self.rooms.get(name)
        if room is None:
            raise SignallingError(404, f"no room {name[:64]!r}")
        return room

    @property
    def metrics(self) -> Metrics:
        """The figures /metrics serves: the default room's (else the first room's; each
        room's own are at /rooms/NAME/metrics)."""
        room = self.rooms.get(DEFAULT_ROOM) or next(iter(self.rooms.values()), None)
        if room is None:
            return Metrics(lambda: {})
        return room.metrics

    async def start(self) -> None:
        webrtc.configure(self.config.server)
        self._running = True
        for room in list(self.rooms.values()):
            await room.start()

    async def stop(self) -> None:
        self._running = False
        for name in list(self.rooms):
            await self.rooms.pop(name).stop()

    # -- rooms added and removed while serving (/api/rooms) ------------------------------------

    async def add_room(self, spec: RoomConfig) -> Room:
        """Open and start a room; 409 for a name taken, 429 past max_rooms, 400 for a source
        that cannot open."""
        async with self._lock:
            if spec.name in self.rooms:
                raise SignallingError(409, f"room {spec.name!r} exists")
            if len(self.rooms) >= self.max_rooms:
                raise SignallingError(429, f"this server holds at most {self.max_rooms} rooms")
            try:  # a source that cannot open (no such file, no X display, a bad audio spec)
                room = self._make(spec)
            except SignallingError:
                raise
            except Exception as e:  # noqa: BLE001 - the admin is told; the process serves on
                log.warning("room %s not opened: %s", spec.name, e)
                raise SignallingError(400, f"room {spec.name!r}: {str(e)[:200]}") from None
            self.rooms[spec.name] = room
            if self._running:
                try:
                    await room.start()
                except Exception as e:
                    log.exception("room %s did not start", spec.name)
                    self.rooms.pop(spec.name, None)
                    await room.stop()
                    raise SignallingError(400, f"room {spec.name!r} did not start") from e
            log.info("room %s added (%s)", spec.name, room.source.kind)
            return room

    async def remove_room(self, name: str) -> None:
        """End a room's sessions, stop its source and free its pipelines (GPU memory) and
        encoders."""
        async with self._lock:
            room = self.room_named(name)
            del self.rooms[name]
            await room.stop()
            log.info("room %s removed", name)

    def list_rooms(self) -> list[dict[str, Any]]:
        return [room.summary() for room in self.rooms.values()]

    def health(self) -> dict[str, Any]:
        """/healthz: the default room's (today's answer), or every room's by name."""
        if DEFAULT_ROOM in self.rooms and len(self.rooms) == 1:
            return self.rooms[DEFAULT_ROOM].health()
        rooms = {name: room.health() for name, room in self.rooms.items()}
        ok = all(h["status"] == "ok" for h in rooms.values())
        return {
            "status": "ok" if ok else "degraded",
            "uptime_s": round(time.time() - self.started, 1),
            "rooms": rooms,
        }
