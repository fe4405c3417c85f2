"""FFmpeg's own WHIP muxer (libavformat/whip.c, through PyAV) publishing libx264 H.264.

    python tests/stream/clients/ffmpeg_whip.py URL --seconds 12 --profile high
        [--size 160x90] [--fps 15] [--dtls-active] [--times FILE] [--token T]
        [--tone 440[:660]]

Each picture carries the frame marker (stream/sources/marker.py) with its frame number, and
`--times` gets one "n unix_time" line per frame handed to the encoder, so a viewer that
reads the marker measures publisher-to-viewer latency. The last stdout line is a JSON summary
(frames, packets, the SPS's profile_idc, seconds, error).

x264 picks the lowest profile the enabled tools need, so `--profile high` alone with
`ultrafast` still makes Constrained Baseline (SPS profile_idc 66): High needs CABAC and 8x8
transforms (`veryfast`), without B-frames (FFmpeg's WHIP muxer refuses them).

`--tone L[:R]` adds libopus audio (48 kHz stereo, 20 ms): a sine of L Hz on the left channel
and R Hz (default L) on the right, sent with the video as OBS and FFmpeg publishers do.
"""

from __future__ import annotations

import argparse
import fractions
import json
import sys
import time
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from stream.sources import marker

PRESET = {"baseline": "ultrafast", "main": "veryfast", "high": "veryfast"}


def sps_profile(data: bytes) -> int | None:
    i = data.find(b"\x00\x00\x01\x67")
    return data[i + 4] if i >= 0 else None


def picture(n: int, width: int, height: int) -> np.ndarray:
    rgb = np.zeros((height, width, 3), np.uint8)
    x = (n * 4) % width
    rgb[:, x : x + width // 12] = (255, 128, 0)
    rgb[height // 2 :, :, 2] = (n * 3) % 256
    marker.draw_rgb(rgb, n)
    return rgb


class Tone:
    """libopus audio of a sine per channel, encoded up to a media time."""

    RATE = 48000
    FRAME = 960

    def __init__(self, out: av.container.OutputContainer, spec: str) -> None:
        left, _, right = spec.partition(":")
        self.hz = (float(left), float(right or left))
        self.stream = out.add_stream("libopus", rate=self.RATE, layout="stereo")
        self.stream.codec_context.time_base = fractions.Fraction(1, self.RATE)
        self.samples = 0
        self.packets = 0

    def until(self, out: av.container.OutputContainer, seconds: float) -> int:
        while self.samples < seconds * self.RATE:
            t = (self.samples + np.arange(self.FRAME)) / self.RATE
            pcm = np.stack([np.sin(2 * np.pi * hz * t) * 0.3 for hz in self.hz])
            frame = av.AudioFrame.from_ndarray(pcm.astype(np.float32), "fltp", "stereo")
            frame.sample_rate = self.RATE
            frame.pts = self.samples
            frame.time_base = fractions.Fraction(1, self.RATE)
            self.samples += self.FRAME
            for pkt in self.stream.encode(frame):
                out.mux(pkt)
                self.packets += 1
        return self.packets


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--profile", default="baseline", choices=sorted(PRESET))
    ap.add_argument("--size", default="160x90")
    ap.add_argument("--fps", type=int, default=15)
    ap.add_argument("--dtls-active", action="store_true")
    ap.add_argument("--times")
    ap.add_argument("--token")
    ap.add_argument("--tone")
    a = ap.parse_args()
    width, height = (int(v) for v in a.size.split("x"))
    opts = {}
    if a.dtls_active:
        opts["whip_flags"] = "dtls_active"
    if a.token:
        opts["authorization"] = a.token
    summary: dict = {"frames": 0, "packets": 0, "profile_idc": None, "error": ""}
    times = open(a.times, "w") if a.times else None  # noqa: SIM115 - written per frame
    t0 = time.monotonic()
    try:
        out = av.open(a.url, "w", format="whip", options=opts)
        st = out.add_stream("libx264", rate=a.fps)
        st.width, st.height, st.pix_fmt = width, height, "yuv420p"
        cc = st.codec_context
        cc.time_base = fractions.Fraction(1, a.fps)
        cc.max_b_frames = 0
        cc.gop_size = a.fps  # a keyframe a second: a viewer joining late waits at most that
        cc.bit_rate = 250_000
        cc.options = {
            "profile": a.profile,
            "preset": PRESET[a.profile],
            "tune": "zerolatency",
            "bf": "0",
        }
        sound = Tone(out, a.tone) if a.tone else None
        n = 0
        while time.monotonic() - t0 < a.seconds:
            if sound is not None:
                summary["audio_packets"] = sound.until(out, (n + 1) / a.fps)
            frame = av.VideoFrame.from_ndarray(picture(n, width, height), format="rgb24")
            frame.pts = n
            frame.time_base = fractions.Fraction(1, a.fps)
            if times is not None:
                times.write(f"{n} {time.time():.6f}\n")
            for pkt in st.encode(frame):
                if summary["profile_idc"] is None:
                    summary["profile_idc"] = sps_profile(bytes(cc.extradata or b"") + bytes(pkt))
                out.mux(pkt)
                summary["packets"] += 1
            n += 1
            summary["frames"] = n
            if times is not None and n % a.fps == 0:
                times.flush()
            delay = t0 + n / a.fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        for pkt in st.encode(None):
            out.mux(pkt)
        out.close()
    except Exception as e:  # noqa: BLE001 - reported to the test, which names it
        summary["error"] = f"{type(e).__name__}: {e}"
    finally:
        if times is not None:
            times.close()
    summary["seconds"] = round(time.monotonic() - t0, 2)
    print(json.dumps(summary), flush=True)
    return 1 if summary["error"] else 0


if __name__ == "__main__":
    sys.exit(main())
