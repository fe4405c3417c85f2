"""WHEP (viewers) and WHIP (publishers) sessions with aiortc.

WHEP: the viewer's offer has one or two recvonly video m-lines (the second, when present,
gets the bilinear compare stream) and optionally a data channel (channel.py). Before
setRemoteDescription the session adds one sendonly transceiver per video m-line, each with
a PacketTrack fed by the shared encoder of the chosen codec, and sets codec preferences to
that codec only (else VP8 silently wins; ANCHORS "Streaming"), and only to the H.264 profile
we encode (h264.py).

WHIP: the publisher's video track is handed to the host (the service's WebRTC source); a new
publisher takes over from the old one. Any H.264 profile is accepted and decoded (h264.py);
the publisher's media keeps its ICE consent fresh (consent.py: FFmpeg answers no STUN); its
DTLS runs on GnuTLS (dtls.py: FFmpeg's certificate is on a curve aiortc's OpenSSL refuses).

Both: the answer carries all our candidates (gathered before it is returned; FFmpeg uses the
first `udp ... typ host` one and OBS may offer none of its own); each session has an ETag,
and a client may trickle its candidates by PATCH (trickle.py; no ICE restarts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import secrets
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from ..audio import GameAudio, add_audio, offer_receives_audio
from ..auth import OPEN, Grant, Role
from ..config import BandwidthConfig, EncoderConfig, ServerConfig
from ..encode import PacketTrack, SharedEncoder
from . import consent, dtls, h264, patches
from .answer import answer_only, sends_opus, stereo_opus
from .channel import ControlChannel
from .host import SessionHost, SessionKind
from .ice import ice_servers
from .ingest import AudioRelay, IngestCounts, guard, relay_audio
from .layers import SelectorSettings, Vp8LayerPacker
from .link import EstimateBounds, ViewerLink, observe
from .signalling import MIME, SignallingError, offered_codecs, parse_offer
from .trickle import apply_fragment, parse_fragment

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 20.0  # a session that does not connect in this time is closed
LEAK_ENV = "FRAMESMITH_TEST_LEAK_VIEWER_PCS"


def new_session_id() -> str:
    """128 random bits: a session URL cannot be guessed."""
    return secrets.token_hex(16)


def new_etag() -> str:
    """The entity-tag of a session's ICE state (RFC 9725: a PATCH must name it in If-Match)."""
    return f'"{secrets.token_hex(8)}"'


@dataclass
class Session:
    id: str
    kind: SessionKind
    pc: RTCPeerConnection
    control: ControlChannel
    codec: str = ""
    owner: str = OPEN.nonce  # nonce of the token that made it: that token (or admin) ends it
    role: Role = Role.ADMIN
    ends: float = math.inf  # when the token that made it expires: the session ends then
    created: float = field(default_factory=time.time)
    tracks: list[PacketTrack] = field(default_factory=list)
    audio: Any = None  # the viewer's game-sound track (stream/audio), when it receives audio
    closed: bool = False
    expiry: asyncio.Future[None] | None = None
    etag: str = field(default_factory=new_etag)
    ingest: IngestCounts | None = None  # a publisher's frames checked and dropped
    sound_in: AudioRelay | None = None  # a publisher's Opus, passed on (stream/audio/relay.py)

    def info(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": str(self.kind),
            "codec": self.codec,
            "role": str(self.role),
            "state": self.pc.connectionState,
            "age_s": round(time.time() - self.created, 1),
            "input_dropped": self.control.input.dropped,
            "input_refused": self.control.input_refused,
            "messages": self.control.counters.received,
            "refused": self.control.counters.refused,
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
            "audio": self.audio.info() if self.audio is not None else None,
            "report": self.control.report,
            "ingest": None if self.ingest is None else vars(self.ingest),
            "audio_in": None
            if self.sound_in is None
            else {"passed": self.sound_in.passed, "dropped": self.sound_in.dropped},
        }


class Sessions:
    """Every WHEP and WHIP session of one service; sessions reach the service only through
    its SessionHost side."""

    def __init__(
        self,
        host: SessionHost,
        server: ServerConfig,
        encoder: EncoderConfig,
        bandwidth: BandwidthConfig | None = None,
    ) -> None:
        self.host = host
        self.server = server
        self.encoders = encoder
        self.bandwidth = bandwidth or BandwidthConfig(enabled=False)
        self.by_id: dict[str, Session] = {}
        self._joining = 0  # viewers between their POST's check and their session's entry
        self._joining_by: dict[str, int] = {}  # the same, of every session, per token nonce
        # every room's sessions of this process (stream/service.py sets it): the per-token
        # cap counts a token's sessions in all rooms, not per room
        self.siblings: Callable[[], Iterable[Sessions]] = lambda: (self,)
        self.viewer_dropped_closed = 0  # packets dropped by sessions already gone
        # every peer connection made and not closed by this server yet (aiortc closes one
        # itself when its DTLS ends, but the server must still drop it): a leak shows here
        self._peers: weakref.WeakSet[RTCPeerConnection] = weakref.WeakSet()
        self._all_peers: weakref.WeakSet[RTCPeerConnection] = weakref.WeakSet()
        # TEST HOOK (tests/stream/tools/test_soak.py): deliberately never close the peer
        # connection of a viewer that leaves, so the soak's leak check has a leak to find
        self.leak_viewer_pcs = os.environ.get(LEAK_ENV) == "1"
        self._leaked: list[RTCPeerConnection] = []
        if self.leak_viewer_pcs:
            log.warning(
                "%s=1: leaking every departed viewer's peer connection (a test hook; never "
                "set this in production)",
                LEAK_ENV,
            )

    def _pc(self) -> RTCPeerConnection:
        # TURN credentials may be minted per session (server.turn_secret_file)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers(self.server)))
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
        return [s for s in self.by_id.values() if s.kind is SessionKind.WHEP]

    def connected_viewers(self) -> int:
        """Viewers whose media flows (what the autoscaler should count, not offers posted)."""
        return sum(1 for s in self.viewers if s.pc.connectionState == "connected")

    @property
    def publishers(self) -> list[Session]:
        return [s for s in self.by_id.values() if s.kind is SessionKind.WHIP]

    def viewer_dropped(self) -> int:
        return self.viewer_dropped_closed + sum(t.dropped for s in self.viewers for t in s.tracks)

    def queued_packets(self) -> list[int]:
        """Packets waiting in each viewer track's send queue."""
        return [len(t.queue) for s in self.viewers for t in s.tracks]

    # -- WHEP ------------------------------------------------------------------------------

    async def whep(
        self, offer: str, codec: str | None = None, grant: Grant = OPEN
    ) -> tuple[Session, str]:
        desc = parse_offer(offer)
        # the caps are checked and the place taken before any await, so concurrent POSTs
        # cannot all pass them
        if len(self.viewers) + self._joining >= self.server.max_viewers:
            raise SignallingError(
                503, f"too many viewers (server.max_viewers = {self.server.max_viewers})"
            )
        with self._admitted(grant):
            self._joining += 1
            try:
                return await self._whep(desc, offer, codec, grant)
            finally:
                self._joining -= 1

    @contextlib.contextmanager
    def _admitted(self, grant: Grant) -> Iterator[None]:
        """One token holds at most server.max_sessions_per_token sessions (those being set up
        count too): one leaked viewer token cannot take every viewer place. The open
        server's callers share one grant, so only max_viewers bounds them."""
        cap = self.server.max_sessions_per_token
        if grant is not OPEN:
            held = sum(
                sum(s.owner == grant.nonce for s in room.by_id.values())
                + room._joining_by.get(grant.nonce, 0)
                for room in self.siblings()
            )
            if held >= cap:
                raise SignallingError(
                    429, f"this token holds {cap} sessions (server.max_sessions_per_token)"
                )
        self._joining_by[grant.nonce] = self._joining_by.get(grant.nonce, 0) + 1
        try:
            yield
        finally:
            self._joining_by[grant.nonce] -= 1
            if not self._joining_by[grant.nonce]:
                del self._joining_by[grant.nonce]

    def ended_by_token(self, revoked: frozenset[str], now: float) -> list[str]:
        """The sessions whose token expired or was revoked."""
        return [s.id for s in self.by_id.values() if s.ends <= now or s.owner in revoked]

    async def _whep(
        self, desc: Any, offer: str, codec: str | None, grant: Grant
    ) -> tuple[Session, str]:
        enc = self.encoders
        videos = [m for m in desc.media if m.kind == "video"]
        if any(m.direction not in (None, "recvonly", "sendrecv", "inactive") for m in videos):
            raise SignallingError(400, "a WHEP offer's video must be recvonly")
        if len(videos) > 2:
            raise SignallingError(400, "at most two video m-lines (main and compare)")
        if codec is not None and codec not in enc.codecs:
            raise SignallingError(
                400, f"codec {codec!r} is not served (encoder.codecs = {enc.codecs})"
            )
        can = offered_codecs(videos[0])
        wanted = [codec or enc.default_codec, *enc.codecs]
        chosen = next((c for c in wanted if c in can and c in enc.codecs), None)
        if chosen is None:
            raise SignallingError(
                422,
                f"no common video codec: the offer has "
                f"{sorted({c.mimeType for c in videos[0].rtp.codecs})}, the server sends "
                f"{[MIME[c] for c in enc.codecs]}",
            )
        sid = new_session_id()
        pc = self._pc()
        control = ControlChannel(sid, chosen, self.host, grant.role)
        session = Session(
            sid, SessionKind.WHEP, pc, control, chosen, grant.nonce, grant.role, grant.expires
        )
        prefs = [
            c
            for c in h264.sendable(RTCRtpSender.getCapabilities("video").codecs)
            if c.mimeType.lower() in (MIME[chosen].lower(), "video/rtx")
        ]
        streams = ["main", "compare"][: len(videos)]
        ours: list[Any] = []  # the video we send: all this answer holds but the channel
        try:
            for k, stream in enumerate(streams):
                shared = self.host.encoder(stream, chosen)
                on_sent = session.control.frame_sent if k == 0 else None
                link = self._link(shared)
                track = PacketTrack(shared, enc.viewer_queue, on_sent, link)
                session.tracks.append(track)
                tr = pc.addTransceiver(track, direction="sendonly")
                ours.append(tr)
                tr.setCodecPreferences(prefs)
                patches.on_keyframe_request(tr.sender, track.request_keyframe)
                if link is not None:
                    observe(tr.sender, link)
                    if shared.layered:
                        patches.use_packer(tr.sender, Vp8LayerPacker())
            sound = None
            if offer_receives_audio(desc) and self._add_audio(session):
                sound = add_audio(pc, session.audio)  # sendonly: we never receive theirs
                ours.append(sound)
            self._wire(session)
            await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
            refused = answer_only(pc, ours)  # a viewer's own media: inactive (answer.py)
            if sound is not None:  # 2 channels: the capture's (stereo), or a publisher's
                stereo_opus(sound, getattr(session.audio, "channels", 2))
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
        self.host.on_session(SessionKind.WHEP)
        log.info(
            "viewer %s joined (%s, %d track(s)%s); %d viewer(s)",
            sid,
            chosen,
            len(streams),
            f", inactive: {' '.join(refused)}" * bool(refused),
            len(self.viewers),
        )
        return session, pc.localDescription.sdp

    def _add_audio(self, session: Session) -> bool:
        """The game's sound for this viewer, in sync with its main video (stream/audio);
        False when the service has none (or a host without audio, as in tests)."""
        make = getattr(self.host, "audio_track", None)
        if make is None:
            return False
        session.audio = make(session.tracks[0] if session.tracks else None)
        return session.audio is not None

    def _publisher_sound(self, desc: Any, pc: RTCPeerConnection) -> tuple[Any, Any] | None:
        """(the publisher's audio transceiver, where its packets go) when it sends Opus and
        the service passes a publisher's sound on ([audio] source auto with a webrtc source);
        None: its audio m-line, if any, is answered inactive."""
        relay = self._sound_relay()
        media = next((m for m in desc.media if m.kind == "audio"), None)
        if relay is None or media is None or not sends_opus(media):
            return None
        tr = next((t for t in pc.getTransceivers() if t.kind == "audio"), None)
        return None if tr is None else (tr, relay)

    def _sound_relay(self) -> Any:
        audio = getattr(self.host, "audio", None)  # the service's GameAudio
        return audio.publisher() if isinstance(audio, GameAudio) else None

    def _link(self, shared: SharedEncoder) -> ViewerLink | None:
        """A viewer's link estimate and layer selector (stream/bitrate.py steers them)."""
        bw = self.bandwidth
        if not bw.enabled:
            return None
        bounds = EstimateBounds(shared.bitrate, bw.min_bitrate, shared.max_bitrate)
        settings = SelectorSettings(hold_s=bw.hold_s, max_hold_s=max(bw.hold_s, bw.max_hold_s))
        return ViewerLink(bounds, shared.layered, settings)

    def _wire(self, session: Session) -> None:
        pc = session.pc

        @pc.on("connectionstatechange")
        async def _state() -> None:
            log.debug("session %s: %s", session.id, pc.connectionState)
            if pc.connectionState in ("failed", "closed"):
                await self.close(session.id, reason=pc.connectionState)

        @pc.on("datachannel")
        def _channel(ch: Any) -> None:
            session.control.attach(ch)

    # -- WHIP ------------------------------------------------------------------------------

    async def whip(self, offer: str, grant: Grant = OPEN) -> tuple[Session, str]:
        with self._admitted(grant):
            return await self._whip(offer, grant)

    async def _whip(self, offer: str, grant: Grant) -> tuple[Session, str]:
        refusal = self.host.publisher_refusal()
        if refusal is not None:
            raise SignallingError(409, refusal)
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
        sid = new_session_id()
        pc = self._pc()
        codecs = "/".join(sorted(offered_codecs(videos[0])))
        control = ControlChannel(sid, codecs, self.host, grant.role)
        session = Session(
            sid, SessionKind.WHIP, pc, control, codecs, grant.nonce, grant.role, grant.expires
        )

        @pc.on("track")
        def _track(track: MediaStreamTrack) -> None:
            if track.kind == "video":
                self.host.publisher_track(sid, track)

        self._wire(session)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
            video = next(tr for tr in pc.getTransceivers() if tr.kind == "video")
            sound = self._publisher_sound(desc, pc)
            served = [video] if sound is None else [video, sound[0]]
            refused = answer_only(pc, served, "recvonly")  # we send a publisher nothing
            if sound is not None:  # its Opus to the viewers as it came (never decoded here)
                relay = sound[1]
                session.sound_in = relay_audio(
                    sound[0].receiver, lambda data, ts: relay.packet(sid, data, ts)
                )
            session.ingest = guard(  # its frames checked before decode (ingest.py)
                video.receiver,
                self.host.publisher_limits(),
                lambda reason: self.host.publisher_refused(sid, reason),
            )
            consent.media_counts_as_consent(pc)
            dtls.use_gnutls(pc)  # FFmpeg's P-224 certificate (dtls.py)
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
        except Exception as e:  # noqa: BLE001 - aiortc's errors on an offer it cannot take
            await self._abort(session)
            raise SignallingError(400, f"cannot negotiate this offer: {e}") from None
        for old in self.publishers:  # a new publisher takes over
            await self.close(old.id, reason="replaced by a new publisher")
        self.by_id[sid] = session
        self._expire_unconnected(session)
        self.host.on_session(SessionKind.WHIP)
        log.info(
            "publisher %s connected%s", sid, f" (inactive: {' '.join(refused)})" * bool(refused)
        )
        return session, pc.localDescription.sdp

    # -- trickle ICE (PATCH) ---------------------------------------------------------------

    async def trickle(self, sid: str, kind: SessionKind, if_match: str | None, body: str) -> None:
        """Candidates a client PATCHes after its offer (RFC 9725 4.3.1; trickle.py)."""
        session = self.by_id.get(sid)
        if session is None or session.kind is not kind:
            raise SignallingError(404, f"no {kind.upper()} session {sid!r}")
        if if_match is None:
            raise SignallingError(428, "a trickle PATCH needs If-Match with the session's ETag")
        frag = parse_fragment(body)
        tag = if_match.strip()
        if tag == "*" or (frag.ufrag and frag.ufrag != _remote_ufrag(session.pc)):
            raise SignallingError(
                422, "ICE restarts are not supported: POST a new offer to start a new session"
            )
        if tag != session.etag:
            raise SignallingError(412, "If-Match does not match the session's ETag")
        await apply_fragment(session.pc, frag)

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
        for t in [*session.tracks, *([session.audio] if session.audio is not None else [])]:
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
        if session.audio is not None:
            session.audio.stop()
        if session.kind is SessionKind.WHIP:
            self.host.publisher_left(sid)
            if session.sound_in is not None and (relay := self._sound_relay()) is not None:
                relay.end(sid)
            dtls.forget(session.pc)
        self.host.session_closed(sid, session.kind)  # reports dropped, held input released
        if self.leak_viewer_pcs and session.kind is SessionKind.WHEP:
            self._leaked.append(session.pc)  # the test hook: "forget" to close it
        else:
            self._peers.discard(session.pc)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(session.pc.close(), 5)
        log.info(
            "%s %s closed (%s); %d viewer(s)",
            "viewer" if session.kind is SessionKind.WHEP else "publisher",
            sid,
            reason,
            len(self.viewers),
        )
        return True

    async def close_all(self) -> None:
        await asyncio.gather(
            *(self.close(s, "shutdown") for s in list(self.by_id)), return_exceptions=True
        )


def _remote_ufrag(pc: RTCPeerConnection) -> str:
    desc = pc.remoteDescription
    if desc is None:
        return ""
    for line in desc.sdp.splitlines():
        if line.startswith("a=ice-ufrag:"):
            return line[len("a=ice-ufrag:") :].strip()
    return ""
