"""The SDP that describes an rtp:// push, for whatever receives it (an SFU's RTP ingest, FFmpeg
`-protocol_whitelist file,udp,rtp -i push-0.sdp`, GStreamer, VLC).

FFmpeg's RTP muxer sends H.264 in packetization mode 1 (FU-A) with the SPS/PPS in band (the
shared encoder repeats them before every keyframe: x264 repeat-headers=1), so the SDP needs no
sprop-parameter-sets; profile-level-id is Constrained Baseline 3.1, what the shared libx264
encoder makes for WebRTC (stream/encode.py).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import tempfile
from pathlib import Path

PAYLOAD_TYPE = 96
H264_FMTP = "packetization-mode=1;profile-level-id=42e01f;level-asymmetry-allowed=1"
RTPMAP = {"vp8": "VP8/90000", "h264": "H264/90000"}


def describe(host: str, port: int, codec: str, pt: int = PAYLOAD_TYPE, ssrc: int = 0) -> str:
    try:
        family = "IP6" if ipaddress.ip_address(host).version == 6 else "IP4"
    except ValueError:
        family = "IP4"  # a host name: receivers resolve it
    lines = [
        "v=0",
        f"o=- 0 0 IN {family} {host}",
        "s=framesmith",
        f"c=IN {family} {host}",
        "t=0 0",
        f"m=video {port} RTP/AVP {pt}",
        f"a=rtpmap:{pt} {RTPMAP[codec]}",
    ]
    if codec == "h264":
        lines.append(f"a=fmtp:{pt} {H264_FMTP}")
    if ssrc:
        lines.append(f"a=ssrc:{ssrc} cname:framesmith")
    lines.append("a=sendonly")
    return "\r\n".join(lines) + "\r\n"


def write(folder: Path, index: int, text: str) -> Path:
    """Write push-<index>.sdp so that nothing another user placed in `folder` is followed:
    the text goes to a fresh file (mkstemp: O_EXCL, mode 0600) renamed over the name, and a
    rename replaces a symlink found there instead of writing through it."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / f"push-{index}.sdp"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".push-{index}-", suffix=".sdp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
