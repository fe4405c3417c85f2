"""The service's push sinks: made from [push] at start, stopped with the service, and their
figures for /api/stats (admin) and /metrics (admin)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .base import describe
from .mux import MuxSink
from .srt import SrtUnavailable, library
from .targets import FIXED_CODEC, SinkKind, Target, parse
from .whip import WhipSink

if TYPE_CHECKING:
    from ..audio.aac import SharedAac
    from ..config import PushConfig, ServerConfig
    from ..encode import SharedEncoder
    from ..sources.audio import AudioFeed

log = logging.getLogger(__name__)

EncoderFor = Callable[[str], "SharedEncoder"]  # codec -> the main stream's shared encoder


class Sink(Protocol):
    target: Target

    def start(self) -> None: ...

    async def stop(self) -> None: ...

    def stats(self) -> dict[str, Any]: ...


class PushSinks:
    def __init__(self, settings: PushConfig, server: ServerConfig) -> None:
        """Check what the targets need before anything starts (ValueError, URL redacted)."""
        self.settings = settings
        self.server = server
        self.targets = [parse(url, i) for i, url in enumerate(settings.urls)]
        self.sinks: list[Sink] = []
        self.token = ""
        if any(t.kind is SinkKind.WHIP for t in self.targets):
            self.token = read_token(settings)
        if any(t.kind is SinkKind.SRT for t in self.targets):
            try:
                library()
            except SrtUnavailable as e:
                raise ValueError(str(e)) from None
        for t in self.targets:
            missing = t.unresolved_vars()
            if missing:
                log.warning(
                    "push %d (%s): $%s not set in the environment", t.index, t.shown, missing[0]
                )

    def codec_of(self, target: Target) -> str:
        return FIXED_CODEC.get(target.kind, self.settings.codec)

    def start(self, encoder_for: EncoderFor, audio: AudioFeed | SharedAac | None) -> None:
        for t in self.targets:
            codec = self.codec_of(t)
            sink: Sink
            if t.kind is SinkKind.WHIP:
                sink = WhipSink(
                    t, codec, encoder_for(codec), self.settings, self.server, self.token, audio
                )
            else:
                sink = MuxSink(t, codec, encoder_for(codec), self.settings, audio)
            sink.start()
            self.sinks.append(sink)
        if self.sinks:
            log.info(
                "pushing to %d sink(s): %s",
                len(self.sinks),
                ", ".join(t.shown for t in self.targets),
            )

    async def stop(self) -> None:
        """All at once: a sink whose last write never returns costs its join timeout once."""
        results = await asyncio.gather(*(s.stop() for s in self.sinks), return_exceptions=True)
        for sink, result in zip(self.sinks, results, strict=True):
            if isinstance(result, Exception):
                # PyAV's errors name the URL, stream key and all: describe() redacts it
                log.error(
                    "push %d did not stop cleanly: %s",
                    sink.target.index,
                    describe(result, sink.target),
                )

    def stats(self) -> list[dict[str, Any]]:
        return [s.stats() for s in self.sinks]


def read_token(settings: PushConfig) -> str:
    """The bearer token of whip+ pushes: the file's first line, else the inline value."""
    if settings.whip_token_file:
        path = Path(settings.whip_token_file)
        try:
            token = path.read_text().strip()
        except OSError as e:
            raise ValueError(f"push.whip_token_file: cannot read {path}: {e.strerror}") from None
        if not token:
            raise ValueError(f"push.whip_token_file: {path} is empty")
        return token
    return settings.whip_token
