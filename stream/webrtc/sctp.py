"""Receive bounds for the data channel's SCTP (aiortc has none).

aiortc 1.16 keeps every DATA chunk a peer sends, however far past the cumulative TSN, and
every fragment of a message that never ends (or of an ordered message whose predecessor never
comes), so one viewer could fill the server's memory through its data channel; our 4096-
character cap (channel.py) only sees whole messages. Its out-of-order bookkeeping sorted and
filtered the whole set of early TSNs for every chunk, and each SACK listed every gap, so a few
thousand gapped chunks held the event loop for seconds. A real stack drops DATA beyond its
window and reports a bounded number of gaps (dcsctp: 20 gap blocks, 20 duplicates) and aborts
when its reassembly queue is exhausted; this module makes aiortc do the same:

- a DATA chunk more than WINDOW_CHUNKS past the cumulative TSN is dropped unacknowledged
  (RFC 9260 6.2: a peer that respects our window never sends it; it retransmits later);
- early TSNs are consolidated in O(1) per chunk (and kept in order beside aiortc's set), and
  a SACK reports at most MAX_GAP_BLOCKS gap blocks and MAX_DUPLICATES duplicates, found by
  bisection;
- fragments held at or below the cumulative TSN that no chunk can complete (aiortc scanned
  past them for every chunk on their stream), more than MAX_BUFFERED_CHUNKS chunks or
  MAX_BUFFERED_BYTES bytes held for reassembly across streams, or more than MAX_STREAMS
  inbound streams (made by DATA or named by a FORWARD TSN, which is held to the same
  window) aborts the association (an ABORT chunk, logged with the reason) and closes the
  DTLS transport, which ends the session;
- we advertise RECEIVE_WINDOW (aiortc: 1 MiB), so a peer that respects it stays far inside
  these bounds; a message of aiortc's largest size (262144 bytes, what our SDP allows) fits.

patches.SCTP lists every aiortc internal this relies on (checked at start-up).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import rtcsctptransport as sctp
from aiortc.utils import uint32_gt, uint32_gte

from . import patches

log = logging.getLogger(__name__)

WINDOW_CHUNKS = 1024  # TSNs past the cumulative TSN we accept (dcsctp: 100000)
MAX_BUFFERED_CHUNKS = 512  # DATA chunks held for reassembly, all streams
MAX_BUFFERED_BYTES = 512 * 1024  # their user data
MAX_STREAMS = 64  # inbound SCTP streams (one per data channel; we use one)
RECEIVE_WINDOW = 256 * 1024  # a_rwnd we advertise
MAX_GAP_BLOCKS = 20  # per SACK, as dcsctp
MAX_DUPLICATES = 20
TSN_MODULO = 2**32
HALF = 2**31


@dataclass
class Early:
    """aiortc's set of early TSNs in order, as distances from `anchor` (a TSN at or before
    the cumulative TSN), so a SACK finds its first gap blocks by bisection."""

    anchor: int = 0
    cum: int | None = None  # the cumulative TSN `order` agrees with
    order: list[int] = field(default_factory=list)

    def synced(self, last: int, early: set[int]) -> list[int]:
        """`order`, built again when aiortc moved the cumulative TSN itself (a FORWARD TSN)
        or the anchor falls a quarter of the TSN space behind."""
        if (
            self.cum != last
            or len(self.order) != len(early)
            or (last - self.anchor) % TSN_MODULO > TSN_MODULO // 4
        ):
            self.anchor, self.cum = last, last
            self.order = sorted((t - last) % TSN_MODULO for t in early)
        return self.order


@dataclass
class Bounds:
    """One association's receive-side record."""

    dropped: int = 0  # DATA chunks past the window
    aborted: str = ""  # why we aborted, once we have
    early: Early = field(default_factory=Early)
    closing: asyncio.Task[None] | None = None
    # stream id -> (its reassembly list as last seen, that list's length, its bytes)
    held: dict[int, tuple[list[Any], int, int]] = field(default_factory=dict)


KEY = "_framesmith_bounds"  # where a transport keeps its record (one dict lookup a chunk)
_original: dict[str, Callable[..., Any]] = {}


def bounds(transport: Any) -> Bounds:
    """The record of one RTCSctpTransport (made on first use)."""
    b: Bounds | None = transport.__dict__.get(KEY)
    if b is None:
        b = Bounds()
        setattr(transport, KEY, b)
    return b


def _plus_one(tsn: int) -> int:
    return (tsn + 1) % TSN_MODULO


def mark_received(self: Any, tsn: int) -> bool:
    """aiortc's `_mark_received` (True: a duplicate) without sorting the early TSNs: the
    cumulative TSN moves past the ones that follow it, one set lookup each, and the ordered
    copy (Early) gets one insertion or loses its first ones."""
    last = self._last_received_tsn
    early: set[int] = self._sack_misordered
    if uint32_gte(last, tsn) or tsn in early:
        if len(self._sack_duplicates) < MAX_DUPLICATES:
            self._sack_duplicates.append(tsn)
        return True
    if tsn != _plus_one(last):
        e = bounds(self).early
        order = e.synced(last, early)
        early.add(tsn)
        bisect.insort(order, (tsn - e.anchor) % TSN_MODULO)
    elif not early:  # in order, nothing early: the ordered copy is built again when needed
        self._last_received_tsn = last = tsn
    else:
        e = bounds(self).early
        order = e.synced(last, early)
        last, consumed = tsn, 0
        while (nxt := _plus_one(last)) in early:
            early.discard(nxt)
            last, consumed = nxt, consumed + 1
        del order[:consumed]  # the smallest: the ones right after the old cumulative TSN
        self._last_received_tsn = e.cum = last
    if self._sack_duplicates:  # as aiortc: only duplicates past the cumulative TSN stay
        self._sack_duplicates = [x for x in self._sack_duplicates if uint32_gt(x, last)]
    return False


def gap_blocks(self: Any) -> list[tuple[int, int]]:
    """The first MAX_GAP_BLOCKS gap blocks (offsets from the cumulative TSN), each found by
    bisection: in a run of consecutive TSNs, distance minus index stays the same."""
    if not self._sack_misordered:
        return []
    last = self._last_received_tsn
    e = bounds(self).early
    order = e.synced(last, self._sack_misordered)
    base = (last - e.anchor) % TSN_MODULO
    blocks: list[tuple[int, int]] = []
    i, n = 0, len(order)
    while i < n and len(blocks) < MAX_GAP_BLOCKS:
        run = order[i] - i
        j = bisect.bisect_right(range(n), run, lo=i, key=lambda k: order[k] - k) - 1
        blocks.append((order[i] - base, order[j] - base))
        i = j + 1
    return blocks


async def send_sack(self: Any) -> None:
    """aiortc's `_send_sack` reporting a bounded number of gaps and duplicates (a SACK
    listed every gap: thousands in a packet, built again for every packet)."""
    sack = sctp.SackChunk()
    sack.cumulative_tsn = self._last_received_tsn
    sack.advertised_rwnd = max(0, self._advertised_rwnd)
    sack.duplicates = self._sack_duplicates[:MAX_DUPLICATES]
    sack.gaps = gap_blocks(self)
    await self._send_chunk(sack)
    self._sack_duplicates.clear()
    self._sack_needed = False


async def receive_data_chunk(self: Any, chunk: sctp.DataChunk) -> None:
    """aiortc's `_receive_data_chunk` inside our window and bounds."""
    b = bounds(self)
    if b.aborted:
        return
    last = self._last_received_tsn
    if last is not None:
        ahead = (chunk.tsn - last) % TSN_MODULO
        if WINDOW_CHUNKS < ahead < HALF:
            if not b.dropped:
                log.warning(
                    "data channel: DATA chunk %d TSNs past the cumulative TSN (window %d): "
                    "dropped (and every such chunk of this association)",
                    ahead,
                    WINDOW_CHUNKS,
                )
            b.dropped += 1
            return
    await _original["_receive_data_chunk"](self, chunk)
    why = over_bounds(self, chunk)
    if why:
        await abort(self, why)


async def receive_forward_tsn_chunk(self: Any, chunk: sctp.ForwardTsnChunk) -> None:
    """aiortc's `_receive_forward_tsn_chunk` inside our window (a peer forwards only over
    TSNs it sent) and bounds (each stream it names becomes an inbound stream)."""
    b = bounds(self)
    if b.aborted:
        return
    last = self._last_received_tsn
    if last is not None and WINDOW_CHUNKS < (chunk.cumulative_tsn - last) % TSN_MODULO < HALF:
        b.dropped += 1
        return
    if len({sid for sid, _ in chunk.streams} - self._inbound_streams.keys()) > MAX_STREAMS:
        await abort(self, f"a FORWARD TSN naming {len(chunk.streams)} streams")
        return
    await _original["_receive_forward_tsn_chunk"](self, chunk)
    why = over_bounds(self, None)
    if why:
        await abort(self, why)


def over_bounds(transport: Any, chunk: sctp.DataChunk | None) -> str:
    """Why this association's inbound streams are past our bounds after `chunk` ("" when
    they are not).

    A stream's bytes are counted again only when aiortc replaced its reassembly list (it
    does when it delivers or prunes, at a cost of the same order); a chunk merely added to
    the list adds its own bytes. Chunks held at or below the cumulative TSN can only be the
    start of the one message that spans it (a message's fragments have consecutive TSNs,
    RFC 9260 6.9): anything else there no chunk can complete, and aiortc would scan past it
    for every chunk that comes on its stream."""
    b = bounds(transport)
    streams: dict[int, Any] = transport._inbound_streams
    cum = transport._last_received_tsn
    if len(streams) > MAX_STREAMS:
        return f"{len(streams)} inbound streams (at most {MAX_STREAMS})"
    chunks = size = 0
    for sid, stream in streams.items():
        held = stream.reassembly
        if held and uint32_gte(cum, held[0].tsn) and not _spans(held, cum):
            return f"stream {sid} holds fragments no chunk can complete (TSN {held[0].tsn})"
        seen = b.held.get(sid)
        if seen is not None and seen[0] is held and seen[1] == len(held):
            n = seen[2]
        elif (
            chunk is not None and seen is not None and seen[0] is held and seen[1] + 1 == len(held)
        ):
            n = seen[2] + len(chunk.user_data)  # only the chunk just received was added
        else:
            n = sum(len(c.user_data) for c in held)
        b.held[sid] = (held, len(held), n)
        chunks += len(held)
        size += n
    for sid in [sid for sid in b.held if sid not in streams]:
        del b.held[sid]  # a stream reset by the peer
    if chunks > MAX_BUFFERED_CHUNKS:
        return f"{chunks} chunks held for reassembly (at most {MAX_BUFFERED_CHUNKS})"
    if size > MAX_BUFFERED_BYTES:
        return f"{size} bytes held for reassembly (at most {MAX_BUFFERED_BYTES})"
    return ""


def _spans(held: list[Any], cum: int) -> bool:
    """Whether `held` (sorted by TSN) starts with a first fragment whose TSNs run without a
    gap up to the cumulative TSN (TSNs are unique, so the chunk `cum - first` places on
    has TSN `cum` only when every one between is there)."""
    i = (cum - held[0].tsn) % TSN_MODULO
    return bool(held[0].flags & sctp.SCTP_DATA_FIRST_FRAG) and i < len(held) and held[i].tsn == cum


async def abort(self: Any, why: str) -> None:
    """ABORT the association, close its data channels, then its DTLS transport (the peer
    connection closes when its DTLS does, and the session with it)."""
    b = bounds(self)
    b.aborted = why
    log.warning("data channel: SCTP association aborted: %s", why)
    self._sack_needed = False
    await self._abort()
    self._set_state(self.State.CLOSED)
    for stream in self._inbound_streams.values():
        stream.reassembly = []
    b.held.clear()
    # stopping the DTLS transport cancels the task we run in: do it from another task
    b.closing = asyncio.ensure_future(self.transport.stop())


async def start(self: Any, *args: Any, **kwargs: Any) -> None:
    """aiortc's `start`, advertising RECEIVE_WINDOW in our INIT / INIT ACK."""
    self._advertised_rwnd = RECEIVE_WINDOW
    await _original["start"](self, *args, **kwargs)


_REPLACED: dict[str, Callable[..., Any] | Callable[..., Awaitable[Any]]] = {
    "_receive_data_chunk": receive_data_chunk,
    "_receive_forward_tsn_chunk": receive_forward_tsn_chunk,
    "_mark_received": mark_received,
    "_send_sack": send_sack,
    "start": start,
}


def install() -> None:
    """Patch aiortc's SCTP once, at service start (every attribute checked first)."""
    patches.check(patches.SCTP)
    if _original:
        return
    cls = sctp.RTCSctpTransport
    for name, replacement in _REPLACED.items():
        _original[name] = getattr(cls, name)
        setattr(cls, name, replacement)


def uninstall() -> None:
    """aiortc as it was (tests compare against it)."""
    if not _original:
        return
    cls = sctp.RTCSctpTransport
    for name in _REPLACED:
        setattr(cls, name, _original[name])
    _original.clear()
