"""A bottleneck link for one test viewer: a token bucket of `kbps` with a queue that holds
at most `max_delay_s` of traffic; what arrives beyond it is dropped (a router's tail drop).
A slow home link looks like this from the server: loss and queueing delay once it sends more
than the link takes. The soak's "bandwidth" fault and tests/stream/test_layers_e2e.py put
it in a viewer's SRTP receive path (viewer.py, `shape`)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any


class LinkShaper:
    def __init__(self, max_delay_s: float = 0.2, burst_bytes: int = 12_000) -> None:
        self.kbps: float | None = None  # None: no cap
        self.until = math.inf  # the cap lifts then (clock time)
        self.max_delay_s = max_delay_s
        self.burst_bytes = burst_bytes
        self.busy_until = 0.0  # when the queue has drained
        self.dropped = 0
        self.passed = 0

    def cap(self, kbps: float | None, until: float = math.inf) -> None:
        self.kbps, self.until = kbps, until
        self.busy_until = 0.0

    def admit(self, size: int, now: float) -> float | None:
        """The delay before a packet of `size` bytes leaves the link, or None: dropped."""
        if self.kbps is None or now >= self.until:
            self.passed += 1
            return 0.0
        rate = self.kbps * 1000 / 8  # bytes per second
        start = max(now - self.burst_bytes / rate, self.busy_until)
        leaves = start + size / rate
        delay = max(0.0, leaves - now)
        if delay > self.max_delay_s + 1e-9:
            self.dropped += 1
            return None
        self.busy_until = leaves
        self.passed += 1
        return delay


Handler = Callable[[bytes, int], Awaitable[None]]


def shaped(inner: Handler, shaper: LinkShaper, clock: Callable[[], float]) -> Handler:
    """An SRTP receive handler (RTCDtlsTransport._handle_rtp_data) behind `shaper`."""
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[Any]] = set()

    def deliver(data: bytes, arrival_time_ms: int) -> None:
        task = asyncio.ensure_future(inner(data, arrival_time_ms))
        pending.add(task)
        task.add_done_callback(pending.discard)

    async def handle(data: bytes, arrival_time_ms: int) -> None:
        delay = shaper.admit(len(data), clock())
        if delay is None:
            return
        if delay <= 0:
            await inner(data, arrival_time_ms)
        else:
            loop.call_later(delay, deliver, data, arrival_time_ms + int(delay * 1000))

    return handle
