"""Push sinks: the processed stream sent on to platforms and media servers (RTMP, SRT, RTP,
WHIP) from the same shared encoders the viewers get their packets from.

    SharedEncoder ──▶ PacketTrack per viewer (WHEP)
                  └─▶ MuxSink per rtmp:// srt:// rtp:// push (PyAV muxer, own thread)
                  └─▶ WhipSink per whip+http(s):// push (aiortc PacketTrack)
"""

from __future__ import annotations

from .base import SinkState
from .push import PushSinks
from .targets import SinkKind, Target, TargetError, parse, redact

__all__ = ["PushSinks", "SinkKind", "SinkState", "Target", "TargetError", "parse", "redact"]
