"""Where the game's sound comes from: a PulseAudio source through `parec`, or a test beep.

Both hand 48 kHz stereo s16 PCM to a callback with the monotonic time its first sample was
heard (the media clock every source stamps on: stream/sources/base.py's `_t0 + pts`), so the
Opus track can hold it by the video's latency.

`parec` writes raw samples to a pipe as the server delivers them: the read time less what
was read and the server's fragment is when the first sample was captured. A capture that
fails (no server yet, the server restarted) is retried with a back-off, its state and
reason shown in /healthz.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from enum import StrEnum

import numpy as np

log = logging.getLogger(__name__)

RATE = 48000
CHANNELS = 2
FRAGMENT_MS = 20  # parec's fragment: how much the server gathers before it sends
CHUNK_BYTES = RATE * CHANNELS * 2 * FRAGMENT_MS // 1000
BACKOFF_MAX_S = 10.0

PcmSink = Callable[[np.ndarray, float], None]  # (samples (n, 2) int16, monotonic time)


class CaptureState(StrEnum):
    STARTING = "starting"
    LIVE = "live"
    RETRYING = "retrying"  # the capture failed; tried again after a back-off
    STOPPED = "stopped"


class Capture:
    """A running source of PCM; `run()` until cancelled."""

    kind = "none"

    def __init__(self, sink: PcmSink) -> None:
        self.sink = sink
        self.state = CaptureState.STARTING
        self.error = ""  # admins only: the tool's words
        self.chunks = 0
        self.restarts = 0

    async def run(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        """Let go of what the capture holds (a child process)."""


class PulseCapture(Capture):
    """`parec` on one PulseAudio source (the default sink's monitor, or a named source)."""

    kind = "pulse"

    def __init__(self, sink: PcmSink, device: str) -> None:
        super().__init__(sink)
        self.device = device
        self._proc: asyncio.subprocess.Process | None = None

    def command(self) -> list[str]:
        return [
            "parec",
            "--raw",
            "--format=s16le",
            f"--rate={RATE}",
            f"--channels={CHANNELS}",
            f"--latency-msec={FRAGMENT_MS}",
            "--client-name=framesmith",
            "--stream-name=game audio",
            f"--device={self.device}",
        ]

    async def run(self) -> None:
        backoff = 0.5
        while True:
            started = time.monotonic()
            try:
                await self._capture()
                self.error = "parec exited"
            except (OSError, asyncio.IncompleteReadError) as e:
                self.error = f"{type(e).__name__}: {e}"
            finally:
                await self._stop()
            self.state = CaptureState.RETRYING
            self.restarts += 1
            if time.monotonic() - started > 5.0:
                backoff = 0.5  # it ran a while: a restart of the server, not a dead one
            log.warning("audio capture (pulse) stopped: %s; again in %.1f s", self.error, backoff)
            await asyncio.sleep(backoff)
            backoff = min(BACKOFF_MAX_S, backoff * 2)

    async def _capture(self) -> None:
        proc = await asyncio.create_subprocess_exec(
            *self.command(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self._proc = proc
        assert proc.stdout is not None
        fragment = FRAGMENT_MS / 1000
        while True:
            try:
                data = await proc.stdout.readexactly(CHUNK_BYTES)
            except asyncio.IncompleteReadError:
                err = b""
                if proc.stderr is not None:
                    with contextlib.suppress(Exception):
                        err = await asyncio.wait_for(proc.stderr.read(2000), 1.0)
                self.error = err.decode(errors="replace").strip() or "parec exited"
                return
            now = time.monotonic()
            if self.state is not CaptureState.LIVE:
                log.info("audio capture (pulse) live")
            self.state = CaptureState.LIVE
            self.chunks += 1
            pcm = np.frombuffer(data, np.int16).reshape(-1, CHANNELS)
            # the first sample was heard one chunk and one server fragment before the read
            self.sink(pcm, now - len(pcm) / RATE - fragment)

    async def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 2.0)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def close(self) -> None:
        await self._stop()


class BeepCapture(Capture):
    """A test tone on the test scene's flashes: silence, and a `tone_hz` beep of `beep_s`
    from every flash (the frames a TestSource with `flash_every` draws white). The flashes'
    times come from `origin()` (the source's clock start, monotonic) and `period_s` (their
    spacing), so beep and flash are born at the same instant of the media clock."""

    kind = "beep"

    def __init__(
        self,
        sink: PcmSink,
        origin: Callable[[], float],
        period_s: float,
        tone_hz: float = 1000.0,
        beep_s: float = 0.1,
        level: float = 0.5,
    ) -> None:
        super().__init__(sink)
        self.origin = origin
        self.period_s = period_s
        self.tone_hz = tone_hz
        self.beep_s = beep_s
        self.level = level

    def samples(self, t0: float, n: int) -> np.ndarray:
        """`n` stereo samples from monotonic time `t0`."""
        t = t0 + np.arange(n) / RATE - self.origin()
        phase = np.mod(t, self.period_s)
        on = (t >= 0) & (phase < self.beep_s)
        wave = np.sin(2 * math.pi * self.tone_hz * phase) * self.level * on
        mono = np.round(wave * 32767).astype(np.int16)
        return np.repeat(mono[:, None], CHANNELS, axis=1)

    async def run(self) -> None:
        n = RATE * FRAGMENT_MS // 1000
        start = time.monotonic()
        k = 0
        self.state = CaptureState.LIVE
        while True:
            t0 = start + k * n / RATE
            # a chunk is handed on when its last sample is due, as a capture would
            delay = t0 + n / RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.2:  # the loop stalled: skip ahead rather than burst
                k += int(-delay * RATE / n)
                continue
            self.chunks += 1
            self.sink(self.samples(t0, n), t0)
            k += 1
