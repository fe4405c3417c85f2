"""whip+http(s):// pushes: an aiortc peer connection publishing the shared encoder's packets to
any WHIP ingest (RFC 9725), another framesmith `serve --source webrtc` included.

The track is a PacketTrack, as for a WHEP viewer: the same packets, no encode of its own
(aiortc only packetizes an av.Packet), its own bounded queue, and the receiver's PLI/FIR
routed to the shared encoder (patches.on_keyframe_request). It subscribes once ICE and DTLS
are up, so the encoder's first packet for it is a keyframe.

Why aiortc and not FFmpeg's WHIP muxer (PyAV 18 has one): FFmpeg's takes H.264 only and
gives no way to hear the receiver's PLI, so a receiver that lost a packet would wait for the
periodic keyframe; aiortc sends VP8 or H.264 and hands PLIs to the encoder.

The game's sound goes as the viewers get it, where the feed has it (`opus_track`: WebRTC
takes Opus, so no AAC and no encode of its own): one more OpusTrack on the shared Opus
encode, held by this push's video latency like a viewer's.

The offer carries every candidate (aiortc gathers before it returns the offer), so servers
that do not trickle (most) get them; the ICE servers are the service's own
(server.stun_servers / turn_servers): a WHIP server's Link headers arrive with its answer,
after aiortc has gathered, so they are not used.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

import aiohttp
import av
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpSender, RTCSessionDescription

from ..audio import add_audio
from ..encode import PacketTrack
from ..webrtc import h264, patches
from ..webrtc.ice import ice_servers
from .base import Backoff, SinkFigures, SinkState, describe
from .targets import Target

if TYPE_CHECKING:
    from ..audio.aac import SharedAac
    from ..config import PushConfig, ServerConfig
    from ..encode import SharedEncoder
    from ..sources.audio import AudioFeed

MIME = {"vp8": "video/vp8", "h264": "video/h264"}
log = logging.getLogger(__name__)


def same_origin(a: str, b: str) -> bool:
    """RFC 6454 origins (scheme, host, port) equal: where the bearer token may go."""
    try:
        pa, pb = urlsplit(a), urlsplit(b)
        return (pa.scheme.lower(), pa.hostname, pa.port or _PORTS.get(pa.scheme.lower())) == (
            pb.scheme.lower(),
            pb.hostname,
            pb.port or _PORTS.get(pb.scheme.lower()),
        )
    except ValueError:  # a port that is not a number
        return False


_PORTS = {"http": 80, "https": 443}


class WhipRefused(Exception):
    """The WHIP server answered the offer with something else than 201 + an SDP answer."""


class SinkTrack(PacketTrack):
    """A PacketTrack that subscribes only when its connection is up, and counts what it
    sends into the sink's figures."""

    def __init__(self, encoder: SharedEncoder, maxlen: int, figures: SinkFigures) -> None:
        super().__init__(encoder, maxlen)
        encoder.unsubscribe(self)
        self.figures = figures

    def go_live(self, keyframe_interval_s: float) -> None:
        enc = self.encoder
        enc.keyframe_interval_s = min(enc.keyframe_interval_s, keyframe_interval_s)
        enc.subscribe(self)  # asks for a keyframe now

    async def recv(self) -> av.Packet:
        packet = await super().recv()
        self.figures.sent(packet.size)
        self.figures.dropped = self.dropped
        return packet


class WhipSink:
    def __init__(
        self,
        target: Target,
        codec: str,
        encoder: SharedEncoder,
        settings: PushConfig,
        server: ServerConfig,
        token: str,
        audio: AudioFeed | SharedAac | None = None,
    ) -> None:
        self.target = target
        self.audio = audio
        self.sound: Any = None  # this session's OpusTrack (the game's sound), if any
        self.encoder = encoder
        self.settings = settings
        self.server = server
        self.token = token
        self.figures = SinkFigures(target, codec)
        self.backoff = Backoff(settings.backoff_max_s)
        self.pc: RTCPeerConnection | None = None
        self.track: SinkTrack | None = None
        self.location = ""
        self.endpoint = ""  # the URL the offer was posted to: the token's only origin
        self._task: asyncio.Task[None] | None = None
        self._dropped_before = 0

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._teardown()
        self.figures.set_state(SinkState.STOPPED)

    async def _run(self) -> None:
        f = self.figures
        while True:
            f.set_state(SinkState.CONNECTING)
            try:
                error = await self._session()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - any failure of a push is retried
                error = describe(e, self.target)
            finally:
                await self._teardown()
            delay = self.backoff.delay(f.live_for())
            f.set_state(SinkState.RETRYING, error, delay)
            await asyncio.sleep(delay)

    def _headers(self, to: str = "", **more: str) -> dict[str, str]:
        """The request's headers; the bearer token only for the endpoint's own origin: a
        Location (or Link) naming another origin gets the request without it."""
        same = not to or same_origin(to, self.endpoint)
        auth = {"Authorization": f"Bearer {self.token}"} if self.token and same else {}
        return {**auth, **more}

    async def _session(self) -> str:
        """One WHIP session, from the offer until its connection ends; returns why."""
        f = self.figures
        url = self.endpoint = self.target.resolved().removeprefix("whip+")
        timeout = self.settings.connect_timeout_s
        pc = self.pc = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers(self.server)))
        track = self.track = SinkTrack(self.encoder, self.settings.queue, f)
        track.dropped = self._dropped_before
        transceiver = pc.addTransceiver(track, direction="sendonly")
        transceiver.setCodecPreferences(
            [
                c
                for c in h264.sendable(RTCRtpSender.getCapabilities("video").codecs)
                if c.mimeType.lower() in (MIME[f.codec], "video/rtx")
            ]
        )
        patches.on_keyframe_request(transceiver.sender, track.request_keyframe)
        make_sound = getattr(self.audio, "opus_track", None)
        self.sound = make_sound(track) if make_sound is not None else None
        if self.sound is not None:
            add_audio(pc, self.sound)
            f.audio = "opus"
        state = asyncio.Event()

        @pc.on("connectionstatechange")
        def _changed() -> None:
            state.set()

        await pc.setLocalDescription(await pc.createOffer())
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http,
            http.post(
                url,
                data=pc.localDescription.sdp,
                headers=self._headers(**{"Content-Type": "application/sdp"}),
            ) as r,
        ):
            body = await r.text()
            if r.status != 201 or "Location" not in r.headers:
                reason = " ".join(body.split())[:160]
                raise WhipRefused(f"{r.status} {r.reason}: {reason}")
            # relative to where the answer came from (after any redirect: aiohttp drops the
            # token on one to another origin, and so does _headers for a Location there)
            self.location = urljoin(str(r.url), r.headers["Location"])
        await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
        try:
            async with asyncio.timeout(timeout):
                while pc.connectionState != "connected":
                    if pc.connectionState in ("failed", "closed"):
                        return f"ICE/DTLS {pc.connectionState}"
                    state.clear()
                    await state.wait()
        except TimeoutError:
            return f"ICE/DTLS not connected within {timeout:g} s"
        track.go_live(self.settings.keyframe_interval_s)
        f.set_state(SinkState.LIVE)
        while pc.connectionState not in ("failed", "closed"):
            state.clear()
            await state.wait()
        return f"connection {pc.connectionState}"

    async def _teardown(self) -> None:
        """End the session at the server (DELETE, best effort) and close the peer."""
        if self.track is not None:
            self._dropped_before = self.track.dropped
            self.track.stop()
            self.track = None
        if self.sound is not None:
            self.sound.stop()
            self.sound = None
        if self.location:
            location, self.location = self.location, ""
            if not same_origin(location, self.endpoint):
                log.warning(
                    "%s: the session's Location is on another origin than the endpoint; "
                    "ending it there without the token",
                    self.target.shown,
                )
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
                async with (
                    aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http,
                    http.delete(location, headers=self._headers(location)),
                ):
                    pass
        if self.pc is not None:
            pc, self.pc = self.pc, None
            await pc.close()

    def stats(self) -> dict[str, Any]:
        queued = len(self.track.queue) if self.track is not None else 0
        return {**self.figures.stats(), "queued": queued}
