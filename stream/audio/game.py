"""The service's game sound: one capture, one Opus encoder, a track per listening viewer.

The Service makes one GameAudio from `[audio]` and its video source; the WHEP sessions ask it
for a viewer's track (`track(video_track)`) when the viewer's offer receives audio. Only a
session a token may watch with reaches that point (POST /whep needs the watch right), so
the sound goes where the picture goes and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import av
import numpy as np

from ..config import AudioConfig
from ..sources import Source, TestSource
from ..sources.base import FrameMeta
from .aac import SharedAac
from .capture import BeepCapture, Capture, CaptureState, PulseCapture
from .opus import OpusTrack, SharedOpus, VideoLatency
from .relay import PublisherAudio
from .spec import AudioPlan, resolve

if TYPE_CHECKING:
    from ..encode import PacketTrack

log = logging.getLogger(__name__)

FLASH_PERIOD_S = 1.0  # beep mode: the test scene flashes (and beeps) once a second


class GameAudio:
    def __init__(
        self,
        cfg: AudioConfig,
        source_kind: str,
        source_time: Callable[[int], float],
        source_origin: Callable[[], float],
        beep_period_s: float = FLASH_PERIOD_S,
    ) -> None:
        """`source_time`: a video frame's pts -> its monotonic time (the media clock);
        `source_origin`: the video source's clock start (beep mode's flashes count from it,
        one every `beep_period_s`).
        A ValueError when `[audio] source` cannot go with this video source."""
        self.config = cfg
        self.plan: AudioPlan = resolve(cfg.source, source_kind)
        self.source_time = source_time
        self.encoder = SharedOpus(cfg.bitrate)
        self.pushes = SharedAac(source_origin)  # the rtmp/srt pushes' encode (aac.py)
        self.capture: Capture | None = None
        if self.plan.kind == "pulse":
            self.capture = PulseCapture(self._pcm, self.plan.device)
        elif self.plan.kind == "beep":
            self.capture = BeepCapture(self._pcm, source_origin, beep_period_s)
        elif self.plan.kind == "publisher":  # a WHIP publisher's own Opus (relay.py)
            self.capture = PublisherAudio(self.encoder, self.pushes)
        self.tracks: set[OpusTrack] = set()
        self.pushes.opus_track = self.track  # a whip+ push takes the viewers' Opus
        self._task: asyncio.Task[None] | None = None
        if self.plan.enabled:
            detail = f" ({self.plan.detail})" if self.plan.detail else ""
            log.info("audio: %s%s", self.plan.reason, detail)
        else:
            log.info("audio: none (%s)", self.plan.detail or self.plan.reason)

    @classmethod
    def for_source(cls, cfg: AudioConfig, source: Source, fps: float) -> GameAudio:
        """The audio of a service whose video is `source` (at `fps`); beep mode makes a
        test scene flash where it beeps."""
        flash_every = max(1, round(fps * FLASH_PERIOD_S))
        audio = cls(
            cfg,
            source.kind,
            source.clock_time,
            lambda: source.clock_origin,
            beep_period_s=flash_every / fps,
        )
        if audio.plan.kind == "beep" and isinstance(source, TestSource):
            source.flash_every = flash_every
        return audio

    @property
    def enabled(self) -> bool:
        return self.capture is not None

    def _pcm(self, pcm: np.ndarray, t_cap: float) -> None:
        self.encoder.submit(pcm, t_cap)  # the viewers' Opus
        self.pushes.submit(pcm, t_cap)  # the pushes' AAC (nothing while none is connected)

    def publisher(self) -> PublisherAudio | None:
        """Where a WHIP publisher's sound goes (None: this service does not take it)."""
        return self.capture if isinstance(self.capture, PublisherAudio) else None

    def push_feed(self) -> SharedAac | None:
        """The pushes' audio (None: this service has no game sound)."""
        return self.pushes if self.enabled else None

    def start(self) -> None:
        if self.capture is not None and self._task is None:
            self._task = asyncio.ensure_future(self.capture.run())

    def track(self, video: PacketTrack | None) -> OpusTrack | None:
        """A new viewer's audio track (None: this service has no audio). Its hold follows
        the latency of `video`, the viewer's main video track, told by its on_sent."""
        if self.capture is None:
            return None
        latency = VideoLatency(self.source_time, track=video) if self.config.sync else None
        if latency is not None and video is not None:
            before = video.on_sent

            def sent(meta: FrameMeta, packet: av.Packet) -> None:
                latency.sent(meta, packet)
                if before is not None:
                    before(meta, packet)

            video.on_sent = sent
        track = OpusTrack(
            self.encoder,
            maxlen=self.config.queue,
            video=latency,
            offset_s=self.config.offset_ms / 1000,
            on_stop=self.tracks.discard,
        )
        self.tracks.add(track)
        return track

    def health(self) -> dict[str, Any]:
        """For anyone (/healthz): what is served and why, no server or source names."""
        out: dict[str, Any] = {"source": self.plan.kind}
        if self.capture is None:
            out["reason"] = self.plan.reason
        else:
            out["state"] = str(self.capture.state)
            out["listeners"] = len(self.tracks)
        return out

    def stats(self) -> dict[str, Any]:
        """For admins (/api/stats): the capture's device and errors, the encoder's figures."""
        cap = self.capture
        return {
            **self.health(),
            "reason": self.plan.reason,
            "detail": self.plan.detail,
            "device": getattr(cap, "device", ""),
            "error": cap.error if cap is not None else "",
            "chunks": cap.chunks if cap is not None else 0,
            "restarts": cap.restarts if cap is not None else 0,
            "encoder": self.encoder.stats(),
            "push_encoder": self.pushes.stats(),
            "viewers": [t.info() for t in self.tracks],
        }

    @property
    def live(self) -> bool:
        return self.capture is not None and self.capture.state is CaptureState.LIVE

    async def stop(self) -> None:
        for track in list(self.tracks):
            track.stop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.capture is not None:
            await self.capture.close()
            self.capture.state = CaptureState.STOPPED
        self.pushes.close()
