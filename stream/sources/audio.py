"""A source's compressed audio, for the push sinks that pass it through (no decode, no encode).

Only a file/URL source has audio to give (testsrc has none; a WHIP publisher's audio is not
received). The file source demuxes it next to the video and publishes each packet with its
time on the source's clock (the frames' pts clock, 1/90000 s), so a sink can interleave it
with the processed video, which reaches the sink later by the pipeline's and encoder's
latency but carries the same clock.

A sink copies the codec parameters (AAC's AudioSpecificConfig and all) from the input
stream itself (`add_to`): the input container is closed and reopened as a file loops or a
stream reconnects, so the template is only touched under `lock`, which the source holds
while it replaces or closes it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import av

log = logging.getLogger(__name__)

AudioSubscriber = Callable[[bytes, int], None]  # (packet data, pts on the source clock)


class AudioFeed:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.codec = ""  # the input's audio codec name ("" when there is none)
        self._template: av.audio.stream.AudioStream | None = None
        self._subscribers: list[AudioSubscriber] = []
        self.packets = 0
        self.ready = threading.Event()  # the input was opened once: codec is known

    def set_template(self, stream: av.audio.stream.AudioStream | None) -> None:
        """The input's audio stream (None: the input closed or has none). Hold `lock`."""
        self._template = stream
        if stream is not None:
            self.codec = stream.codec_context.name
        self.ready.set()

    def add_to(self, output: av.container.OutputContainer, wait_s: float) -> Any:
        """A stream in `output` with the input audio's parameters (waiting up to `wait_s`
        for the source to open its input); None when there is no audio; ValueError when the
        output's format cannot carry this codec."""
        self.ready.wait(wait_s)
        with self.lock:
            if self._template is None:
                return None
            return output.add_stream_from_template(self._template, opaque=True)

    def subscribe(self, subscriber: AudioSubscriber) -> None:
        with self.lock:
            self._subscribers = [*self._subscribers, subscriber]

    def unsubscribe(self, subscriber: AudioSubscriber) -> None:
        with self.lock:
            self._subscribers = [s for s in self._subscribers if s is not subscriber]

    @property
    def wanted(self) -> bool:
        return bool(self._subscribers)

    def publish(self, data: bytes, pts: int) -> None:
        self.packets += 1
        for subscriber in self._subscribers:  # a copy-on-write list: no lock needed
            try:
                subscriber(data, pts)
            except Exception:
                log.exception("audio subscriber failed")
