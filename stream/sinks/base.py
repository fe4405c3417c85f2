"""What every push sink shares: its states and their log lines, reconnection with backoff,
and its figures (state, bitrate, drops, reconnects) for /api/stats and /metrics.

A sink is one more subscriber of a SharedEncoder (stream/encode.py), next to the viewers'
PacketTracks: it gets the same packets, never its own encode. It subscribes only while it
is connected (so the encoder's subscribe() asks for a keyframe exactly when a sink starts)
and it must return at once from push(): what it cannot send in time it drops, counts, and
asks for a keyframe to resume at, as a slow viewer does.
"""

from __future__ import annotations

import collections
import logging
import time
from enum import StrEnum
from typing import Any

from .targets import Target

log = logging.getLogger(__name__)

BITRATE_WINDOW_S = 2.0
BACKOFF_FIRST_S = 0.5


class SinkState(StrEnum):
    CONNECTING = "connecting"  # opening the connection, or connected and waiting for a keyframe
    LIVE = "live"  # sending
    RETRYING = "retrying"  # lost or refused; the next attempt after a backoff
    STOPPED = "stopped"


class Backoff:
    """Delays between attempts: 0.5 s doubling to `max_s`; back to the start once a
    connection has stayed live for `reset_after_s` (a server that accepts and then drops
    every connection at once keeps the long delay)."""

    def __init__(self, max_s: float, reset_after_s: float = 5.0) -> None:
        self.max_s = max_s
        self.reset_after_s = reset_after_s
        self._next = BACKOFF_FIRST_S

    def delay(self, live_for_s: float) -> float:
        if live_for_s >= self.reset_after_s:
            self._next = BACKOFF_FIRST_S
        delay = min(self._next, self.max_s)
        self._next = min(self._next * 2, self.max_s)
        return delay


class SinkFigures:
    """Counters and the state of one sink; written by the sink (thread or loop), read by
    /api/stats and /metrics. Single writer per field; readers tolerate a torn read of a
    figure that is an instant old."""

    def __init__(self, target: Target, codec: str) -> None:
        self.target = target
        self.codec = codec
        self.state = SinkState.STOPPED  # until the first attempt
        self.error = ""
        self.since = time.monotonic()  # when the state began
        self.reconnects = 0  # attempts after the first
        self.dropped = 0  # packets not sent: queue overflow, or waiting for a keyframe
        self.packets = 0  # video packets sent
        self.audio_packets = 0
        self.bytes = 0
        self.audio = ""  # the audio codec passed through, or why none
        self.detail: dict[str, Any] = {}  # kind-specific (an RTP sink's SDP path)
        self._sent: collections.deque[tuple[float, int]] = collections.deque()

    def sent(self, size: int, audio: bool = False) -> None:
        now = time.monotonic()
        if audio:
            self.audio_packets += 1
        else:
            self.packets += 1
        self.bytes += size
        self._sent.append((now, size))
        while self._sent and now - self._sent[0][0] > BITRATE_WINDOW_S:
            self._sent.popleft()

    @property
    def bitrate(self) -> float:
        """Bits per second sent over the last BITRATE_WINDOW_S."""
        now = time.monotonic()
        recent = [s for t, s in list(self._sent) if now - t <= BITRATE_WINDOW_S]
        return 8 * sum(recent) / BITRATE_WINDOW_S

    def set_state(self, state: SinkState, error: str = "", retry_in: float | None = None) -> None:
        """One log line per change of state, the URL shown without its secrets."""
        if state is self.state and error == self.error:
            return
        t = self.target
        where = f"push {t.index} ({t.kind} {t.shown})"
        if state is SinkState.RETRYING:
            wait = f"; retrying in {retry_in:.1f} s" if retry_in is not None else ""
            log.warning("%s: %s -> retrying: %s%s", where, self.state, error or "closed", wait)
        elif state is SinkState.LIVE:
            log.info(
                "%s: live (%s%s)", where, self.codec, f", audio {self.audio}" * bool(self.audio)
            )
        else:
            log.info("%s: %s -> %s%s", where, self.state, state, f": {error}" * bool(error))
        if state is SinkState.CONNECTING and self.state is SinkState.RETRYING:
            self.reconnects += 1
        self.state, self.error, self.since = state, error, time.monotonic()

    def live_for(self) -> float:
        return time.monotonic() - self.since if self.state is SinkState.LIVE else 0.0

    def stats(self) -> dict[str, Any]:
        return {
            "sink": self.target.index,
            "kind": str(self.target.kind),
            "target": self.target.shown,
            "codec": self.codec,
            "state": str(self.state),
            "state_s": round(time.monotonic() - self.since, 1),
            "error": self.error,
            "bitrate_bps": round(self.bitrate),
            "packets": self.packets,
            "audio_packets": self.audio_packets,
            "audio": self.audio,
            "bytes": self.bytes,
            "dropped": self.dropped,
            "reconnects": self.reconnects,
            **self.detail,
        }


def describe(error: BaseException, target: Target) -> str:
    """An exception as a short reason that never carries the URL: PyAV's errors name the
    file (the URL, stream key and all), so only their strerror is kept."""
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    resolved = target.resolved()
    for secret in sorted({target.url, resolved, resolved.removeprefix("whip+")}, key=len)[::-1]:
        text = text.replace(secret, target.shown)
    return f"{type(error).__name__}: {text}"[:300]
