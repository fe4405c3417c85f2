"""ICE consent freshness for WHIP publishers: authenticated media from the publisher counts.

RFC 7675 consent checks protect *sending*: a peer that stops answering them must stop
receiving our packets. aioice 0.13 sends a STUN binding request every CONSENT_INTERVAL and
closes the ICE connection after CONSENT_FAILURES unanswered ones (the service runs 1 s x 3,
serve config's `server.ice_consent_*`). FFmpeg's WHIP muxer (libavformat/whip.c, FFmpeg 8.1
in PyAV 18) answers no STUN once it is connected, so every FFmpeg publisher was dropped ~4 s
into its stream while its media still flowed.

What we send a WHIP publisher: no media (its audio m-line is answered `inactive`, video
`recvonly`), only RTCP (receiver reports, NACK, PLI, REMB) and the consent checks themselves.
What we decide: for a WHIP session only, a consent round whose STUN check went unanswered is
still fresh when the publisher's SRTP packets arrived since the previous round. Those packets
passed SRTP authentication with keys from this session's DTLS handshake, so they come from
the peer that consented at set-up and still sends to us: a stronger proof of life than a STUN
answer. A publisher that stops sending and does not answer STUN still goes after
CONSENT_FAILURES rounds; WHEP viewers (to whom we send media) keep plain RFC 7675.

aioice has no hook for this, so `install()` replaces `Connection.query_consent` with the
same loop plus that rule (patches.CONSENT_LOOP lists what it uses); `media_counts_as_consent`
registers a publisher's peer connection.
"""

from __future__ import annotations

import asyncio
import logging
import random
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import aioice.ice
from aioice import stun
from aiortc import RTCPeerConnection

from . import patches

log = logging.getLogger(__name__)

MediaCount = Callable[[], Awaitable[int]]
# aioice Connection -> how many authenticated RTP packets its peer has sent so far
_media: weakref.WeakKeyDictionary[Any, MediaCount] = weakref.WeakKeyDictionary()
_installed = False


async def query_consent(self: aioice.ice.Connection) -> None:
    """aioice's RFC 7675 loop (Connection.query_consent, aioice 0.13), plus the WHIP rule:
    an unanswered round is forgiven when the peer's authenticated media arrived in it."""
    assert self.remote_password is not None
    failures = 0
    count = _media.get(self)
    seen = await count() if count is not None else 0
    while True:
        await asyncio.sleep(aioice.ice.CONSENT_INTERVAL * (0.8 + 0.4 * random.random()))
        answered = True
        for pair in self._nominated.values():
            request = self.build_request(pair, nominate=False)
            try:
                await pair.protocol.request(
                    request,
                    pair.remote_addr,
                    integrity_key=self.remote_password.encode("utf8"),
                    retransmissions=0,
                )
            except stun.TransactionError:
                answered = False
        count = _media.get(self)
        now = await count() if count is not None else seen
        if answered or now > seen:
            failures = 0
        else:
            failures += 1
        seen = now
        if failures >= aioice.ice.CONSENT_FAILURES:
            log.info("ICE consent expired: no STUN answer and no media for %d round(s)", failures)
            self._query_consent_task = None
            await self.close()
            return


def install() -> None:
    """Replace aioice's consent loop (once, at service start)."""
    global _installed
    patches.check(patches.CONSENT_LOOP)
    if not _installed:
        aioice.ice.Connection.query_consent = query_consent  # type: ignore[method-assign]
        _installed = True


def media_counts_as_consent(pc: RTCPeerConnection) -> None:
    """From now on this (WHIP) peer connection's received SRTP keeps its consent fresh. Call
    after setRemoteDescription (the ICE transport exists then)."""

    async def received() -> int:
        total = 0
        for receiver in pc.getReceivers():
            for stat in (await receiver.getStats()).values():
                if stat.type == "inbound-rtp":
                    total += stat.packetsReceived
        return total

    for transceiver in pc.getTransceivers():
        ice = transceiver.receiver.transport.transport
        connection = patches.require(ice, "_connection", patches.ICE_CONNECTION_WHY)
        _media[connection] = received
