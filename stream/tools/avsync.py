"""Audio-video sync as a viewer sees it: `serve --audio beep` flashes the test scene white
and beeps at the same instant of the media clock, once a second; a real aiortc WHEP viewer
receives both and says how far apart they come.

    python -m stream.tools.avsync http://127.0.0.1:8080 --seconds 60 [--token-file F]
        [--json out.json] [--plot out.png]

Two figures, as aiortc's receiver does no lip sync of its own:

- `sync_ms`: what a browser plays. It places each track's RTP time on the sender's wall
  clock through that track's RTCP sender reports (NTP time <-> RTP time) and plays the
  tracks so that equal wall-clock times meet; the offset is the beep onset's wall-clock time
  less the flash frame's. Positive: the sound comes late.
- `arrival_ms`: when the beep's first sample and the flash frame reach the viewer (decoded),
  with no sync at all: what a player without a jitter-buffer sync would show.

Each beep is paired with the flash nearest to it (within half the period).

`--chromium PATH` instead opens the viewer page of a server without [auth] in headless
Chromium (playwright, the dev extra), unmutes it and samples the browser's own sync: the
difference of the video's and the audio's `estimatedPlayoutTimestamp` (getStats), 5 times a
second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.rtp import RtcpSrPacket

from ..webrtc import patches

BRIGHT = 200  # a flash frame's mean luma (the scene's is about 100)
BEEP_LEVEL = 0.1  # of full scale: the beep's onset (the tone is at 0.5)
QUIET_S = 0.2  # silence this long before an onset


@dataclass
class Track:
    clock: int  # RTP clock rate
    reports: list[tuple[float, int, int]] = field(default_factory=list)  # (arrival, ntp, rtp)
    mapper: Any = None  # aiortc's TimestampMapper: a frame's pts is its RTP time less _origin

    def wall(self, pts: int, arrival: float) -> float | None:
        """The sender's wall-clock time (s) of a received frame's `pts`, through the last
        report that had arrived by `arrival` (what a receiver knows then)."""
        known = [r for r in self.reports if r[0] <= arrival] or self.reports[:1]
        origin = getattr(self.mapper, "_origin", None)
        if not known or origin is None:
            return None
        _, ntp, r0 = known[-1]
        diff = (pts + origin - r0) & 0xFFFFFFFF
        if diff >= 1 << 31:
            diff -= 1 << 32
        return (ntp >> 32) + (ntp & 0xFFFFFFFF) / (1 << 32) + diff / self.clock


@dataclass
class Capture:
    video: Track = field(default_factory=lambda: Track(90000))
    audio: Track = field(default_factory=lambda: Track(48000))
    flashes: list[tuple[float, int]] = field(default_factory=list)  # (arrival, rtp)
    onsets: list[tuple[float, int]] = field(default_factory=list)  # (arrival, rtp)
    frames: int = 0
    audio_frames: int = 0


def _listen_reports(receiver: Any, track: Track) -> None:
    """Keep the sender reports this receiver gets (aiortc keeps only their NTP half), and
    its RTP timestamp mapper (aiortc's frames count from the first packet's time)."""
    handle = patches.require(receiver, "_handle_rtcp_packet", "a viewer's sender reports")
    track.mapper = patches.require(
        receiver, "_RTCRtpReceiver__timestamp_mapper", "a received frame's RTP time"
    )

    async def wrapped(packet: Any) -> None:
        if isinstance(packet, RtcpSrPacket) and packet.sender_info.ntp_timestamp:
            info = packet.sender_info  # (a report before the first packet holds zeros)
            track.reports.append((time.monotonic(), info.ntp_timestamp, info.rtp_timestamp))
        await handle(packet)

    receiver._handle_rtcp_packet = wrapped


async def _video(track: Any, cap: Capture) -> None:
    bright = False
    while True:
        frame = await track.recv()
        now = time.monotonic()
        cap.frames += 1
        luma = frame.to_ndarray(format="gray")
        h, w = luma.shape
        lit = float(luma[h // 4 :, w // 4 :].mean()) > BRIGHT  # below and right of the marker
        if lit and not bright:
            cap.flashes.append((now, int(frame.pts)))
        bright = lit


async def _audio(track: Any, cap: Capture) -> None:
    quiet = 0  # samples of silence before now
    need = int(QUIET_S * 48000)
    while True:
        frame = await track.recv()
        now = time.monotonic()
        cap.audio_frames += 1
        pcm = frame.to_ndarray().reshape(-1, len(frame.layout.channels))[:, 0] / 32768.0
        loud = np.flatnonzero(np.abs(pcm) > BEEP_LEVEL)
        if len(loud) and quiet + loud[0] >= need:
            i = int(loud[0])
            # arrival of that sample: the frame arrived when its last sample could be played
            cap.onsets.append((now - (len(pcm) - i) / 48000, int(frame.pts) + i))
        quiet = len(pcm) - 1 - int(loud[-1]) if len(loud) else quiet + len(pcm)


async def capture(
    base: str,
    seconds: float,
    token: str | None = None,
    settle_s: float = 2.0,
    cap: Capture | None = None,
) -> Capture:
    """Watch `base` for `seconds` (after `settle_s`) as a WHEP viewer receiving audio. A
    caller that passes `cap` keeps what was seen when it cancels the watch (the soak). A
    ConnectionError when a track ends before (what was seen stays in `cap`)."""
    cap = Capture() if cap is None else cap
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    tracks: dict[str, Any] = {}
    pc.on("track", lambda t: tracks.__setitem__(t.kind, t))
    headers = {"Content-Type": "application/sdp"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession() as http:
        await pc.setLocalDescription(await pc.createOffer())
        async with http.post(base + "/whep", data=pc.localDescription.sdp, headers=headers) as r:
            body = await r.text()
            if r.status != 201:
                raise RuntimeError(f"WHEP {r.status}: {body}")
            location = r.headers["Location"]
        await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
        if "audio" not in tracks:
            raise RuntimeError("the answer sends no audio: is the server run with --audio beep?")
        for tr in pc.getTransceivers():
            _listen_reports(tr.receiver, cap.video if tr.kind == "video" else cap.audio)
        tasks = [
            asyncio.ensure_future(_video(tracks["video"], cap)),
            asyncio.ensure_future(_audio(tracks["audio"], cap)),
        ]
        try:
            await asyncio.sleep(settle_s)
            cap.flashes.clear()
            cap.onsets.clear()
            # a track ends early when the connection does (a server that dropped us)
            await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
            kinds = ("video", "audio")
            if ended := [k for k, t in zip(kinds, tasks, strict=True) if t.done()]:
                raise ConnectionError(
                    f"the viewer's {' and '.join(ended)} ended early "
                    f"(connection {pc.connectionState})"
                )
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):
                await http.delete(base + location, headers=headers)
            await pc.close()
    return cap


def pairs(cap: Capture, period_s: float = 1.0) -> list[dict[str, float]]:
    """Each beep with its flash: the wall-clock (sync) and arrival offsets, in ms."""
    flashes = []
    for arrival, rtp in cap.flashes:
        wall = cap.video.wall(rtp, arrival)
        if wall is not None:
            flashes.append((wall, arrival))
    out = []
    for arrival, rtp in cap.onsets:
        wall = cap.audio.wall(rtp, arrival)
        if wall is None or not flashes:
            continue
        f_wall, f_arrival = min(flashes, key=lambda f: abs(f[0] - wall))
        if abs(f_wall - wall) < period_s / 2:
            out.append(
                {
                    "t": arrival,
                    "sync_ms": (wall - f_wall) * 1000,
                    "arrival_ms": (arrival - f_arrival) * 1000,
                }
            )
    return out


def _pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


MAX_FIT_POINTS = 1500  # Theil-Sen on an evenly spaced subset beyond this (~1.1M pairs)


def drift_fit(t: Any, y: Any) -> tuple[float, float]:
    """(slope per second, intercept) of the offsets `y` at times `t` by Theil-Sen: the
    median of the slopes between every two pairs. A drift is the clocks running apart, a
    steady tilt under everything; least squares tilts with a burst of late frames (a busy
    host: a 300 s run's fit swung by +-3.5 ms/min with no clock drift), the median does not
    until a third of the pairs are off the line."""
    t, y = np.asarray(t, float), np.asarray(y, float)
    if len(t) > MAX_FIT_POINTS:
        keep = np.linspace(0, len(t) - 1, MAX_FIT_POINTS).round().astype(int)
        t, y = t[keep], y[keep]
    i, j = np.triu_indices(len(t), 1)
    dt = t[j] - t[i]
    ok = dt > 0
    if not ok.any():
        return 0.0, float(np.median(y)) if len(y) else 0.0
    slope = float(np.median((y[j] - y[i])[ok] / dt[ok]))
    return slope, float(np.median(y - slope * t))


def summary(found: list[dict[str, float]], cap: Capture) -> dict[str, Any]:
    """p50/p95 of the offsets and of their size, and the drift (a line through sync_ms)."""
    out: dict[str, Any] = {
        "pairs": len(found),
        "flashes": len(cap.flashes),
        "beeps": len(cap.onsets),
        "video_frames": cap.frames,
        "audio_frames": cap.audio_frames,
    }
    for key in ("sync_ms", "arrival_ms"):
        v = [p[key] for p in found]
        if v:
            out[key] = {
                "p50": round(statistics.median(v), 1),
                "p95": round(_pct(v, 95), 1),
                "abs_p95": round(_pct([abs(x) for x in v], 95), 1),
                "min": round(min(v), 1),
                "max": round(max(v), 1),
            }
    if len(found) >= 3:
        t = np.array([p["t"] for p in found])
        slope, _ = drift_fit(t - t[0], [p["sync_ms"] for p in found])
        out["drift_ms_per_min"] = round(slope * 60, 2)
    return out


def plot(found: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = found[0]["t"] if found else 0.0
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for key, label in (("sync_ms", "played (RTCP SR sync)"), ("arrival_ms", "arrival")):
        ax.plot([p["t"] - t0 for p in found], [p[key] for p in found], ".", label=label)
    ax.axhspan(-40, 40, color="green", alpha=0.1, label="goal |offset| <= 40 ms")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("audio - video (ms)")
    ax.set_title("audio-video offset a WHEP viewer sees (beep vs flash)")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


PLAYOUT_JS = """async () => {
  const out = {};
  (await window.framesmith.session.pc.getStats()).forEach((s) => {
    if (s.type === "inbound-rtp") out[s.kind] = s.estimatedPlayoutTimestamp;
  });
  return out;
}"""


async def chromium(base: str, seconds: float, executable: str) -> dict[str, Any]:
    """The browser's own offset (video less audio playout time, ms: + the sound behind)."""
    from playwright.async_api import async_playwright

    args = ["--no-sandbox", "--autoplay-policy=no-user-gesture-required"]
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=executable, headless=True, args=args)
        page = await browser.new_page()
        await page.goto(base + "/")
        deadline = time.monotonic() + 30
        while not await page.evaluate("() => window.framesmith.sound.stream !== null"):
            if time.monotonic() > deadline:
                raise RuntimeError("the page got no audio: is the server run with --audio beep?")
            await asyncio.sleep(0.2)
        await page.click("#sound")
        await asyncio.sleep(3)  # the browser's sync settles
        offsets = []
        for _ in range(int(seconds * 5)):
            ept = await page.evaluate(PLAYOUT_JS)
            if ept.get("audio") and ept.get("video"):
                offsets.append(float(ept["video"] - ept["audio"]))
            await asyncio.sleep(0.2)
        await browser.close()
    if not offsets:
        return {"samples": 0}
    return {
        "samples": len(offsets),
        "p5": round(_pct(offsets, 5), 1),
        "p50": round(_pct(offsets, 50), 1),
        "p95": round(_pct(offsets, 95), 1),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m stream.tools.avsync", description=__doc__)
    ap.add_argument("url", help="the server, e.g. http://127.0.0.1:8080 (run with --audio beep)")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--token-file", help="a file holding a viewer token")
    ap.add_argument("--json", help="write the pairs and the summary here")
    ap.add_argument("--plot", help="write a PNG of the offsets here")
    ap.add_argument("--chromium", metavar="PATH", help="measure in headless Chromium instead")
    args = ap.parse_args(argv)
    if args.chromium:
        print(json.dumps(asyncio.run(chromium(args.url.rstrip("/"), args.seconds, args.chromium))))
        return 0
    token = Path(args.token_file).read_text().strip() if args.token_file else None
    cap = asyncio.run(capture(args.url.rstrip("/"), args.seconds, token))
    found = pairs(cap)
    result = summary(found, cap)
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": result, "pairs": found}, indent=1))
    if args.plot:
        plot(found, Path(args.plot))
    return 0 if found else 1


if __name__ == "__main__":
    sys.exit(main())
