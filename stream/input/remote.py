"""The players' events for remote game hosts: the sink behind `GET /api/input` (WebSocket).

A host that publishes its game over WHIP (OBS, FFmpeg, the publish page) runs `python -m
stream agent` next to the game; the agent connects here and gets, as JSON text messages:

    {"type": "hello", "control": "single"|"shared"}                 once
    {"type": "input", "session": S, "kind": ..., ...}                the viewer's event, checked
    {"type": "gamepad", "session": S, "index", "buttons", ...}       a pad's state (gamepad.py):
                                                                     the agent maps it itself
    {"type": "release", "session": S}                                S left or lost control

S is a stable alias of the viewer's session (a hash: the session id itself names its DELETE
URL and stays secret). Each agent has a bounded queue (QUEUE events): an agent that cannot
keep up loses events (counted), never memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from .events import InputEvent

log = logging.getLogger(__name__)

QUEUE = 1000


def session_alias(session: str) -> str:
    """A stable name for a session that does not reveal its id (48 bits of a hash of 128
    random bits)."""
    return hashlib.sha256(f"framesmith-input:{session}".encode()).hexdigest()[:12]


class AgentHub:
    """InputSink: every event to every connected agent."""

    def __init__(self, control_mode: str = "single") -> None:
        self.control_mode = control_mode
        self.agents: dict[web.WebSocketResponse, asyncio.Queue[str]] = {}
        self.tokens: dict[web.WebSocketResponse, tuple[str, float]] = {}  # (nonce, expiry)
        self.sent = 0
        self.dropped = 0

    def _put(self, message: dict[str, Any]) -> None:
        text = json.dumps(message)
        for q in self.agents.values():
            try:
                q.put_nowait(text)
                self.sent += 1
            except asyncio.QueueFull:
                self.dropped += 1

    def send(self, session: str, event: InputEvent) -> None:
        if self.agents:
            self._put({**event.as_message(), "session": session_alias(session)})

    def release(self, session: str) -> None:
        if self.agents:
            self._put({"type": "release", "session": session_alias(session)})

    async def serve(
        self, request: web.Request, nonce: str = "open", ends: float = float("inf")
    ) -> web.WebSocketResponse:
        """One agent's WebSocket, until it closes or the token that opened it (`nonce`)
        expires at `ends` or is revoked (`end_tokens`)."""
        ws = web.WebSocketResponse(heartbeat=10.0, max_msg_size=4096)
        await ws.prepare(request)
        queue: asyncio.Queue[str] = asyncio.Queue(QUEUE)
        self.agents[ws] = queue
        self.tokens[ws] = (nonce, ends)
        log.info("input agent connected from %s; %d agent(s)", request.remote, len(self.agents))

        async def writer() -> None:
            await ws.send_str(json.dumps({"type": "hello", "control": self.control_mode}))
            while True:
                await ws.send_str(await queue.get())

        task = asyncio.ensure_future(writer())
        try:
            async for msg in ws:  # agents send nothing we act on; reading keeps pings going
                if msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.agents.pop(ws, None)
            self.tokens.pop(ws, None)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task
            log.info("input agent left; %d agent(s)", len(self.agents))
        return ws

    async def end_tokens(self, revoked: frozenset[str], now: float) -> int:
        """Close the WebSockets whose token expired or was revoked; how many."""
        ended = [ws for ws, (n, ends) in self.tokens.items() if ends <= now or n in revoked]
        for ws in ended:
            log.info("input agent's token expired or was revoked: closing its WebSocket")
            with contextlib.suppress(ConnectionError):
                await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"token ended")
        return len(ended)

    async def close(self) -> None:
        for ws in list(self.agents):
            with contextlib.suppress(ConnectionError):
                await ws.close()

    def stats(self) -> dict[str, Any]:
        return {"agents": len(self.agents), "sent": self.sent, "dropped": self.dropped}
