"""Rate limits: a token bucket, and a bounded table of them keyed by client.

Used for HTTP (POST/PATCH/DELETE per token or address, stream/guard.py) and for every message
type of a session's data channel (stream/webrtc/channel.py). What goes over a limit is
counted and dropped, never queued.
"""

from __future__ import annotations

import time
from collections import OrderedDict


class TokenBucket:
    """`rate` events a second, bursts of `burst`."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = float(burst)
        self.t = time.monotonic()
        self.dropped = 0

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
        self.t = now

    def allow(self) -> bool:
        self._refill()
        if self.tokens < 1:
            self.dropped += 1
            return False
        self.tokens -= 1
        return True

    def retry_after(self) -> float:
        """Seconds until the next event would be allowed."""
        self._refill()
        return max(0.0, (1 - self.tokens) / self.rate)


class KeyedBuckets:
    """One bucket per key (a client), at most `max_keys` of them: the least recently seen go
    first, so a flood of new addresses costs memory it cannot grow."""

    def __init__(self, rate: float, burst: float, max_keys: int = 10_000) -> None:
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self.refused = 0

    def __len__(self) -> int:
        return len(self._buckets)

    def check(self, key: str) -> float | None:
        """None when `key` may go ahead, else the seconds to wait (Retry-After)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        if bucket.allow():
            return None
        self.refused += 1
        return bucket.retry_after()
