"""The game's sound for the pushes: one AAC encode shared by every rtmp:// and srt:// push.

FLV (RTMP) and MPEG-TS over SRT are what platforms and gateways take AAC in, and a push
cannot carry the viewers' Opus there; so the same PCM the Opus encoder gets (a capture, or
a WHIP publisher's decoded Opus) is encoded once more, to AAC, but only while a push is
connected: with no subscriber nothing is encoded.

The sinks take it as they take a file source's audio (stream/sources/audio.py's AudioFeed:
`add_to`, `subscribe`, packets stamped on the source's clock in 1/90000 s), so a push
interleaves it with the processed video, which carries the same clock. A capture's samples
keep their own clock (as SharedOpus's do): a sample's time is its chunk's capture time
mapped through an anchor that jumps to an earlier capture time, creeps towards a later one
and skips past a gap (a restarted capture).

The stream a push adds is copied from an opened encoder's parameters (AAC's
AudioSpecificConfig, which FLV sends in its sequence header and MPEG-TS turns into ADTS
headers); that copy is made under `lock`, as the encoder runs on the event loop and the
sinks add their streams on their own threads.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import av
import numpy as np

from .capture import CHANNELS, RATE
from .opus import DRIFT_GAIN, GAP_S

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, RATE)
FRAME_SAMPLES = 1024  # AAC-LC's frame
SOURCE_CLOCK = 90000  # the video source's pts clock (stream/sources/base.py)

Subscriber = Callable[[bytes, int], None]  # (an AAC frame, its pts on the source clock)


class SharedAac:
    """AAC encoded once for every push; the AudioFeed protocol the push sinks read."""

    def __init__(self, origin: Callable[[], float], bitrate: int = 128_000) -> None:
        """`origin`: the monotonic time of the video source's pts 0."""
        self.origin = origin
        self.bitrate = bitrate
        self.codec = "aac"
        self.lock = threading.Lock()
        self.packets = 0
        self.bytes_out = 0
        self.reanchors = 0
        self._subscribers: list[Subscriber] = []
        # a push that takes Opus as it is (whip+): a track of the viewers' encode, held by
        # the latency of the video track given (GameAudio.track); None: no sound to give
        self.opus_track: Callable[[Any], Any] | None = None
        self._holder: Any = None  # an in-memory container whose stream holds the encoder
        self._stream: Any = None
        self._pending = np.zeros((0, CHANNELS), np.float32)
        self._pts = 0  # samples handed to the encoder
        self._anchor: tuple[int, float] | None = None  # (pts, monotonic) of the sample clock

    # -- what the push sinks call (their threads) ------------------------------------------

    def subscribe(self, subscriber: Subscriber) -> None:
        with self.lock:
            self._subscribers = [*self._subscribers, subscriber]

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self.lock:
            self._subscribers = [s for s in self._subscribers if s is not subscriber]

    @property
    def wanted(self) -> bool:
        return bool(self._subscribers)

    def add_to(self, output: Any, wait_s: float = 0.0) -> Any:
        """An AAC stream in `output` with the shared encoder's parameters (`wait_s`: the
        AudioFeed protocol's; the encoder opens at once). ValueError when the format cannot
        carry AAC."""
        with self.lock:
            stream = self._open()
            return output.add_stream_from_template(stream, opaque=True)

    # -- what the audio capture calls (the event loop) -------------------------------------

    def submit(self, pcm: np.ndarray, t_cap: float) -> None:
        """Captured s16 stereo samples whose first was heard at `t_cap` (monotonic)."""
        if not self._subscribers:
            self._pending = self._pending[:0]
            self._anchor = None  # nobody pushes: the clock starts afresh with the next push
            return
        at = self._pts + len(self._pending)
        if self._anchor is None:
            self._anchor = (at, t_cap)
        else:
            off = t_cap - self.time_of(at)
            if off > GAP_S:  # time that was not captured: the sample clock skips it
                self.reanchors += 1
                self._pts += int(off * RATE)
                at = self._pts + len(self._pending)
                self._anchor = (at, t_cap)
            else:
                a_pts, a_t = self._anchor
                self._anchor = (a_pts, a_t + (off if off < 0 else off * DRIFT_GAIN))
        samples = pcm.astype(np.float32) / 32768.0
        buf = np.concatenate([self._pending, samples]) if len(self._pending) else samples
        n = len(buf) // FRAME_SAMPLES * FRAME_SAMPLES
        self._pending = buf[n:]
        for i in range(0, n, FRAME_SAMPLES):
            self._encode(buf[i : i + FRAME_SAMPLES])

    def time_of(self, pts: int) -> float:
        """The monotonic time the sample at `pts` was captured."""
        assert self._anchor is not None
        a_pts, a_t = self._anchor
        return a_t + (pts - a_pts) / RATE

    def _open(self) -> Any:
        """The encoder's stream (opened once; hold `lock`). Its container writes its
        header into memory so that the stream's parameters carry the encoder's."""
        if self._stream is None:
            holder = av.open(io.BytesIO(), "w", format="mp4")
            stream = holder.add_stream("aac", rate=RATE, layout="stereo")
            ctx = stream.codec_context
            ctx.format = "fltp"
            ctx.bit_rate = self.bitrate
            ctx.time_base = TIME_BASE
            holder.start_encoding()  # opens the encoder and fills the stream's parameters
            self._holder, self._stream = holder, stream
            log.info("push audio encoder: aac %d bit/s", self.bitrate)
        return self._stream

    def _encode(self, block: np.ndarray) -> None:
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(block.T), format="fltp", layout="stereo"
        )
        frame.sample_rate = RATE
        frame.pts = self._pts
        frame.time_base = TIME_BASE
        self._pts += len(block)
        with self.lock:
            packets = self._open().codec_context.encode(frame)
        origin = self.origin()
        for p in packets:
            if p.pts is None:
                continue
            # the encoder's priming makes its first packets' pts negative: they are the
            # samples from p.pts on, so that is when they were heard
            pts = round((self.time_of(p.pts) - origin) * SOURCE_CLOCK)
            if pts < 0:
                continue
            data = bytes(p)
            self.packets += 1
            self.bytes_out += len(data)
            for subscriber in self._subscribers:  # copy-on-write: no lock needed
                try:
                    subscriber(data, pts)
                except Exception:
                    log.exception("push audio subscriber failed")

    def stats(self) -> dict[str, object]:
        return {
            "codec": self.codec,
            "bitrate": self.bitrate,
            "pushes": len(self._subscribers),
            "packets": self.packets,
            "bytes": self.bytes_out,
            "reanchors": self.reanchors,
        }

    def close(self) -> None:
        with self.lock:
            holder, self._holder, self._stream = self._holder, None, None
        if holder is not None:
            with contextlib.suppress(av.FFmpegError):
                holder.close()
