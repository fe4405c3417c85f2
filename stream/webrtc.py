"""WHEP (viewers) and WHIP (publishers) sessions with aiortc.

WHEP: the viewer's offer has one or two recvonly video m-lines (the second, when present,
gets the bilinear compare stream) and optionally a data channel. Before
setRemoteDescription the session adds one sendonly transceiver per video m-line, each with
a PacketTrack fed by the shared encoder of the chosen codec, and sets codec preferences to
that codec only (else VP8 silently wins; ANCHORS "Streaming"). ICE is not trickled: the
answer carries every candidate.

Data channel (JSON text messages):
  server -> page  {"type": "frame", "n", "t_src", "t_sent", "stages": {...}}  per frame sent
                  {"type": "pong", "t": <page's ping time>, "server": <server ms>}
                  {"type": "hello", "session", "codec", "source", "mode", "modes", ...}
  page -> server  {"type": "ping", "t"}    clock offset for glass-to-glass latency
                  {"type": "input", "kind": "keydown"|"keyup"|"mousemove"|"mousedown"|..}
                  {"type": "report", ...}  the page's own figures (kept for /api/stats)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aioice.ice
from aiortc import (
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc import sdp as aiortc_sdp

from .encoder import PacketTrack
from .ice import configure_network, ice_servers

if TYPE_CHECKING:
    from .server import Service

log = logging.getLogger(__name__)

MIME = {"vp8": "video/VP8", "h264": "video/H264"}
INPUT_RATE = 250.0  # input events a second a viewer may send (more are dropped)
INPUT_BURST = 100.0
CONNECT_TIMEOUT_S = 20.0  # a session that does not connect in this time is closed


class SignallingError(Exception):
    """A request the server refuses: HTTP status and a short reason."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def set_consent(interval_s: float, failures: int) -> None:
    """Lower aioice's ICE consent checks (5 s x 6) so a vanished peer goes in seconds."""
    aioice.ice.CONSENT_INTERVAL = interval_s
    aioice.ice.CONSENT_FAILURES = failures


def parse_offer(text: str, need_video: bool = True) -> aiortc_sdp.SessionDescription:
    if not text.startswith("v=0"):
        raise SignallingError(400, "malformed SDP: an offer starts with 'v=0'")
    try:
        desc = aiortc_sdp.SessionDescription.parse(text)
    except Exception as e:  # noqa: BLE001 - any parser failure is the client's SDP
        raise SignallingError(400, f"malformed SDP: {e}") from None
    if not desc.media:
        raise SignallingError(400, "malformed SDP: no m= lines")
    for m in desc.media:
        if m.kind in ("audio", "video", "application") and (
            m.ice is None or not m.ice.usernameFragment or m.dtls is None or not m.dtls.fingerprints
        ):
            raise SignallingError(
                400, f"malformed SDP: m={m.kind} lacks ICE credentials or a DTLS fingerprint"
            )
    if need_video and not any(m.kind == "video" for m in desc.media):
        raise SignallingError(400, "SDP offer has no video m-line")
    return desc


def offered_codecs(media: aiortc_sdp.MediaDescription) -> set[str]:
    names = {c.mimeType.lower() for c in media.rtp.codecs}
    return {k for k, mime in MIME.items() if mime.lower() in names}


@dataclass
class Session:
    id: str
    kind: str  # "whep" | "whip"
    pc: RTCPeerConnection
    codec: str = ""
    created: float = field(default_factory=time.time)
    tracks: list[PacketTrack] = field(default_factory=list)
    channel: Any = None
    report: dict = field(default_factory=dict)
    closed: bool = False
    input_tokens: float = INPUT_BURST
    input_t: float = field(default_factory=time.monotonic)
    input_dropped: int = 0
    expiry: Any = None

    def allow_input(self) -> bool:
        """Token bucket: INPUT_RATE events a second, bursts of INPUT_BURST."""
        now = time.monotonic()
        self.input_tokens = min(INPUT_BURST, self.input_tokens + (now - self.input_t) * INPUT_RATE)
        self.input_t = now
        if self.input_tokens < 1:
            self.input_dropped += 1
            return False
        self.input_tokens -= 1
        return True

    def info(self) -> dict:
        return {
            "id": self.id,
            "kind": self.kind,
            "codec": self.codec,
            "state": self.pc.connectionState,
            "age_s": round(time.time() - self.created, 1),
            "tracks": [
                {
                    "stream": t.encoder.name,
                    "sent": t.sent,
                    "dropped": t.dropped,
                    "pli": t.pli,
                    "queued": len(t.queue),
                }
                for t in self.tracks
            ],
            "report": self.report,
        }


class Sessions:
    def __init__(self, service: Service):
        self.service = service
        self.by_id: dict[str, Session] = {}
        cfg = service.config.server
        set_consent(cfg.ice_consent_interval_s, cfg.ice_consent_failures)
        configure_network(cfg.ice_port_min, cfg.ice_port_max, cfg.ice_public_address)
        self.ice_config = cfg
        self.viewer_dropped_closed = 0  # packets dropped by sessions already gone
        # every peer connection made and not closed by this server yet (aiortc closes one
        # itself when its DTLS ends, but the server must still drop it): a leak shows here
        self._peers: weakref.WeakSet[RTCPeerConnection] = weakref.WeakSet()
        self._all_peers: weakref.WeakSet[RTCPeerConnection] = weakref.WeakSet()
        # TEST HOOK (tests/stream/test_soak.py): deliberately never close the peer
        # connection of a viewer that leaves, so the soak's leak check has a leak to find
        self.leak_viewer_pcs = os.environ.get("FRAMESMITH_TEST_LEAK_VIEWER_PCS") == "1"
        self._leaked: list[RTCPeerConnection] = []
        if self.leak_viewer_pcs:
            log.warning(
                "FRAMESMITH_TEST_LEAK_VIEWER_PCS=1: leaking every departed viewer's "
                "peer connection (a test hook; never set this in production)"
            )

    def _pc(self) -> RTCPeerConnection:
        # TURN credentials may be minted per session (server.turn_secret_file)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers(self.ice_config)))
        self._peers.add(pc)
        self._all_peers.add(pc)
        return pc

    def open_peer_connections(self) -> int:
        """Peer connections alive that this server has not closed (sessions, or leaks)."""
        return len(self._peers)

    def peer_objects(self) -> int:
        """RTCPeerConnection objects alive, closed or not (garbage included until the GC)."""
        return len(self._all_peers)

    @property
    def viewers(self) -> list[Session]:
        return [s for s in self.by_id.values() if s.kind == "whep"]

    @property
    def publishers(self) -> list[Session]:
        return [s for s in self.by_id.values() if s.kind == "whip"]

    def viewer_dropped(self) -> int:
        return self.viewer_dropped_closed + sum(t.dropped for s in self.viewers for t in s.tracks)

    # -- WHEP ------------------------------------------------------------------------------

    async def whep(self, offer: str, codec: str | None = None) -> tuple[Session, str]:
        svc = self.service
        cfg = svc.config
        desc = parse_offer(offer)
        if len(self.viewers) >= cfg.server.max_viewers:
            raise SignallingError(
                503, f"too many viewers (server.max_viewers = {cfg.server.max_viewers})"
            )
        videos = [m for m in desc.media if m.kind == "video"]
        if any(m.direction not in (None, "recvonly", "sendrecv", "inactive") for m in videos):
            raise SignallingError(400, "a WHEP offer's video must be recvonly")
        if len(videos) > 2:
            raise SignallingError(400, "at most two video m-lines (main and compare)")
        if codec is not None and codec not in cfg.encoder.codecs:
            raise SignallingError(
                400, f"codec {codec!r} is not served (encoder.codecs = {cfg.encoder.codecs})"
            )
        can = offered_codecs(videos[0])
        wanted = [codec or cfg.encoder.default_codec] + list(cfg.encoder.codecs)
        chosen = next((c for c in wanted if c in can and c in cfg.encoder.codecs), None)
        if chosen is None:
            raise SignallingError(
                422,
                f"no common video codec: the offer has "
                f"{sorted({c.mimeType for c in videos[0].rtp.codecs})}, the server sends "
                f"{[MIME[c] for c in cfg.encoder.codecs]}",
            )
        sid = uuid.uuid4().hex[:16]
        pc = self._pc()
        session = Session(sid, "whep", pc, codec=chosen)
        prefs = [
            c
            for c in RTCRtpSender.getCapabilities("video").codecs
            if c.mimeType.lower() in (MIME[chosen].lower(), "video/rtx")
        ]
        streams = ["main", "compare"][: len(videos)]
        try:
            for k, stream in enumerate(streams):
                enc = svc.encoder(stream, chosen)
                on_sent = self._frame_sender(session) if k == 0 else None
                track = PacketTrack(enc, cfg.encoder.viewer_queue, on_sent)
                session.tracks.append(track)
                tr = pc.addTransceiver(track, direction="sendonly")
                tr.setCodecPreferences(prefs)
                tr.sender._send_keyframe = track.request_keyframe  # PLI/FIR -> shared encoder
            self._wire(session)
            await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
        except SignallingError:
            await self._abort(session)
            raise
        except Exception as e:  # noqa: BLE001 - aiortc's ValueError/OperationError on bad SDP
            await self._abort(session)
            raise SignallingError(400, f"cannot negotiate this offer: {e}") from None
        self.by_id[sid] = session
        self._expire_unconnected(session)
        svc.metrics.sessions.labels("whep").inc()
        log.info(
            "viewer %s joined (%s, %d track(s)); %d viewer(s)",
            sid,
            chosen,
            len(streams),
            len(self.viewers),
        )
        return session, pc.localDescription.sdp

    def _frame_sender(self, session: Session):  # noqa: ANN202
        def on_sent(meta, packet) -> None:  # noqa: ANN001
            ch = session.channel
            if ch is None or ch.readyState != "open" or ch.bufferedAmount > 256 * 1024:
                return
            now = time.time()
            ch.send(
                json.dumps(
                    {
                        "type": "frame",
                        "n": meta.n,
                        "pts": meta.pts,
                        "t_src": round(meta.t_src * 1000, 3),
                        "t_sent": round(now * 1000, 3),
                        "key": bool(packet.is_keyframe),
                        "bytes": packet.size,
                        "stages": {k: round(v, 3) for k, v in meta.stages.items()},
                        "server_ms": round((now - meta.t_src) * 1000, 3),
                    }
                )
            )

        return on_sent

    def _wire(self, session: Session) -> None:
        pc = session.pc

        @pc.on("connectionstatechange")
        async def _state() -> None:
            log.debug("session %s: %s", session.id, pc.connectionState)
            if pc.connectionState in ("failed", "closed"):
                await self.close(session.id, reason=pc.connectionState)

        @pc.on("datachannel")
        def _channel(ch) -> None:  # noqa: ANN001
            session.channel = ch

            @ch.on("open")
            def _open() -> None:
                self._hello(session)

            @ch.on("message")
            def _message(msg) -> None:  # noqa: ANN001
                self._on_message(session, msg)

            if ch.readyState == "open":
                self._hello(session)

    def _hello(self, session: Session) -> None:
        with contextlib.suppress(Exception):
            session.channel.send(
                json.dumps(
                    {
                        "type": "hello",
                        "session": session.id,
                        "codec": session.codec,
                        **self.service.describe(),
                    }
                )
            )

    def _on_message(self, session: Session, msg: Any) -> None:
        if not isinstance(msg, str) or len(msg) > 4096:
            return
        try:
            data = json.loads(msg)
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        kind = data.get("type")
        if kind == "ping":
            session.channel.send(
                json.dumps({"type": "pong", "t": data.get("t"), "server": time.time() * 1000})
            )
        elif kind == "input":
            if session.allow_input():
                self.service.on_input(data, session.id)
        elif kind == "report":
            data.pop("type", None)
            session.report = {k: v for k, v in list(data.items())[:40]}
            self.service.on_report(session.id, session.report)

    # -- WHIP ------------------------------------------------------------------------------

    async def whip(self, offer: str) -> tuple[Session, str]:
        svc = self.service
        if svc.source.kind != "webrtc":
            raise SignallingError(
                409,
                f"the source is {svc.source.kind!r}; start the server "
                "with --source webrtc to accept WHIP publishers",
            )
        desc = parse_offer(offer)
        videos = [m for m in desc.media if m.kind == "video"]
        if len(videos) != 1:
            raise SignallingError(400, "a WHIP offer needs exactly one video m-line")
        if videos[0].direction not in (None, "sendonly", "sendrecv"):
            raise SignallingError(400, "a WHIP offer's video must be sendonly")
        if not offered_codecs(videos[0]):
            raise SignallingError(
                422,
                f"unsupported codec: the offer has "
                f"{sorted({c.mimeType for c in videos[0].rtp.codecs})}; publish VP8 or H264",
            )
        sid = uuid.uuid4().hex[:16]
        pc = self._pc()
        session = Session(sid, "whip", pc, codec="/".join(sorted(offered_codecs(videos[0]))))

        @pc.on("track")
        def _track(track) -> None:  # noqa: ANN001
            if track.kind == "video":
                svc.source.set_track(track, sid)

        self._wire(session)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
            for tr in pc.getTransceivers():
                if tr.kind == "audio":
                    tr.direction = "inactive"
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
        except Exception as e:  # noqa: BLE001
            await self._abort(session)
            raise SignallingError(400, f"cannot negotiate this offer: {e}") from None
        for old in self.publishers:  # a new publisher takes over
            await self.close(old.id, reason="replaced by a new publisher")
        self.by_id[sid] = session
        self._expire_unconnected(session)
        svc.metrics.sessions.labels("whip").inc()
        log.info("publisher %s connected", sid)
        return session, pc.localDescription.sdp

    # -- ending ----------------------------------------------------------------------------

    def _expire_unconnected(self, session: Session) -> None:
        """Close a session whose peer never completes ICE/DTLS (e.g. an offer posted by a
        client that went away), so such sessions cannot pile up."""

        async def expire() -> None:
            await asyncio.sleep(CONNECT_TIMEOUT_S)
            if not session.closed and session.pc.connectionState != "connected":
                await self.close(session.id, reason="never connected")

        session.expiry = asyncio.ensure_future(expire())

    async def _abort(self, session: Session) -> None:
        for t in session.tracks:
            t.stop()
        self._peers.discard(session.pc)
        with contextlib.suppress(Exception):
            await session.pc.close()

    async def close(self, sid: str, reason: str = "DELETE") -> bool:
        session = self.by_id.pop(sid, None)
        if session is None or session.closed:
            return False
        session.closed = True
        if session.expiry is not None and session.expiry is not asyncio.current_task():
            session.expiry.cancel()
        for t in session.tracks:
            self.viewer_dropped_closed += t.dropped
            t.stop()
        if session.kind == "whip":
            src = self.service.source
            if hasattr(src, "drop_publisher"):
                src.drop_publisher(sid)
        if self.leak_viewer_pcs and session.kind == "whep":
            self._leaked.append(session.pc)  # the test hook: "forget" to close it
        else:
            self._peers.discard(session.pc)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(session.pc.close(), 5)
        log.info(
            "%s %s closed (%s); %d viewer(s)",
            "viewer" if session.kind == "whep" else "publisher",
            sid,
            reason,
            len(self.viewers),
        )
        return True

    async def close_all(self) -> None:
        await asyncio.gather(
            *(self.close(s, "shutdown") for s in list(self.by_id)), return_exceptions=True
        )
