"""WebRTC: WHEP viewers and WHIP publishers (aiortc), ICE settings, the control channel."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import consent, dtls, h264, patches, playout, sctp
from .host import SessionHost, SessionKind
from .ice import browser_ice, configure_network, link_headers
from .sessions import Session, Sessions
from .signalling import SignallingError

if TYPE_CHECKING:
    from ..config import ServerConfig

__all__ = [
    "Session",
    "SessionHost",
    "SessionKind",
    "Sessions",
    "SignallingError",
    "browser_ice",
    "configure",
    "link_headers",
]


def configure(server: ServerConfig) -> None:
    """Process-wide aiortc/aioice settings of a service, once at its start: every patched
    attribute checked first (a changed library fails here, naming it), then ICE consent
    timing (and the loop in which a WHIP publisher's media counts as consent), the UDP port
    range and the announced address, the H.264 profiles publishers may send, and the DTLS
    engines (GnuTLS for publishers, OpenSSL with RSA suites for viewers), and the data
    channel's SCTP receive bounds, and the playout-delay extension's bounds on the video we
    send unless the config turns it off."""
    patches.check()
    patches.set_consent(server.ice_consent_interval_s, server.ice_consent_failures)
    consent.install()
    configure_network(server.ice_port_min, server.ice_port_max, server.ice_public_address)
    h264.add_receive_profiles()
    dtls.install()
    sctp.install()
    if server.playout_delay_ms:
        playout.install(*server.playout_delay_ms)
    else:
        playout.uninstall()
