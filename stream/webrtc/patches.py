"""Every private aiortc / aioice attribute framesmith patches or reads, checked at start-up.

aiortc and aioice have no public hooks for what the service needs (a viewer's keyframe request
reaching the shared encoder, ICE consent timing, a UDP port range, an announced address,
H.264 profiles beyond Constrained Baseline (h264.py), a WHIP publisher's media keeping its
consent fresh (consent.py), a DTLS handshake FFmpeg and GStreamer can complete (dtls.py),
receive bounds on the data channel's SCTP (sctp.py), the playout-delay extension
(playout.py)), so
we patch their internals. A renamed attribute would otherwise fail silently (a viewer's PLI
stops reaching the encoder, and the viewer shows broken frames until the periodic keyframe),
so `check()` runs when the service starts and fails loudly, naming the attribute and why we
need it. pyproject pins both libraries below their next minor release; whoever raises the pin
runs tests/stream/test_patches.py (a real peer's PLI must reach the encoder).
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class LibraryChanged(RuntimeError):
    """aiortc or aioice no longer has an attribute framesmith relies on."""


@dataclass(frozen=True)
class Patch:
    module: str
    attribute: str  # dotted below the module: "RTCRtpSender._send_keyframe"
    why: str
    # for an attribute set in __init__ (not on the class): makes an instance to look on
    sample: Callable[[], Any] | None = None

    def resolve(self) -> Any:
        obj: Any = importlib.import_module(self.module)
        parts = self.attribute.split(".")
        if self.sample is not None:
            obj, parts = self.sample(), parts[1:]
        for part in parts:
            if not hasattr(obj, part):
                raise LibraryChanged(
                    f"{self.module}.{self.attribute} is gone (installed {_versions()}); "
                    f"framesmith needs it: {self.why}. Install the versions pyproject pins."
                )
            obj = getattr(obj, part)
        return obj


KEYFRAME = Patch(
    "aiortc.rtcrtpsender",
    "RTCRtpSender._send_keyframe",
    "a viewer's PLI/FIR calls it; replaced per sender so the request reaches the shared "
    "encoder (aiortc only sets a flag its own encoder reads, and packet tracks have none)",
)
CONSENT = (
    Patch("aioice.ice", "CONSENT_INTERVAL", "ICE consent check interval (a dead peer's timeout)"),
    Patch("aioice.ice", "CONSENT_FAILURES", "ICE consent failures before a peer is dropped"),
)
PORT_RANGE = (
    Patch("aioice.ice", "asyncio", "host candidates bound in the configured UDP port range"),
    Patch(
        "aioice.ice",
        "Connection.get_component_candidates",
        "host candidates also announced at the configured public address",
    ),
)


def _ice_connection() -> Any:
    from aioice.ice import Connection

    return Connection(ice_controlling=False)


def _ice_transport() -> Any:
    from aiortc import RTCIceGatherer, RTCIceTransport

    return RTCIceTransport(RTCIceGatherer())


CODECS = Patch(
    "aiortc.codecs",
    "CODECS",
    "the codec table an offer is matched against: H.264 Main/High appended so publishers' "
    "High-profile offers are accepted (h264.py)",
)
ICE_CONNECTION_WHY = "a WHIP publisher's aioice connection, whose consent its media keeps fresh"
CONSENT_LOOP = (
    *CONSENT,
    Patch("aioice.ice", "Connection.query_consent", "replaced: media keeps consent (consent.py)"),
    Patch("aioice.ice", "Connection.build_request", "the consent check's STUN request"),
    Patch("aioice.ice", "Connection.close", "consent expired: the connection is closed"),
    Patch(
        "aioice.ice", "Connection._nominated", "the pairs consent is checked on", _ice_connection
    ),
    Patch(
        "aioice.ice",
        "Connection._query_consent_task",
        "cleared when consent expires, as aioice does",
        _ice_connection,
    ),
    Patch("aioice.stun", "TransactionError", "an unanswered consent check"),
    Patch(
        "aiortc.rtcicetransport",
        "RTCIceTransport._connection",
        ICE_CONNECTION_WHY,
        _ice_transport,
    ),
)


def _certificate() -> Any:
    from aiortc.rtcdtlstransport import RTCCertificate

    return RTCCertificate.generateCertificate()


def _dtls_transport() -> Any:
    from aiortc.rtcdtlstransport import RTCDtlsTransport

    return RTCDtlsTransport(_ice_transport(), [_certificate()])


DTLS = (
    Patch(
        "aiortc.rtcdtlstransport",
        "RTCCertificate._create_ssl_context",
        "replaced: a WHIP publisher's DTLS on GnuTLS, ECDHE-RSA suites for viewers (dtls.py)",
    ),
    Patch("aiortc.rtcdtlstransport", "RTCCertificate._cert", "its PEM for GnuTLS", _certificate),
    Patch("aiortc.rtcdtlstransport", "RTCCertificate._key", "its PEM for GnuTLS", _certificate),
    Patch(
        "aiortc.rtcdtlstransport",
        "SSL.Connection",
        "wrapped: a GnuTLS context gets a GnuTLS session (dtls.py)",
    ),
    Patch(
        "aiortc.rtcdtlstransport",
        "RTCDtlsTransport._write_ssl",
        "called until every GnuTLS datagram of a flight is sent",
    ),
    Patch(
        "aiortc.rtcdtlstransport",
        "RTCDtlsTransport._ssl",
        "the session whose queued datagrams are flushed",
        _dtls_transport,
    ),
)


def _sender() -> Any:
    from aiortc import RTCRtpSender

    async def make() -> Any:  # a sender takes the running loop
        return RTCRtpSender("video", _dtls_transport())

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    return RTCRtpSender("video", _dtls_transport())


SENDER_RTT = "_RTCRtpSender__rtt"
SENDER_ENCODER = "_RTCRtpSender__encoder"
RTCP = Patch(
    "aiortc.rtcrtpsender",
    "RTCRtpSender._handle_rtcp_packet",
    "wrapped per sender: a viewer's receiver reports and REMB reach its link estimate "
    "(link.py); aiortc keeps the RTT private and gives REMB only to its own encoder",
)
LINK = (
    RTCP,
    Patch("aiortc.rtcrtpsender", f"RTCRtpSender.{SENDER_RTT}", "a viewer's RTT", _sender),
    Patch("aiortc.rtcrtpsender", "RTCRtpSender._ssrc", "whose reports are ours", _sender),
    Patch(
        "aiortc.rtcrtpsender",
        f"RTCRtpSender.{SENDER_ENCODER}",
        "set before the sender starts: the VP8 packetizer that writes temporal-layer fields "
        "(layers.py); aiortc makes its own when it is None",
        _sender,
    ),
)


def _receiver() -> Any:
    from aiortc.rtcrtpreceiver import RTCRtpReceiver

    return RTCRtpReceiver("video", _dtls_transport())


def _remote_track() -> Any:
    from aiortc.rtcrtpreceiver import RemoteStreamTrack

    return RemoteStreamTrack("video")


RECEIVER_QUEUE = "_RTCRtpReceiver__decoder_queue"
RECEIVER_THREAD = "_RTCRtpReceiver__decoder_thread"
RECEIVER_DECODE_ERROR = "_RTCRtpReceiver__decoder_error"
INGEST = (
    Patch(
        "aiortc.rtcrtpreceiver",
        f"RTCRtpReceiver.{RECEIVER_QUEUE}",
        "replaced per WHIP receiver: each encoded frame's headers checked before the decoder "
        "and the queue bounded (ingest.py)",
        _receiver,
    ),
    Patch(
        "aiortc.rtcrtpreceiver",
        f"RTCRtpReceiver.{RECEIVER_THREAD}",
        "the gate is installed only before the decoder thread starts",
        _receiver,
    ),
    Patch(
        "aiortc.rtcrtpreceiver",
        f"RTCRtpReceiver.{RECEIVER_DECODE_ERROR}",
        "set when frames were dropped: the receiver's next packet sends a PLI",
        _receiver,
    ),
    Patch(
        "aiortc.rtcrtpreceiver",
        "RemoteStreamTrack._queue",
        "replaced per WHIP track: the newest decoded frames only (ingest.py)",
        _remote_track,
    ),
)


def _sctp_transport() -> Any:
    from aiortc.rtcsctptransport import RTCSctpTransport

    async def make() -> Any:  # a transport takes the running loop
        return RTCSctpTransport(_dtls_transport())

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    return RTCSctpTransport(_dtls_transport())


def _inbound_stream() -> Any:
    from aiortc.rtcsctptransport import InboundStream

    return InboundStream()


SCTP_MODULE = "aiortc.rtcsctptransport"
SCTP_WHY = "the data channel's receive bounds (sctp.py): "
SCTP = (
    *(
        Patch(SCTP_MODULE, f"RTCSctpTransport.{name}", SCTP_WHY + why)
        for name, why in (
            ("_receive_data_chunk", "wrapped: DATA past our window dropped, reassembly bounded"),
            ("_receive_forward_tsn_chunk", "wrapped: held to the same window and bounds"),
            ("_mark_received", "replaced: early TSNs consolidated without sorting them"),
            ("_send_sack", "replaced: a SACK reports a bounded number of gaps"),
            ("start", "wrapped: our INIT advertises a smaller receive window"),
            ("_abort", "sends the ABORT chunk when the peer passes our bounds"),
            ("_set_state", "the association closed after an ABORT"),
            ("_send_chunk", "sends our SACK"),
            ("State.CLOSED", "the association closed after an ABORT"),
            ("transport", "the DTLS transport stopped after an ABORT (ends the session)"),
        )
    ),
    *(
        Patch(SCTP_MODULE, f"RTCSctpTransport.{name}", SCTP_WHY + why, _sctp_transport)
        for name, why in (
            ("_advertised_rwnd", "the receive window we advertise"),
            ("_last_received_tsn", "the cumulative TSN a chunk's distance is measured from"),
            ("_sack_misordered", "the early TSNs (a set)"),
            ("_sack_duplicates", "the duplicate TSNs a SACK reports"),
            ("_sack_needed", "cleared when a SACK is sent"),
            ("_inbound_streams", "the inbound streams whose reassembly is bounded"),
        )
    ),
    Patch(
        SCTP_MODULE,
        "InboundStream.reassembly",
        SCTP_WHY + "the chunks a stream holds (counted; replaced when aiortc delivers)",
        _inbound_stream,
    ),
    Patch(SCTP_MODULE, "SackChunk", SCTP_WHY + "the SACK we build"),
    Patch(SCTP_MODULE, "DataChunk", SCTP_WHY + "a DATA chunk's tsn and user_data"),
    Patch(SCTP_MODULE, "ForwardTsnChunk", SCTP_WHY + "its cumulative TSN and streams"),
)

PLAYOUT_WHY = "the playout-delay extension on the video we send (playout.py): "
PLAYOUT = (
    Patch("aiortc.codecs", "HEADER_EXTENSIONS", PLAYOUT_WHY + "the video URIs negotiated"),
    Patch("aiortc.rtp", "HeaderExtensionsMap", PLAYOUT_WHY + "configure/set wrapped"),
    Patch("aiortc.rtp", "HeaderExtensionsMap.set", PLAYOUT_WHY + "writes a packet's extensions"),
    Patch("aiortc.rtp", "unpack_header_extensions", PLAYOUT_WHY + "aiortc's extensions"),
    Patch("aiortc.rtp", "pack_header_extensions", PLAYOUT_WHY + "them and ours, packed"),
    Patch("aiortc.rtp", "HeaderExtensionsMap.configure", PLAYOUT_WHY + "the negotiated ids"),
)

SERVICE_PATCHES = tuple(
    dict.fromkeys(
        (
            KEYFRAME,
            *CONSENT,
            *PORT_RANGE,
            CODECS,
            *CONSENT_LOOP,
            *DTLS,
            *LINK,
            *INGEST,
            *SCTP,
            *PLAYOUT,
        )
    )
)


def check(patches: tuple[Patch, ...] = SERVICE_PATCHES) -> None:
    """Raise LibraryChanged naming every attribute that is missing."""
    missing = []
    for p in patches:
        try:
            p.resolve()
        except LibraryChanged as e:
            missing.append(str(e))
    if missing:
        raise LibraryChanged("; ".join(missing))


def on_keyframe_request(sender: Any, callback: Callable[[], None]) -> None:
    """Route this sender's PLI/FIR to `callback` (see KEYFRAME)."""
    KEYFRAME.resolve()
    sender._send_keyframe = callback


def use_packer(sender: Any, packer: Any) -> None:
    """This sender packetizes with `packer` (see LINK: aiortc makes one when none is set)."""
    require(sender, SENDER_ENCODER, "the VP8 temporal-layer packetizer")
    setattr(sender, SENDER_ENCODER, packer)


def set_consent(interval_s: float, failures: int) -> None:
    """aioice's ICE consent timing (default 5 s x 6: a vanished peer goes after ~30 s)."""
    module = importlib.import_module("aioice.ice")
    for p, value in zip(CONSENT, (interval_s, failures), strict=True):
        p.resolve()
        setattr(module, p.attribute, value)


def require(obj: object, attribute: str, why: str) -> Any:
    """A private attribute of a live aiortc object (tools patch a viewer's receive path)."""
    if not hasattr(obj, attribute):
        raise LibraryChanged(
            f"{type(obj).__module__}.{type(obj).__name__}.{attribute} is gone (installed "
            f"{_versions()}); needed for: {why}"
        )
    return getattr(obj, attribute)


def _versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in ("aiortc", "aioice"):
        try:
            out.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            out.append(f"{name} ?")
    return ", ".join(out)
