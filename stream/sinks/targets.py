"""Where a push goes: the kinds of URL `serve --push` takes, what each carries, and how a URL
is shown without its secrets.

A platform's RTMP URL holds its stream key in the path (`rtmp://live.twitch.tv/app/KEY`), an
SRT URL its passphrase in the query, a WHIP endpoint may hold a key in its path (Cloudflare's
`https://…/<key>/webRTC/publish`): `redact` keeps the scheme, host, port and a short first
path segment that is a name, not a key (RTMP's application, `live2`; elsewhere only a common
word like `whip`), never the user, the query or the rest of the path. Logs, /api/stats and
error messages only ever show that form; metric labels show only the sink's index and kind.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from ..urls import public_netloc


class SinkKind(StrEnum):
    RTMP = "rtmp"  # FLV over RTMP (H.264): platforms (Twitch, YouTube), nginx-rtmp, SRS
    SRT = "srt"  # MPEG-TS over SRT (H.264): contribution links, SRT gateways
    RTP = "rtp"  # plain RTP (VP8 or H.264) with an SDP file: an SFU's RTP ingest (Janus)
    WHIP = "whip"  # WebRTC ingest (RFC 9725) with a bearer token: any WHIP server


SCHEMES = {
    "rtmp": SinkKind.RTMP,
    "rtmps": SinkKind.RTMP,
    "srt": SinkKind.SRT,
    "rtp": SinkKind.RTP,
    "whip+http": SinkKind.WHIP,
    "whip+https": SinkKind.WHIP,
}
# the codec each container carries (rtp and whip carry the [push] codec)
FIXED_CODEC = {SinkKind.RTMP: "h264", SinkKind.SRT: "h264"}
_APP_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,12}$")  # rtmp://host/<app>/<key>
# elsewhere the first segment is shown only when it is one of these (whip+https://host/whip)
_WORDS = frozenset({"whip", "live", "app", "ingest", "publish", "rtc", "webrtc", "stream", "api"})


class TargetError(ValueError):
    """A push URL that cannot be used; the message never contains the URL's secrets."""


@dataclass(frozen=True)
class Target:
    index: int
    kind: SinkKind
    url: str  # as configured ($VARS unexpanded): never logged, use `shown`
    shown: str  # redacted, for logs and /api/stats

    @property
    def name(self) -> str:
        """The metric label: the index, never anything of the URL."""
        return str(self.index)

    def resolved(self) -> str:
        """The URL with $VARS from the environment (a stream key kept in a secret)."""
        return os.path.expandvars(self.url)

    def unresolved_vars(self) -> list[str]:
        return re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", self.resolved())


def redact(url: str) -> str:
    """The URL without user, password, query, fragment and all but a short first path
    segment."""
    parts = urlsplit(url)
    netloc = public_netloc(parts)
    segments = [s for s in parts.path.split("/") if s]
    path = ""
    if segments:
        rtmp = parts.scheme.lower().startswith("rtmp")
        safe = _APP_NAME.match(segments[0]) if rtmp else segments[0].lower() in _WORDS
        first = segments[0] if safe else "***"
        path = "/" + first + ("/***" if len(segments) > 1 else "")
    query = "***" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, path, query, ""))


def parse(url: str, index: int = 0) -> Target:
    """A push URL checked for what each kind needs (a host, a port where there is no
    default); TargetError otherwise."""
    if not isinstance(url, str) or "://" not in url:
        raise TargetError(
            "must be a URL: rtmp://host/app/key, srt://host:port, rtp://host:port or "
            "whip+https://host/path"
        )
    scheme = url.split("://", 1)[0].lower()
    kind = SCHEMES.get(scheme)
    shown = redact(url)
    if kind is None:
        raise TargetError(f"{shown}: unknown scheme {scheme[:16]!r} (known: {', '.join(SCHEMES)})")
    parts = urlsplit(url)
    if not parts.hostname:
        raise TargetError(f"{shown}: no host")
    try:
        port = parts.port
    except ValueError:
        raise TargetError(f"{shown}: the port is not a number in 1..65535") from None
    if kind in (SinkKind.SRT, SinkKind.RTP) and not port:
        raise TargetError(f"{shown}: {scheme}:// needs a port")
    if kind is SinkKind.RTP and (parts.path.strip("/") or parts.query):
        raise TargetError(f"{shown}: rtp:// takes host:port only (the SDP says the rest)")
    if kind is SinkKind.RTMP and len([s for s in parts.path.split("/") if s]) < 1:
        raise TargetError(f"{shown}: rtmp:// needs an application (rtmp://host/app/key)")
    if kind is SinkKind.SRT:
        for key, _ in parse_qsl(parts.query, keep_blank_values=True):
            if key not in SRT_OPTIONS:
                raise TargetError(
                    f"{shown}: unknown SRT option {key[:24]!r} (known: {', '.join(SRT_OPTIONS)})"
                )
    return Target(index, kind, url, shown)


# srt:// query options this sink applies (libsrt's names, as srt-live-transmit takes them)
SRT_OPTIONS = ("streamid", "passphrase", "latency", "pbkeylen", "mode")
