"""DTLS 1.2 through the system's GnuTLS (ctypes), shaped like the part of pyOpenSSL's
`SSL.Connection` that aiortc's RTCDtlsTransport calls.

Why a second TLS library: FFmpeg's WHIP muxer does its DTLS with GnuTLS (the FFmpeg 8.1 in
PyAV 18's wheel) and signs with an ECDSA key on secp224r1, the curve GnuTLS picks for
`gnutls_sec_param_to_pk_bits(GNUTLS_PK_ECDSA, GNUTLS_SEC_PARAM_MEDIUM)`. aiortc's DTLS is
pyOpenSSL on the OpenSSL 4.0 bundled in `cryptography`'s wheel, which has no TLS support for
that curve: the handshake fails with "wrong curve" (alert illegal_parameter) when FFmpeg is
the client and "no shared cipher" when it is the server, and `SSL_CTX_set1_groups_list` refuses
"P-224". GnuTLS (Debian's libgnutls30 3.7.9) completes it in both roles. Measured in memory
(tests/stream/test_dtls.py) and with FFmpeg's muxer through PyAV (tests/stream/
test_interop_ffmpeg.py); found by the interop study in docs/interop.md.

What stays as aiortc does it: the same certificate and key (so the SDP fingerprint is
unchanged), a client certificate required in both roles (aiortc then checks it against the
SDP fingerprint), SRTP keys from the RFC 5705 exporter, the SRTP profiles aiortc offers that
this GnuTLS knows (3.7.9 has AES128_CM_HMAC_SHA1_80 only, which FFmpeg, GStreamer and
Chromium pick anyway). What differs: the cipher suites are GnuTLS' NORMAL set restricted to
DTLS 1.2 (ECDHE with ECDSA or RSA certificates), so RSA peers (GStreamer) work too; with
Chromium GnuTLS picks ECDHE-ECDSA-CHACHA20-POLY1305. `bio_read` returns whole datagrams
(aiortc must flush them all: dtls.py).

The session is non-blocking and owns no socket: aiortc hands received datagrams to
`bio_write`, GnuTLS's pull callback reads them, and its push callback queues the datagrams it
writes for `bio_read`, as pyOpenSSL's memory BIOs do.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import glob
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from OpenSSL import SSL

log = logging.getLogger(__name__)

SERVER, CLIENT, DATAGRAM, NONBLOCK = 1, 2, 4, 8
CRD_CERTIFICATE = 1
X509_FMT_PEM = 1
CERT_REQUIRE = 2
SHUT_WR = 1
E_FATAL_ALERT, E_WARNING_ALERT = -12, -16
# DTLS 1.2 only (WebRTC), every NORMAL key exchange: ECDHE-ECDSA and ECDHE-RSA
PRIORITY = b"NORMAL:-VERS-ALL:+VERS-DTLS1.2"
# a datagram MTU: handshake flights are fragmented below it, and aiortc's SCTP packets (up to
# ~1230 bytes, plus the record's overhead) must fit the data MTU it leaves (1200 did not)
MTU = 1400
# GnuTLS' SRTP profile ids -> the names aiortc's SRTPProtectionProfile.openssl_profile uses
SRTP_BY_ID = {
    1: b"SRTP_AES128_CM_SHA1_80",
    7: b"SRTP_AEAD_AES_128_GCM",
    8: b"SRTP_AEAD_AES_256_GCM",
}
SRTP_GNUTLS_NAME = {
    b"SRTP_AES128_CM_SHA1_80": b"SRTP_AES128_CM_HMAC_SHA1_80",
    b"SRTP_AEAD_AES_128_GCM": b"SRTP_AEAD_AES_128_GCM",
    b"SRTP_AEAD_AES_256_GCM": b"SRTP_AEAD_AES_256_GCM",
}


class GnuTLSUnavailable(RuntimeError):
    """No usable libgnutls on this machine."""


class _Datum(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("size", ctypes.c_uint)]


_PUSH = ctypes.CFUNCTYPE(ctypes.c_ssize_t, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
_PULL = ctypes.CFUNCTYPE(ctypes.c_ssize_t, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t)
_PULL_TIMEOUT = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_uint)

_P, _I, _U, _S, _VP = ctypes.POINTER, ctypes.c_int, ctypes.c_uint, ctypes.c_size_t, ctypes.c_void_p
_CP = ctypes.c_char_p
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "gnutls_check_version": (_CP, [_CP]),
    "gnutls_global_init": (_I, []),
    "gnutls_init": (_I, [_P(_VP), _U]),
    "gnutls_deinit": (None, [_VP]),
    "gnutls_priority_set_direct": (_I, [_VP, _CP, _P(_CP)]),
    "gnutls_certificate_allocate_credentials": (_I, [_P(_VP)]),
    "gnutls_certificate_free_credentials": (None, [_VP]),
    "gnutls_certificate_set_x509_key_mem": (_I, [_VP, _P(_Datum), _P(_Datum), _I]),
    "gnutls_credentials_set": (_I, [_VP, _I, _VP]),
    "gnutls_certificate_server_set_request": (None, [_VP, _I]),
    "gnutls_srtp_set_profile_direct": (_I, [_VP, _CP, _P(_CP)]),
    "gnutls_srtp_get_selected_profile": (_I, [_VP, _P(_I)]),
    "gnutls_srtp_get_profile_id": (_I, [_CP, _P(_I)]),
    "gnutls_transport_set_ptr": (None, [_VP, _VP]),
    "gnutls_transport_set_push_function": (None, [_VP, _PUSH]),
    "gnutls_transport_set_pull_function": (None, [_VP, _PULL]),
    "gnutls_transport_set_pull_timeout_function": (None, [_VP, _PULL_TIMEOUT]),
    "gnutls_transport_set_errno": (None, [_VP, _I]),
    "gnutls_dtls_set_mtu": (None, [_VP, _U]),
    "gnutls_dtls_get_timeout": (_U, [_VP]),
    "gnutls_handshake": (_I, [_VP]),
    "gnutls_error_is_fatal": (_I, [_I]),
    "gnutls_strerror": (_CP, [_I]),
    "gnutls_alert_get": (_I, [_VP]),
    "gnutls_alert_get_name": (_CP, [_I]),
    "gnutls_record_recv": (ctypes.c_ssize_t, [_VP, _VP, _S]),
    "gnutls_record_send": (ctypes.c_ssize_t, [_VP, _CP, _S]),
    "gnutls_bye": (_I, [_VP, _I]),
    "gnutls_certificate_get_peers": (_P(_Datum), [_VP, _P(_U)]),
    "gnutls_prf_rfc5705": (_I, [_VP, _S, _CP, _S, _CP, _S, _CP]),
}
_lib: Any = None


def library() -> Any:
    """libgnutls, loaded and initialised once: Debian's libgnutls30 first, else the copy in
    PyAV's wheel (av.libs)."""
    global _lib
    if _lib is not None:
        return _lib
    names = [ctypes.util.find_library("gnutls"), "libgnutls.so.30"]
    try:
        import av

        names += sorted(
            glob.glob(os.path.join(os.path.dirname(av.__file__), "..", "av.libs", "libgnutls*"))
        )
    except ImportError:
        pass
    errors = []
    for name in filter(None, names):
        try:
            lib = ctypes.CDLL(name)
            for fn, (restype, argtypes) in _SIGNATURES.items():
                f = getattr(lib, fn)
                f.restype, f.argtypes = restype, argtypes
        except (OSError, AttributeError) as e:
            errors.append(f"{name}: {e}")
            continue
        if lib.gnutls_check_version(b"3.6.0") is None:
            errors.append(f"{name}: older than 3.6")
            continue
        _check(lib, lib.gnutls_global_init())
        _lib = lib
        log.debug("GnuTLS %s from %s", lib.gnutls_check_version(None).decode(), name)
        return lib
    raise GnuTLSUnavailable(
        "no usable libgnutls (Debian: apt-get install libgnutls30): " + "; ".join(errors)
    )


def version() -> str:
    return str(library().gnutls_check_version(None).decode())


def _check(lib: Any, rc: int) -> int:
    if rc < 0:
        raise RuntimeError(f"gnutls: {lib.gnutls_strerror(rc).decode()} ({rc})")
    return rc


class Context:
    """What the patched RTCCertificate._create_ssl_context returns for a GnuTLS session: the
    certificate and key as PEM, and the SRTP profiles to offer (aiortc's order)."""

    def __init__(self, cert_pem: bytes, key_pem: bytes, srtp: Sequence[bytes]) -> None:
        lib = library()
        self.cert_pem, self.key_pem = cert_pem, key_pem
        pid = ctypes.c_int()
        self.srtp = [
            SRTP_GNUTLS_NAME[p]
            for p in srtp
            if p in SRTP_GNUTLS_NAME
            and lib.gnutls_srtp_get_profile_id(SRTP_GNUTLS_NAME[p], ctypes.byref(pid)) == 0
        ]


class Connection:
    """One DTLS session; the pyOpenSSL names and exceptions aiortc expects."""

    def __init__(self, context: Context) -> None:
        self._ctx = context
        self._lib = library()
        self._in: list[bytes] = []
        self._out: list[bytes] = []
        self._session = ctypes.c_void_p()
        self._cred = ctypes.c_void_p()
        self._done = False
        self._fatal: SSL.Error | None = None
        self._sent = False
        # kept referenced: GnuTLS calls them for as long as the session lives
        self._callbacks = (_PUSH(self._push), _PULL(self._pull), _PULL_TIMEOUT(self._pull_timeout))

    def _start(self, role: int) -> None:
        lib, s = self._lib, self._session
        _check(lib, lib.gnutls_init(ctypes.byref(s), role | DATAGRAM | NONBLOCK))
        _check(lib, lib.gnutls_priority_set_direct(s, PRIORITY, None))
        _check(lib, lib.gnutls_certificate_allocate_credentials(ctypes.byref(self._cred)))
        cert = ctypes.create_string_buffer(self._ctx.cert_pem, len(self._ctx.cert_pem))
        key = ctypes.create_string_buffer(self._ctx.key_pem, len(self._ctx.key_pem))
        _check(
            lib,
            lib.gnutls_certificate_set_x509_key_mem(
                self._cred,
                ctypes.byref(_Datum(ctypes.cast(cert, ctypes.c_void_p), len(self._ctx.cert_pem))),
                ctypes.byref(_Datum(ctypes.cast(key, ctypes.c_void_p), len(self._ctx.key_pem))),
                X509_FMT_PEM,
            ),
        )
        _check(lib, lib.gnutls_credentials_set(s, CRD_CERTIFICATE, self._cred))
        if role == SERVER:  # WebRTC: the client must show the certificate the SDP fingerprints
            lib.gnutls_certificate_server_set_request(s, CERT_REQUIRE)
        if self._ctx.srtp:
            _check(lib, lib.gnutls_srtp_set_profile_direct(s, b":".join(self._ctx.srtp), None))
        lib.gnutls_transport_set_ptr(s, None)
        lib.gnutls_transport_set_push_function(s, self._callbacks[0])
        lib.gnutls_transport_set_pull_function(s, self._callbacks[1])
        lib.gnutls_transport_set_pull_timeout_function(s, self._callbacks[2])
        lib.gnutls_dtls_set_mtu(s, MTU)

    def __del__(self) -> None:
        if self._session:
            self._lib.gnutls_deinit(self._session)
            self._session = ctypes.c_void_p()
        if self._cred:
            self._lib.gnutls_certificate_free_credentials(self._cred)
            self._cred = ctypes.c_void_p()

    # -- transport callbacks (GnuTLS calls them from inside gnutls_* calls) ------------------

    def _push(self, _ptr: Any, buf: int, size: int) -> int:
        self._sent = True
        self._out.append(ctypes.string_at(buf, size))
        return size

    def _pull(self, _ptr: Any, buf: int, size: int) -> int:
        if not self._in:
            self._lib.gnutls_transport_set_errno(self._session, errno.EAGAIN)
            return -1
        data = self._in.pop(0)[:size]
        ctypes.memmove(buf, data, len(data))
        return len(data)

    def _pull_timeout(self, _ptr: Any, _ms: int) -> int:
        return 1 if self._in else 0

    # -- pyOpenSSL's names -------------------------------------------------------------------

    def set_accept_state(self) -> None:
        self._start(SERVER)

    def set_connect_state(self) -> None:
        self._start(CLIENT)

    def _error(self, rc: int, where: str) -> SSL.Error:
        lib = self._lib
        message = lib.gnutls_strerror(rc).decode()
        if rc in (E_FATAL_ALERT, E_WARNING_ALERT):
            message += (
                f" ({lib.gnutls_alert_get_name(lib.gnutls_alert_get(self._session)).decode()})"
            )
        return SSL.Error([("gnutls", where, message)])

    def do_handshake(self) -> None:
        if self._fatal is not None:
            raise self._fatal
        if self._done:
            return
        rc = self._lib.gnutls_handshake(self._session)
        if rc == 0:
            self._done = True
            return
        if self._lib.gnutls_error_is_fatal(rc):
            self._fatal = self._error(rc, "handshake")
            raise self._fatal
        raise SSL.WantReadError()

    def bio_write(self, data: bytes) -> int:
        self._in.append(bytes(data))
        return len(data)

    def bio_read(self, bufsiz: int) -> bytes:
        """Whole datagrams, as many as fit in `bufsiz` (at least one): DTLS allows several
        records per datagram, never one record split across two."""
        if not self._out:
            raise SSL.WantReadError()
        data = self._out.pop(0)
        while self._out and len(data) + len(self._out[0]) <= bufsiz:
            data += self._out.pop(0)
        return data

    def pending_datagrams(self) -> int:
        return len(self._out)

    def recv(self, bufsiz: int) -> bytes:
        if not self._done:
            # aiortc hands handshake datagrams to recv() too (OpenSSL's SSL_read drives the
            # handshake): drive it here, and the server's last flight is queued for bio_read
            self.do_handshake()
        buf = ctypes.create_string_buffer(max(bufsiz, 16384))
        rc = self._lib.gnutls_record_recv(self._session, buf, len(buf))
        if rc > 0:
            return buf.raw[:rc]
        if rc == 0:
            raise SSL.ZeroReturnError()
        if self._lib.gnutls_error_is_fatal(rc):
            raise self._error(rc, "recv")
        raise SSL.WantReadError()

    def send(self, data: bytes) -> int:
        rc = self._lib.gnutls_record_send(self._session, bytes(data), len(data))
        if rc < 0:
            raise self._error(rc, "send")
        return int(rc)

    def shutdown(self) -> bool:
        if self._session:
            self._lib.gnutls_bye(self._session, SHUT_WR)
        return True

    def DTLSv1_get_timeout(self) -> float | None:
        if self._done or not self._sent:  # a server waiting for its ClientHello has no timer
            return None
        return float(max(self._lib.gnutls_dtls_get_timeout(self._session), 1)) / 1000.0

    def DTLSv1_handle_timeout(self) -> bool:
        # GnuTLS retransmits its last flight in the next gnutls_handshake() once its timer has
        # run out; aiortc calls do_handshake() again right after this
        return True

    def get_peer_certificate(self, *, as_cryptography: bool = False) -> Any:
        from cryptography import x509

        n = ctypes.c_uint(0)
        peers = self._lib.gnutls_certificate_get_peers(self._session, ctypes.byref(n))
        if not peers or n.value == 0:
            return None
        cert = x509.load_der_x509_certificate(ctypes.string_at(peers[0].data, peers[0].size))
        if as_cryptography:
            return cert
        from OpenSSL import crypto

        return crypto.X509.from_cryptography(cert)

    def get_selected_srtp_profile(self) -> bytes:
        profile = ctypes.c_int(0)
        if self._lib.gnutls_srtp_get_selected_profile(self._session, ctypes.byref(profile)) < 0:
            return b""
        return SRTP_BY_ID.get(profile.value, b"")

    def export_keying_material(
        self, label: bytes, olen: int, context: bytes | None = None
    ) -> bytes:
        out = ctypes.create_string_buffer(olen)
        ctx = context or b""
        _check(
            self._lib,
            self._lib.gnutls_prf_rfc5705(
                self._session, len(label), label, len(ctx), ctx if context else None, olen, out
            ),
        )
        return out.raw


def connection_factory(real: Callable[..., Any]) -> Callable[..., Any]:
    """`SSL.Connection` as aiortc's module sees it: a GnuTLS session for a GnuTLS Context,
    pyOpenSSL's own Connection for everything else."""

    def make(context: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(context, Context):
            return Connection(context)
        return real(context, *args, **kwargs)

    return make
