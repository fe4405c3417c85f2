"""DTLS handshakes in memory, both roles: aiortc's OpenSSL engine against a peer with a
secp224r1 certificate (what FFmpeg's GnuTLS backend makes) fails, the GnuTLS engine
(stream/webrtc/gnutls.py) completes it with the same SRTP keys on both sides and the peer's
certificate checkable against its fingerprint; an RSA peer (GStreamer) needs the ECDHE-RSA
suites dtls.py adds."""

from __future__ import annotations

import pytest
from aiortc.rtcdtlstransport import (
    SRTP_PROFILES,
    RTCCertificate,
    certificate_digest,
    generate_certificate,
)
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from OpenSSL import SSL

from stream.webrtc import dtls, gnutls

EXPORTER = b"EXTRACTOR-dtls_srtp"


@pytest.fixture(scope="module", autouse=True)
def _installed():
    dtls.install()


def cert_on(key) -> RTCCertificate:
    return RTCCertificate(key=key, cert=generate_certificate(key))


def openssl(cert: RTCCertificate, stock: bool = False):
    if stock:  # aiortc 1.16's own context, before dtls.py widened its suites
        ctx = SSL.Context(SSL.DTLS_METHOD)
        ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, lambda *a: True)
        ctx.use_certificate(cert._cert)
        ctx.use_privatekey(cert._key)
        ctx.set_cipher_list(
            b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:"
            b"ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA"
        )
        ctx.set_tlsext_use_srtp(b":".join(p.openssl_profile for p in SRTP_PROFILES))
        return SSL.Connection(ctx)
    return SSL.Connection(cert._create_ssl_context(srtp_profiles=SRTP_PROFILES))


def gnu(cert: RTCCertificate) -> gnutls.Connection:
    return gnutls.Connection(
        gnutls.Context(
            cert._cert.public_bytes(ser.Encoding.PEM),
            cert._key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption()),
            [p.openssl_profile for p in SRTP_PROFILES],
        )
    )


def handshake(server, client) -> str:
    """Run both sides until done; "" when they agree, else what failed."""
    server.set_accept_state()
    client.set_connect_state()
    done = {id(server): False, id(client): False}
    for _ in range(30):
        for me, peer in ((client, server), (server, client)):
            if not done[id(me)]:
                try:
                    me.do_handshake()
                    done[id(me)] = True
                except SSL.WantReadError:
                    pass
                except SSL.Error as e:
                    return f"{'server' if me is server else 'client'}: {e}"
            while True:
                try:
                    data = me.bio_read(1500)
                except SSL.Error:
                    break
                if not data:
                    break
                peer.bio_write(data)
        if all(done.values()):
            return ""
    return "stalled"


def agree(server, client, server_cert, client_cert) -> None:
    assert server.get_selected_srtp_profile() == client.get_selected_srtp_profile() != b""
    n = 2 * (16 + 14)
    assert server.export_keying_material(EXPORTER, n) == client.export_keying_material(EXPORTER, n)
    for me, other in ((server, client_cert), (client, server_cert)):
        peer = me.get_peer_certificate(as_cryptography=True)
        assert certificate_digest(peer, "sha-256") == certificate_digest(other._cert, "sha-256")


P256 = ec.SECP256R1
P224 = ec.SECP224R1  # FFmpeg's GnuTLS DTLS key (gnutls_sec_param_to_pk_bits(ECDSA, MEDIUM))


@pytest.mark.parametrize("ffmpeg_is", ["server", "client"])
def test_openssl_cannot_complete_a_handshake_with_a_p224_peer(ffmpeg_is):
    ours, theirs = (
        cert_on(ec.generate_private_key(P256())),
        cert_on(ec.generate_private_key(P224())),
    )
    if ffmpeg_is == "server":
        failed = handshake(gnu(theirs), openssl(ours))
    else:
        failed = handshake(openssl(ours), gnu(theirs))
    assert failed, "aiortc's OpenSSL took a P-224 peer: dtls.py's GnuTLS engine may be moot"
    assert "wrong curve" in failed or "no shared cipher" in failed or "alert" in failed, failed


@pytest.mark.parametrize("ffmpeg_is", ["server", "client"])
def test_gnutls_engine_completes_it_with_matching_keys_and_fingerprints(ffmpeg_is):
    ours, theirs = (
        cert_on(ec.generate_private_key(P256())),
        cert_on(ec.generate_private_key(P224())),
    )
    pair = (gnu(theirs), gnu(ours)) if ffmpeg_is == "server" else (gnu(ours), gnu(theirs))
    certs = (theirs, ours) if ffmpeg_is == "server" else (ours, theirs)
    assert handshake(*pair) == ""
    agree(*pair, *certs)


@pytest.mark.parametrize("gnutls_is", ["server", "client"])
def test_gnutls_engine_and_aiortcs_openssl_agree(gnutls_is):
    # a browser-like peer (P-256, OpenSSL) against a WHIP session on GnuTLS
    a, b = cert_on(ec.generate_private_key(P256())), cert_on(ec.generate_private_key(P256()))
    server, client = (gnu(a), openssl(b)) if gnutls_is == "server" else (openssl(a), gnu(b))
    assert handshake(server, client) == ""
    agree(server, client, a, b)


def test_an_rsa_server_needs_the_rsa_suites():
    # GStreamer's webrtcbin is the DTLS server with an RSA certificate when it views over WHEP
    gst = cert_on(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    ours = cert_on(ec.generate_private_key(P256()))
    stock = handshake(openssl(gst, stock=True), openssl(ours, stock=True))
    assert "no shared cipher" in stock, stock
    server, client = openssl(gst), openssl(ours)
    assert handshake(server, client) == ""
    agree(server, client, gst, ours)


def test_a_client_without_a_certificate_is_refused():
    # aiortc checks the peer's certificate against the SDP fingerprint afterwards: the GnuTLS
    # server must insist on one, as aiortc's OpenSSL context does
    ctx = SSL.Context(SSL.DTLS_METHOD)
    ctx.set_tlsext_use_srtp(b"SRTP_AES128_CM_SHA1_80")
    ours = cert_on(ec.generate_private_key(P256()))
    failed = handshake(gnu(ours), SSL.Connection(ctx))
    assert failed.startswith("server:") and "certificate" in failed.lower(), failed


def test_many_sessions_do_not_leak_gnutls_state():
    import gc
    import resource

    a, b = cert_on(ec.generate_private_key(P256())), cert_on(ec.generate_private_key(P224()))

    def run(n: int) -> None:
        for _ in range(n):
            assert handshake(gnu(a), gnu(b)) == ""
        gc.collect()

    run(30)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run(150)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 4096, f"max RSS grew {grown_kib} KiB over 150 handshakes"
