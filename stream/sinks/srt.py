"""SRT caller over the system's libsrt (ctypes), and a writer PyAV's MPEG-TS muxer writes into.

The FFmpeg inside PyAV 18's wheels is built without libsrt (its output protocols: file,
rtmp(s), rtp, srtp, tcp, udp, tls, http(s)...: no srt), so `av.open("srt://…", "w")` cannot
work. Debian's libsrt (libsrt1.5-gnutls, which srt-tools also uses) does the transport: the
muxer writes MPEG-TS into SrtWriter, which sends it in live-mode messages of whole 188-byte
TS packets, at most 7 per message (1316 bytes, SRT_LIVE_DEF_PLSIZE). SRTO_SNDTIMEO bounds a
send, so a receiver that stops reading fails the sink (and it reconnects) instead of
blocking its thread for ever.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import socket
import struct
import threading
from typing import Any
from urllib.parse import parse_qsl, urlsplit

TS_PACKET = 188
MESSAGE = 7 * TS_PACKET  # SRT_LIVE_DEF_PLSIZE
# SRT_SOCKOPT values from srt.h (libsrt 1.5)
SRTO_SNDSYN = 1
SRTO_SNDTIMEO = 13
SRTO_LATENCY = 23
SRTO_PASSPHRASE = 26
SRTO_PBKEYLEN = 27
SRTO_CONNTIMEO = 36
SRTO_STREAMID = 46
SRTO_TRANSTYPE = 50
SRTT_LIVE = 0
_NAMES = ("srt-gnutls", "srt-openssl", "srt")
_SONAMES = ("libsrt-gnutls.so.1.5", "libsrt-openssl.so.1.5", "libsrt.so.1.5")


class SrtUnavailable(RuntimeError):
    """No libsrt on this machine (Debian: apt-get install libsrt1.5-gnutls)."""


class SrtError(OSError):
    """A libsrt call failed; the message is libsrt's."""


_lib: Any = None
_lock = threading.Lock()


def library() -> Any:
    """libsrt, started once (srt_startup) for the process."""
    global _lib
    with _lock:
        if _lib is not None:
            return _lib
        names = [ctypes.util.find_library(n) for n in _NAMES]
        for name in [*(n for n in names if n), *_SONAMES]:
            try:
                lib = ctypes.CDLL(name)
                break
            except OSError:
                continue
        else:
            raise SrtUnavailable(
                "libsrt not found: srt:// pushes need it (apt-get install libsrt1.5-gnutls)"
            )
        lib.srt_getlasterror_str.restype = ctypes.c_char_p
        lib.srt_create_socket.restype = ctypes.c_int
        lib.srt_setsockflag.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
        lib.srt_connect.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.srt_sendmsg2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p]
        lib.srt_close.argtypes = [ctypes.c_int]
        if lib.srt_startup() < 0:
            raise SrtUnavailable(f"srt_startup failed: {_last_error(lib)}")
        _lib = lib
        return lib


def _last_error(lib: Any) -> str:
    return (lib.srt_getlasterror_str() or b"unknown error").decode(errors="replace")


def sockaddr(host: str, port: int) -> bytes:
    """struct sockaddr_in / sockaddr_in6 (Linux layout) for the first address of host."""
    family, _, _, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    ip = str(addr[0])
    if family == socket.AF_INET:
        return (
            struct.pack("=H", socket.AF_INET)
            + struct.pack("!H", port)
            + socket.inet_pton(socket.AF_INET, ip)
            + bytes(8)
        )
    scope = int(addr[3]) if len(addr) > 3 else 0
    return (
        struct.pack("=H", socket.AF_INET6)
        + struct.pack("!HI", port, 0)
        + socket.inet_pton(socket.AF_INET6, ip)
        + struct.pack("=I", scope)
    )


class SrtCaller:
    """One live-mode SRT connection to a listener (srt://host:port?streamid=…&passphrase=…)."""

    def __init__(self, url: str, connect_timeout_s: float, send_timeout_s: float) -> None:
        parts = urlsplit(url)
        options = dict(parse_qsl(parts.query, keep_blank_values=True))
        if options.get("mode", "caller") != "caller":
            raise SrtError("only mode=caller is supported (we dial the receiver)")
        self.lib = library()
        self.sock = self.lib.srt_create_socket()
        if self.sock < 0:
            raise SrtError(_last_error(self.lib))
        try:
            self._set(SRTO_TRANSTYPE, SRTT_LIVE)
            self._set(SRTO_SNDSYN, 1)
            self._set(SRTO_CONNTIMEO, int(connect_timeout_s * 1000))
            self._set(SRTO_SNDTIMEO, int(send_timeout_s * 1000))
            if "latency" in options:
                self._set(SRTO_LATENCY, int(options["latency"]))
            if "pbkeylen" in options:
                self._set(SRTO_PBKEYLEN, int(options["pbkeylen"]))
            if options.get("passphrase"):
                self._set(SRTO_PASSPHRASE, options["passphrase"])
            if options.get("streamid"):
                self._set(SRTO_STREAMID, options["streamid"])
            addr = sockaddr(parts.hostname or "", parts.port or 0)
            if self.lib.srt_connect(self.sock, addr, len(addr)) < 0:
                raise SrtError(_last_error(self.lib))
        except (SrtError, ValueError, OSError):
            self.close()
            raise

    def _set(self, option: int, value: int | str) -> None:
        if isinstance(value, int):
            v = ctypes.c_int(value)
            rc = self.lib.srt_setsockflag(self.sock, option, ctypes.byref(v), 4)
        else:
            data = value.encode()
            rc = self.lib.srt_setsockflag(self.sock, option, data, len(data))
        if rc < 0:
            raise SrtError(f"option {option}: {_last_error(self.lib)}")

    def send(self, data: bytes) -> None:
        if self.lib.srt_sendmsg2(self.sock, data, len(data), None) < 0:
            raise SrtError(_last_error(self.lib))

    def close(self) -> None:
        if self.sock >= 0:
            self.lib.srt_close(self.sock)
            self.sock = -1


class SrtWriter(io.RawIOBase):
    """What the MPEG-TS muxer writes into: whole TS packets, at most 7 to a message."""

    def __init__(self, caller: SrtCaller) -> None:
        super().__init__()
        self.caller = caller
        self._rest = b""

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = self._rest + bytes(b)
        whole = len(data) - len(data) % TS_PACKET
        for i in range(0, whole, MESSAGE):
            self.caller.send(data[i : min(i + MESSAGE, whole)])
        self._rest = data[whole:]
        return len(b)
