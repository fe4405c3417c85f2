"""The data channel's SCTP receive bounds (stream/webrtc/sctp.py) against a hostile peer: a
real aiortc viewer connected to the real server over WHEP, whose SCTP transport is made to
send DATA chunks no well-behaved stack would (gapped TSNs, a message that never ends, a TSN
far past our window), next to a well-behaved viewer's largest legal messages."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest
from aiortc.rtcsctptransport import (
    SCTP_DATA_FIRST_FRAG,
    SCTP_DATA_LAST_FRAG,
    SCTP_DATA_UNORDERED,
    DataChunk,
    ForwardTsnChunk,
    RTCSctpTransport,
)

from stream.webrtc import patches, sctp

from .rtc import Server, Viewer, small_config, start_server, whep

WEBRTC_STRING = 51  # PPID of a text message


def test_a_renamed_sctp_internal_fails_loudly(monkeypatch):
    monkeypatch.delattr(RTCSctpTransport, "_mark_received")
    with pytest.raises(patches.LibraryChanged, match=r"_mark_received is gone.*receive bounds"):
        patches.check()


class Tsns:
    """What `_mark_received` reads and writes (aiortc's and ours run on one of these)."""

    def __init__(self, last: int) -> None:
        self._last_received_tsn = last
        self._sack_misordered: set[int] = set()
        self._sack_duplicates: list[int] = []


def every_gap(t: Tsns) -> list[tuple[int, int]]:
    """The gap blocks of every early TSN, sorted (as aiortc builds them)."""
    blocks: list[list[int]] = []
    for pos in sorted((x - t._last_received_tsn) % 2**32 for x in t._sack_misordered):
        if blocks and pos == blocks[-1][1] + 1:
            blocks[-1][1] = pos
        else:
            blocks.append([pos, pos])
    return [(a, b) for a, b in blocks]


def test_early_tsns_are_consolidated_as_aiortc_does_and_across_the_wrap():
    import random

    aiortc_mark = sctp._original.get("_mark_received", RTCSctpTransport._mark_received)
    rng = random.Random(5)
    for _ in range(200):
        base = rng.randrange(1000, 2**31)
        tsns = [base + 1 + rng.randrange(60) for _ in range(80)]  # early, late and again
        theirs, ours = Tsns(base), Tsns(base)
        for tsn in tsns:
            assert aiortc_mark(theirs, tsn) == sctp.mark_received(ours, tsn)
            assert theirs._last_received_tsn == ours._last_received_tsn
            assert theirs._sack_misordered == ours._sack_misordered
            assert theirs._sack_duplicates[: sctp.MAX_DUPLICATES] == ours._sack_duplicates
            assert sctp.gap_blocks(ours) == every_gap(ours)[: sctp.MAX_GAP_BLOCKS]
            if rng.random() < 0.5:  # a SACK went out
                theirs._sack_duplicates.clear()
                ours._sack_duplicates.clear()
    ours = Tsns(2**32 - 3)
    for tsn in (0, 2**32 - 1, 1, 4):  # past the wrap first
        assert not sctp.mark_received(ours, tsn)
        assert sctp.gap_blocks(ours) == every_gap(ours)
    assert sctp.mark_received(ours, 2**32 - 2) is False
    assert ours._last_received_tsn == 1 and ours._sack_misordered == {4}
    assert sctp.gap_blocks(ours) == [(3, 3)]


async def until(check: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def connected(http: aiohttp.ClientSession, srv: Server) -> tuple[Viewer, Any, Any]:
    """A viewer whose control channel is open; its SCTP transport and the server's."""
    viewer = await whep(http, srv.url, datachannel=True)
    assert await until(lambda: any("hello" in m for m in viewer.messages), 20), "no hello"
    session = next(s for s in srv.service.sessions.viewers if s.id in viewer.location)
    return viewer, viewer.pc.sctp, session


def chunk(tsn: int, flags: int, stream: int, seq: int, data: bytes) -> DataChunk:
    c = DataChunk(flags=flags)
    c.tsn, c.stream_id, c.stream_seq, c.protocol = tsn, stream, seq, WEBRTC_STRING
    c.user_data = data
    return c


def held(transport: Any) -> int:
    """Chunks the server's SCTP holds for reassembly."""
    return sum(len(s.reassembly) for s in transport._inbound_streams.values())


async def aborted(
    srv: Server, session: Any, client: Any, reason: str = "held for reassembly"
) -> None:
    """The server aborted the association (the client got the ABORT) and ended the session,
    and still serves: a new viewer gets its channel."""
    server_sctp = session.pc.sctp
    assert await until(lambda: client.state == "closed", 15), (
        f"no ABORT reached the peer; the server holds {held(server_sctp)} chunks"
    )
    assert await until(lambda: session.closed, 15), "the session was not closed"
    assert held(server_sctp) == 0
    assert reason in sctp.bounds(server_sctp).aborted


@pytest.mark.gpu
@pytest.mark.timeout(120)
async def test_gapped_tsns_abort_the_association_and_end_the_session():
    """Ordered messages behind a TSN that never comes: held until the chunk cap, then ABORT."""
    srv = await start_server(small_config())
    try:
        async with aiohttp.ClientSession() as http:
            viewer, client, session = await connected(http, srv)
            first = client._local_tsn  # never sent: every chunk below waits behind it
            flags = SCTP_DATA_FIRST_FRAG | SCTP_DATA_LAST_FRAG
            sid = viewer.channel.id
            for k in range(2 * sctp.MAX_BUFFERED_CHUNKS):
                if client.state == "closed":
                    break
                await client._send_chunk(chunk(first + 1 + k, flags, sid, 100 + k, b"{}"))
                if k % 10 == 0:
                    await asyncio.sleep(0.005)  # UDP on loopback drops a burst
            await aborted(srv, session, client)
            other, _, _ = await connected(http, srv)  # the server kept serving
            await other.close(http, srv.url)
            await viewer.close()
    finally:
        await srv.close()


@pytest.mark.gpu
@pytest.mark.timeout(120)
async def test_a_message_that_never_ends_is_bounded_in_bytes():
    """A first fragment then middle fragments with consecutive TSNs (nothing is missing, so
    the cumulative TSN moves on) and no last one: aborted at the byte cap."""
    srv = await start_server(small_config())
    try:
        async with aiohttp.ClientSession() as http:
            viewer, client, session = await connected(http, srv)
            tsn, sid, seq = client._local_tsn, viewer.channel.id, 0
            body = b"x" * 1100
            n = sctp.MAX_BUFFERED_BYTES // len(body) + 10
            assert n < sctp.MAX_BUFFERED_CHUNKS, "the byte cap should trip before the chunk cap"
            client._local_tsn = tsn + n  # the client's own sends stay out of our way
            for k in range(n):
                if client.state == "closed":
                    break
                flags = SCTP_DATA_FIRST_FRAG if k == 0 else 0
                await client._send_chunk(chunk(tsn + k, flags, sid, seq, body))
                if k % 10 == 0:
                    await asyncio.sleep(0.005)  # UDP on loopback drops a burst
            await aborted(srv, session, client)
            assert "bytes held" in sctp.bounds(session.pc.sctp).aborted
            await viewer.close()
    finally:
        await srv.close()


@pytest.mark.gpu
@pytest.mark.timeout(120)
async def test_fragments_no_chunk_can_complete_abort_at_once():
    """Unordered middle fragments with consecutive TSNs: their first fragment can never come
    (its TSN is behind them and was not a first fragment), and aiortc scanned past them for
    every later chunk on the stream (10x the CPU of a message with 500 parked)."""
    srv = await start_server(small_config())
    try:
        async with aiohttp.ClientSession() as http:
            viewer, client, session = await connected(http, srv)
            tsn, sid = client._local_tsn, viewer.channel.id
            client._local_tsn = tsn + 100
            for k in range(100):
                if client.state == "closed":
                    break
                await client._send_chunk(chunk(tsn + k, SCTP_DATA_UNORDERED, sid, 0, b"x"))
                if k % 10 == 0:
                    await asyncio.sleep(0.005)
            await aborted(srv, session, client, reason="no chunk can complete")
            await viewer.close()
    finally:
        await srv.close()


@pytest.mark.gpu
@pytest.mark.timeout(120)
async def test_a_forward_tsn_naming_many_streams_aborts():
    """Each stream a FORWARD TSN names becomes an inbound stream in aiortc (up to 65535)."""
    srv = await start_server(small_config())
    try:
        async with aiohttp.ClientSession() as http:
            viewer, client, session = await connected(http, srv)
            forward = ForwardTsnChunk()
            forward.cumulative_tsn = client._local_tsn
            forward.streams = [(1000 + k, 0) for k in range(2 * sctp.MAX_STREAMS)]
            client._local_tsn += 1
            await client._send_chunk(forward)
            await aborted(srv, session, client, reason="FORWARD TSN")
            await viewer.close()
    finally:
        await srv.close()


@pytest.mark.gpu
@pytest.mark.timeout(120)
async def test_a_tsn_far_past_the_window_is_dropped_and_the_channel_keeps_working():
    srv = await start_server(small_config())
    try:
        async with aiohttp.ClientSession() as http:
            viewer, client, session = await connected(http, srv)
            server_sctp = session.pc.sctp
            far = client._local_tsn + 10 * sctp.WINDOW_CHUNKS
            flags = SCTP_DATA_FIRST_FRAG | SCTP_DATA_LAST_FRAG
            await client._send_chunk(chunk(far, flags, viewer.channel.id, 7, b"{}"))
            assert await until(lambda: sctp.bounds(server_sctp).dropped == 1, 10)
            assert not server_sctp._sack_misordered, "the far TSN was kept"
            before = session.control.counters.received
            viewer.channel.send(json.dumps({"type": "ping", "t": 1}))
            assert await until(lambda: session.control.counters.received == before + 1, 10)
            assert not session.closed
            await viewer.close(http, srv.url)
    finally:
        await srv.close()


@pytest.mark.gpu
@pytest.mark.timeout(120)
async def test_a_well_behaved_peers_largest_legal_messages_still_arrive():
    """The largest message our SDP allows (aiortc's 262144 bytes), and a burst of messages
    at the control channel's 4096-character cap: all reassembled and delivered (the channel
    refuses the big one itself), and the association stays up."""
    srv = await start_server(small_config())
    try:
        async with aiohttp.ClientSession() as http:
            viewer, client, session = await connected(http, srv)
            counters = session.control.counters
            before = counters.received
            viewer.channel.send(b"\0" * 262144)
            for _ in range(60):
                viewer.channel.send(json.dumps({"type": "ping", "pad": "p" * 4000}))
            assert await until(lambda: counters.received == before + 61, 30), (
                counters.received - before
            )
            assert counters.refused.get("not text or too big") == 1
            assert not sctp.bounds(session.pc.sctp).aborted
            assert not session.closed and client.state == "connected"
            await viewer.close(http, srv.url)
    finally:
        await srv.close()
