"""Which DTLS engine a peer connection's handshake runs on, and the patches that choose it.

- WHIP publishers: GnuTLS (gnutls.py). FFmpeg's WHIP muxer signs its DTLS with a secp224r1
  ECDSA key that aiortc's OpenSSL 4.0 cannot take ("wrong curve" / "no shared cipher", both
  roles); GnuTLS takes it, and Chromium's, GStreamer's (RSA) and aiortc's certificates too.
- WHEP viewers: aiortc's own pyOpenSSL engine, with the ECDHE-RSA suites added to its
  ECDHE-ECDSA-only list. GStreamer's webrtcbin (OpenSSL 3.0) has an RSA certificate: as the
  DTLS server it found "no shared cipher" in our ClientHello. With the RSA suites it plays
  (tests/stream/test_interop_gstreamer.py). Browsers keep the ECDSA suites they chose before.

Viewers stay on aiortc's engine because they are the many and the browsers' path is the one
aiortc itself tests; publishers are one at a time and need GnuTLS for FFmpeg.

The choice is made where aiortc makes its SSL context, `RTCCertificate._create_ssl_context`,
which knows only the certificate: a session marks its peer connection's certificate (by its
public fingerprint) with `use_gnutls(pc)` before the handshake starts. aiortc's module-level
`SSL.Connection` is wrapped so a GnuTLS context gets a GnuTLS session, and
`RTCDtlsTransport._write_ssl` is called until GnuTLS' queue of datagrams is empty (aiortc
sends one read per call, and a GnuTLS flight can be several datagrams). patches.DTLS lists
these attributes. Upstream: FFmpeg's tls_gnutls moves to P-256 in ossrs/ffmpeg-webrtc#70
(RFC 8827 6.5 makes P-256 mandatory; the FFmpeg 8.1 in PyAV 18 predates it, and publishers in
the field will run older FFmpegs for years); aiortc PR #1392 (open) adds an ECDHE-RSA suite
for GStreamer, and aiortc#956 asks for a cipher-suite API.
"""

from __future__ import annotations

import importlib
import logging
from collections import OrderedDict
from typing import Any

from aiortc import RTCPeerConnection
from cryptography.hazmat.primitives import serialization

from . import gnutls, patches

log = logging.getLogger(__name__)

OPENSSL_CIPHERS = (
    b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:"
    b"ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:"
    b"ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305:"
    b"ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA"
)
MAX_MARKED = 4096  # certificates marked and not yet used: sessions that never connected

# sha-256 fingerprints of local certificates whose DTLS runs on GnuTLS
_marked: OrderedDict[str, None] = OrderedDict()
_gnutls_ok = False
_installed = False


def install() -> None:
    """Patch aiortc's DTLS once, at service start (every attribute checked first)."""
    global _installed, _gnutls_ok
    patches.check(patches.DTLS)
    if _installed:
        return
    try:
        log.info("DTLS: WHIP publishers on GnuTLS %s", gnutls.version())
        _gnutls_ok = True
    except gnutls.GnuTLSUnavailable as e:
        log.error("DTLS: %s; FFmpeg WHIP publishers cannot connect", e)
    dt: Any = importlib.import_module("aiortc.rtcdtlstransport")
    make_context = dt.RTCCertificate._create_ssl_context
    write_ssl = dt.RTCDtlsTransport._write_ssl

    def _create_ssl_context(self: Any, srtp_profiles: list[Any]) -> Any:
        if _gnutls_ok and _marked.pop(_fingerprint(self), False) is None:
            return gnutls.Context(
                self._cert.public_bytes(serialization.Encoding.PEM),
                self._key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ),
                [p.openssl_profile for p in srtp_profiles],
            )
        ctx = make_context(self, srtp_profiles)
        ctx.set_cipher_list(OPENSSL_CIPHERS)
        return ctx

    async def _write_ssl(self: Any) -> None:
        await write_ssl(self)
        ssl = self._ssl
        while isinstance(ssl, gnutls.Connection) and ssl.pending_datagrams():
            await write_ssl(self)

    dt.RTCCertificate._create_ssl_context = _create_ssl_context
    dt.RTCDtlsTransport._write_ssl = _write_ssl
    dt.SSL = _SSLModule(dt.SSL)
    _installed = True


class _SSLModule:
    """`OpenSSL.SSL` as aiortc.rtcdtlstransport sees it: the same, but Connection() makes a
    GnuTLS session for a GnuTLS context."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.Connection = gnutls.connection_factory(real.Connection)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def _fingerprint(certificate: Any) -> str:
    return str(next(f.value for f in certificate.getFingerprints() if f.algorithm == "sha-256"))


def use_gnutls(pc: RTCPeerConnection) -> bool:
    """This peer connection's DTLS handshake will run on GnuTLS (call before it starts, i.e.
    before its answer is returned). False when GnuTLS is unavailable."""
    if not _gnutls_ok:
        return False
    for transceiver in pc.getTransceivers():
        params = transceiver.receiver.transport.getLocalParameters()
        for f in params.fingerprints:
            if f.algorithm == "sha-256":
                _marked[f.value] = None
    while len(_marked) > MAX_MARKED:
        _marked.popitem(last=False)
    return True


def forget(pc: RTCPeerConnection) -> None:
    """Drop an unused mark (the session closed before its handshake)."""
    for transceiver in pc.getTransceivers():
        for f in transceiver.receiver.transport.getLocalParameters().fingerprints:
            _marked.pop(f.value, None)
