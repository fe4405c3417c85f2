"""`python -m stream soak`: hold N WHEP viewers on a server for a while, break things, judge it.

    python -m stream soak [--config configs/soak.toml] [--url URL] [--viewers N]
                          [--duration S] [--json out.json] [--plots DIR] [--browser]

Without --url it starts `python -m stream serve --config <serve_config>` itself on a free
loopback port (a separate process, so its memory and file descriptors are the server's only).

Per frame each viewer decodes (aiortc, in this process) it reads the frame-number marker the
server drew into the pixels and looks the number up in the data channel's per-frame messages
(``{"type": "frame", "n", "t_src", "t_sent"}``, stream/webrtc.py):

- ``latency_ms``: glass to glass, frame born on the server (t_src) -> decoded by the viewer;
- ``send_ms``: the server handed the packet to the RTP sender (t_sent) -> decoded;
- ``interval_ms``: since the viewer's previous frame (a freeze when > freeze_ms);
- ``missed``: marker numbers skipped since the previous frame (dropped frames); a marker
  that passes its check bits but names no frame the server has just sent (a corrupt frame
  after a loss) is a ``misread``, not a jump.

Remote clocks are aligned by ping/pong on the data channel (lowest round trip wins). Every
``sample_s`` the server's /api/stats (its ``process`` section: RSS, fds, GPU memory, open
peer connections, queue depths) and /metrics are scraped.

Faults, one every ``fault_every_s`` in turn, and the churn every ``churn_s``:

- leave:     a viewer goes without DELETE (alternately: pc.close(), and its sockets
             vanishing like a killed tab), and rejoins as a new session ``rejoin_s`` later;
- slow:      a viewer's track reader stalls for ``stall_s``;
- lossy:     a viewer loses ``loss`` of its RTP packets for ``loss_s`` (NACK/PLI storm); like
             a browser, a viewer waits at most ``viewer_max_wait_s`` for a lost packet
             before it skips to the next frame and asks for a keyframe (stream/jitter.py);
- malformed: a burst of hostile requests (bad SDP, wrong content type, oversize body,
             unknown session DELETE, ...): each must get a 4xx;
- publisher: (server with ``--source webrtc``) the soak's WHIP publisher vanishes and
             reconnects.

The verdict (exit code 1 when a check fails; the JSON report is written either way) covers
viewers outside faults (plus ``grace_s``) after ``warmup_s``: latency p50/p95/p99, every
viewer's frame rate, drop / freeze / decode-error ratios, the longest gap any viewer went
without frames (the server keeps serving everyone else while one is faulted), and the growth
of the server's RSS, GPU memory, fds and open peer connections as least-squares slopes per
minute (a leak shows as a slope, not as a level).

Report (JSON): ``{"kind": "soak", "frames": [{"t", "viewer", "n", "latency_ms", "send_ms",
"interval_ms", "missed", "faulted"}], "polls": [...], "faults": [...], "viewers": [...],
"summary": {...}, "thresholds": {...}, "checks": [{"name", "value", "limit", "ok", ...}],
"passed": bool}`` (``t`` in seconds since the start).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from . import marker
from . import settings as settings_mod
from .config import ConfigError, read_toml
from .jitter import BoundedWaitJitterBuffer
from .scene import Scene, to_frame

log = logging.getLogger("stream.soak")

NO_STUN = RTCConfiguration(iceServers=[])
SDP = "application/sdp"
# a marker read as a frame this far behind or ahead of the server's newest message is a misread
MARKER_BEHIND = 2048  # the messages a viewer keeps (68 s at 30 fps)
MARKER_AHEAD = 64  # frames whose message is still on its way
JOIN_TIMEOUT_S = 15.0  # a (re)joining viewer must decode its first frame within this
CHROMIUM = os.environ.get("FRAMESMITH_CHROMIUM", "/usr/bin/chromium")
LEAK_ENV = "FRAMESMITH_TEST_LEAK_VIEWER_PCS"  # the server's leak test hook (stream/webrtc.py)


# -- decode errors (aiortc logs them from its decoder thread) -----------------------------------


class _DecodeErrors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.times: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "failed to decode" in record.getMessage():
            self.times.append(time.time())


# -- one viewer ---------------------------------------------------------------------------------


class Viewer:
    """An aiortc WHEP viewer that reads the marker of every frame it decodes."""

    def __init__(self, run: Soak, name: str):
        self.run = run
        self.name = name
        self.pc: RTCPeerConnection | None = None
        self.location = ""
        self.channel: Any = None
        self.meta: OrderedDict[int, tuple[int, float, float]] = OrderedDict()  # n16 -> ...
        self.pending: dict[int, dict] = {}  # rows whose frame message has not come yet
        self.offset_ms = 0.0  # server clock - local clock
        self.best_rtt_ms = float("inf")
        self.joined = 0.0  # run-relative seconds
        self.first_frame: float | None = None
        self.left: float | None = None
        self.leave_mode = ""
        self.frames = 0
        self.size: tuple[int, int] | None = None  # of the frames decoded
        self.unreadable = 0
        self.misread = 0  # markers that passed their check bits but name no recent frame
        self.last_n: int | None = None
        self.last_t: float | None = None
        self.stall_until = 0.0
        self.loss = 0.0
        self.loss_until = 0.0
        self.lost_packets = 0
        self.jitter: BoundedWaitJitterBuffer | None = None
        self.error = ""
        self._tasks: list[asyncio.Task] = []
        self._rng = random.Random(hash(name) & 0xFFFF)

    # -- signalling ------------------------------------------------------------------------

    async def connect(self) -> None:
        run = self.run
        self.joined = run.now()
        pc = self.pc = RTCPeerConnection(NO_STUN)
        got: asyncio.Future = asyncio.get_running_loop().create_future()

        @pc.on("track")
        def _on_track(track) -> None:  # noqa: ANN001
            if track.kind == "video" and not got.done():
                got.set_result(track)

        pc.addTransceiver("video", direction="recvonly")
        ch = self.channel = pc.createDataChannel("control")

        @ch.on("message")
        def _on_message(msg) -> None:  # noqa: ANN001
            self._on_message(msg)

        @ch.on("open")
        def _on_open() -> None:
            self._tasks.append(asyncio.ensure_future(self._pinger()))

        self._install_jitter_buffer()
        await pc.setLocalDescription(await pc.createOffer())
        url = run.base + "/whep" + (f"?codec={run.opts.codec}" if run.opts.codec else "")
        async with run.http.post(
            url, data=pc.localDescription.sdp, headers={"Content-Type": SDP}
        ) as r:
            body = await r.text()
            if r.status != 201:
                raise RuntimeError(f"WHEP POST answered {r.status}: {body[:200]}")
            self.location = r.headers.get("Location", "")
        await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
        self._install_loss()
        track = await asyncio.wait_for(got, JOIN_TIMEOUT_S)
        self._tasks.append(asyncio.ensure_future(self._reader(track)))

    def _install_jitter_buffer(self) -> None:
        """Give up on a lost packet after ``viewer_max_wait_s``, as a browser does (jitter.py)."""
        receiver = self.pc.getTransceivers()[0].receiver
        if not hasattr(receiver, "_RTCRtpReceiver__jitter_buffer"):
            raise RuntimeError("aiortc's RTCRtpReceiver has no jitter buffer to replace")
        self.jitter = BoundedWaitJitterBuffer(self.run.opts.viewer_max_wait_s)
        receiver._RTCRtpReceiver__jitter_buffer = self.jitter

    def _install_loss(self) -> None:
        """Wrap this viewer's SRTP receive path so the "lossy" fault can drop RTP packets."""
        with contextlib.suppress(Exception):
            dtls = self.pc.getTransceivers()[0].receiver.transport
            inner = dtls._handle_rtp_data

            async def lossy(data: bytes, arrival_time_ms: int) -> None:
                if self.loss_until > time.time() and self._rng.random() < self.loss:
                    self.lost_packets += 1
                    return
                await inner(data, arrival_time_ms)

            dtls._handle_rtp_data = lossy

    async def _pinger(self) -> None:
        """Clock offset to the server (needed when it runs on another machine)."""
        k = 0
        with contextlib.suppress(Exception):
            while self.channel is not None and self.channel.readyState == "open":
                self.channel.send(json.dumps({"type": "ping", "t": time.time() * 1000}))
                k += 1
                await asyncio.sleep(1.0 if k < 5 else 10.0)

    def _on_message(self, msg: Any) -> None:
        if not isinstance(msg, str):
            return
        try:
            data = json.loads(msg)
        except ValueError:
            return
        kind = data.get("type")
        if kind == "frame":
            n = int(data["n"])
            n16 = n % marker.MODULO
            entry = (n, float(data["t_src"]), float(data.get("t_sent", data["t_src"])))
            self.meta[n16] = entry
            self.meta.move_to_end(n16)
            while len(self.meta) > 2048:
                self.meta.popitem(last=False)
            row = self.pending.pop(n16, None)
            if row is not None:
                self._fill(row, entry, row.pop("_t_wall"))
        elif kind == "pong" and data.get("t") is not None:
            now = time.time() * 1000
            rtt = now - float(data["t"])
            if rtt < self.best_rtt_ms:
                self.best_rtt_ms = rtt
                self.offset_ms = float(data["server"]) - (float(data["t"]) + rtt / 2)

    def _guess_number(self, n16: int) -> int | None:
        """The full frame counter for a marker's low 16 bits whose server message has not
        come yet, or None for a misread.

        The lap comes from the server's newest message (a viewer joining after the counter
        passed 65536 must not start on lap zero) or this viewer's previous frame. Six check
        bits still pass one corrupt marker in 64 (a viewer decoding broken references after a
        loss): a number far from what the server has just sent is such a misread, and must
        not count thousands of drops."""
        if not self.meta:
            return marker.unwrap(n16, n16 if self.last_n is None else self.last_n + 1)
        newest = next(reversed(self.meta.values()))[0]
        n = marker.unwrap(n16, newest)
        if not newest - MARKER_BEHIND <= n <= newest + MARKER_AHEAD:
            return None
        return n

    def _fill(self, row: dict, entry: tuple[int, float, float], t_wall: float) -> None:
        n, t_src, t_sent = entry
        now_ms = t_wall * 1000
        row["latency_ms"] = round(now_ms - (t_src - self.offset_ms), 3)
        row["send_ms"] = round(now_ms - (t_sent - self.offset_ms), 3)
        if row["n"] != n:  # the unwrap guessed another lap; trust the server's counter
            if self.last_n == row["n"]:
                self.last_n = n
            row["n"] = n

    # -- frames ----------------------------------------------------------------------------

    async def _reader(self, track) -> None:  # noqa: ANN001
        run = self.run
        try:
            while True:
                stall = self.stall_until - time.time()
                if stall > 0:
                    await asyncio.sleep(stall)
                frame = await track.recv()
                t_wall = time.time()
                self._on_frame(frame, t_wall, run.rel(t_wall))
        except (MediaStreamError, asyncio.CancelledError):
            pass
        except Exception as e:  # noqa: BLE001 - recorded; the soak goes on
            self.error = f"{type(e).__name__}: {e}"
            log.exception("viewer %s: reader failed", self.name)

    def _on_frame(self, frame: av.VideoFrame, t_wall: float, t: float) -> None:
        self.frames += 1
        self.size = (frame.width, frame.height)
        if self.first_frame is None:
            self.first_frame = t
        row: dict = {
            "t": round(t, 4),
            "viewer": self.name,
            "n": None,
            "latency_ms": None,
            "send_ms": None,
            "interval_ms": None,
            "missed": 0,
        }
        if self.last_t is not None:
            row["interval_ms"] = round((t - self.last_t) * 1000, 3)
        self.last_t = t
        n16 = marker.read(_luma_top(frame), self.run.marker_hint(frame.height))
        # the server's message for these bits names the full counter (meta keeps the last
        # 2048 frames, far less than a lap); without it yet, the number is guessed
        entry = n = None
        if n16 is not None:
            entry = self.meta.get(n16)
            n = entry[0] if entry is not None else self._guess_number(n16)
        if n16 is None:
            self.unreadable += 1
        elif n is None:
            self.misread += 1
            row["misread"] = True
        else:
            row["n"] = n
            if entry is not None:
                self._fill(row, entry, t_wall)
            else:
                row["_t_wall"] = t_wall
                self.pending[n16] = row
                if len(self.pending) > 256:
                    old = next(iter(self.pending))
                    self.pending.pop(old).pop("_t_wall", None)
            if self.last_n is not None:
                d = n - self.last_n
                if abs(d) > marker.MODULO // 2:
                    row["resync"] = True  # a lap guessed wrong before the server's message
                elif d > 1:
                    row["missed"] = d - 1
                elif d <= 0:
                    row["repeat"] = True
            if not row.get("repeat"):  # a repeat or an older frame: last_n stays the newest
                self.last_n = n
        self.run.frames.append(row)

    # -- leaving ---------------------------------------------------------------------------

    async def leave(self, mode: str) -> None:
        """Go without DELETE: "close" (pc.close(): DTLS close_notify) or "vanish" (the
        sockets go first, like a killed tab: the server finds out by ICE consent)."""
        self.leave_mode = mode
        self.left = self.run.now()
        if mode == "vanish":
            with contextlib.suppress(Exception):
                ice = self.pc.getTransceivers()[0].receiver.transport.transport
                for proto in list(ice._connection._protocols):
                    proto.transport.close()
        await self._stop()

    async def close(self) -> None:
        """The polite way, at the end of the run: DELETE, then close."""
        if self.left is None:
            self.left = self.run.now()
            self.leave_mode = "delete"
            if self.location:
                with contextlib.suppress(Exception):
                    async with self.run.http.delete(self.run.absolute(self.location)) as r:
                        await r.read()
        await self._stop()

    async def _stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for row in self.pending.values():
            row.pop("_t_wall", None)
        self.pending.clear()
        if self.pc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.pc.close(), 5)

    def summary(self) -> dict:
        return {
            "name": self.name,
            "joined": round(self.joined, 3),
            "first_frame": None if self.first_frame is None else round(self.first_frame, 3),
            "left": None if self.left is None else round(self.left, 3),
            "leave_mode": self.leave_mode,
            "frames": self.frames,
            "size": self.size,
            "unreadable": self.unreadable,
            "misread": self.misread,
            "lost_packets": self.lost_packets,
            "jitter_skips": 0 if self.jitter is None else self.jitter.skips,
            "clock_offset_ms": round(self.offset_ms, 3),
            "rtt_ms": None if self.best_rtt_ms == float("inf") else round(self.best_rtt_ms, 3),
            "error": self.error,
        }


def _luma_top(frame: av.VideoFrame) -> np.ndarray:
    """The top half of the Y plane (where the marker is), without copying U and V."""
    if frame.format.name not in ("yuv420p", "yuvj420p", "nv12"):
        frame = frame.reformat(format="yuv420p")
    plane = frame.planes[0]
    rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
    return rows[: max(1, plane.height // 2), : plane.width]


# -- the WHIP publisher (servers with --source webrtc) ------------------------------------------


class SceneTrack(MediaStreamTrack):
    """A publisher's camera: the synthetic scene paced at `fps`.

    With `blank_marker` its own frame number is greyed out, for a server that stamps its own
    (source.marker = true) so the numbers match the server's per-frame messages.
    """

    kind = "video"

    def __init__(
        self, width: int, height: int, fps: float, *, seed: int = 11, blank_marker: bool = False
    ):
        super().__init__()
        self.scene = Scene(width, height, seed=seed)
        self.fps = fps
        self.k = 0
        self.t0: float | None = None
        self.blank = marker.marker_box(height)[2:] if blank_marker else None

    async def recv(self) -> av.VideoFrame:
        if self.t0 is None:
            self.t0 = time.monotonic()
        delay = self.t0 + self.k / self.fps - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        rgb = self.scene.rgb(self.k, self.fps)
        if self.blank is not None:
            bw, bh = self.blank
            rgb[:bh, :bw] = 128
        frame = to_frame(rgb)
        frame.pts = int(self.k * 90000 / self.fps)
        frame.time_base = Fraction(1, 90000)
        self.k += 1
        return frame


class Publisher:
    def __init__(self, run: Soak, width: int, height: int, fps: float):
        self.run = run
        self.size = (width, height, fps)
        self.pc: RTCPeerConnection | None = None
        self.location = ""

    async def connect(self) -> None:
        pc = self.pc = RTCPeerConnection(NO_STUN)
        pc.addTransceiver(SceneTrack(*self.size, blank_marker=True), direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        async with self.run.http.post(
            self.run.base + "/whip", data=pc.localDescription.sdp, headers={"Content-Type": SDP}
        ) as r:
            body = await r.text()
            if r.status != 201:
                raise RuntimeError(f"WHIP POST answered {r.status}: {body[:200]}")
            self.location = r.headers.get("Location", "")
        await pc.setRemoteDescription(RTCSessionDescription(body, "answer"))

    async def close(self, delete: bool) -> None:
        if delete and self.location:
            with contextlib.suppress(Exception):
                async with self.run.http.delete(self.run.absolute(self.location)) as r:
                    await r.read()
        if self.pc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.pc.close(), 5)


# -- the server ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LocalServer:
    """`python -m stream serve` in a child process on a free loopback port."""

    serve_config: str
    workdir: Path
    leak: bool = False
    proc: subprocess.Popen | None = None
    url: str = ""
    log_path: Path = field(default_factory=Path)

    async def start(self, timeout: float = 120.0) -> None:
        cfg_path = self._config()
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = (self.workdir / "server.log").resolve()
        env = dict(os.environ)
        if self.leak:
            env[LEAK_ENV] = "1"
        else:
            env.pop(LEAK_ENV, None)
        cmd = [
            sys.executable,
            "-m",
            "stream",
            "serve",
            "--config",
            str(cfg_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        log.info("starting the server: %s (log: %s)", " ".join(cmd), self.log_path)
        logf = open(self.log_path, "wb")  # noqa: SIM115 - the child writes to it
        self.proc = subprocess.Popen(
            cmd,
            stdout=logf,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(Path(__file__).resolve().parents[1]),
        )
        logf.close()
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"the server exited with {self.proc.returncode}:\n{self.log_tail()}"
                    )
                with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
                    async with http.get(
                        self.url + "/healthz", timeout=aiohttp.ClientTimeout(total=2)
                    ) as r:
                        if r.status == 200:
                            return
                await asyncio.sleep(0.3)
        await self.stop()
        raise RuntimeError(
            f"the server did not answer /healthz within {timeout:.0f} s:\n{self.log_tail()}"
        )

    def _config(self) -> Path:
        """The serve config, with source.marker on for a webrtc source (so the frame
        numbers are the server's) - written next to the report."""
        data = read_toml(Path(self.serve_config)) if self.serve_config else {}
        src = data.setdefault("source", {})
        if src.get("uri") == "webrtc":
            src["marker"] = True
        out = (self.workdir / "serve.toml").resolve()
        out.write_text(_toml(data))
        return out

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def log_tail(self, n: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        return ""

    async def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGINT)
        for _ in range(150):
            if self.proc.poll() is not None:
                return self.proc.returncode
            await asyncio.sleep(0.1)
        self.proc.kill()
        return await asyncio.to_thread(self.proc.wait)


def _toml(data: dict) -> str:
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        raise TypeError(f"cannot write {v!r} as TOML")

    lines = []
    for section, table in data.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {value(v)}" for k, v in table.items()]
        lines.append("")
    return "\n".join(lines)


def _proc_figures(pid: int) -> dict:
    out: dict = {}
    with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{pid}/statm") as f:
        out["rss_bytes"] = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    with contextlib.suppress(OSError):
        out["open_fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


# -- the run ------------------------------------------------------------------------------------


class Soak:
    def __init__(
        self, opts: settings_mod.SoakSettings, *, leak: bool = False, workdir: Path | None = None
    ):
        self.opts = opts
        self.leak = leak
        self.workdir = workdir or Path(opts.report).parent
        self.t0 = 0.0
        self.base = ""
        self.http: aiohttp.ClientSession = None  # type: ignore[assignment]
        self.server: LocalServer | None = None
        self.viewers: list[Viewer] = []  # every viewer, present and gone
        self.frames: list[dict] = []
        self.polls: list[dict] = []
        self.faults: list[dict] = []
        self.requests: list[dict] = []  # the malformed burst's answers
        self.browser: list[dict] = []
        self.publisher: Publisher | None = None
        self.health: dict = {}
        self.decode_errors = _DecodeErrors()
        self._serial = 0
        self._leaves = 0
        self._hint: dict[int, float] = {}
        self._bad_polls = 0
        self.lags: list[tuple[float, float]] = []  # (t, s) when the loop woke late
        self.stop = asyncio.Event()  # set: end the run now and judge what was seen
        self.stopped_by = ""

    # clocks
    def now(self) -> float:
        return time.time() - self.t0

    def rel(self, t_wall: float) -> float:
        return t_wall - self.t0

    def absolute(self, location: str) -> str:
        return location if location.startswith("http") else self.base + location

    def marker_hint(self, height: int) -> float | None:
        hint = self._hint.get(height)
        if hint is None:
            src_h = int(self.health.get("source", {}).get("height") or 0)
            hint = marker.block_size(src_h) * height / src_h if src_h else None
            self._hint[height] = hint  # type: ignore[assignment]
        return hint

    @property
    def present(self) -> list[Viewer]:
        return [v for v in self.viewers if v.left is None]

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> dict:
        opts = self.opts
        self.workdir.mkdir(parents=True, exist_ok=True)
        aiortc_log = logging.getLogger("aiortc.rtcrtpreceiver")
        aiortc_log.addHandler(self.decode_errors)
        started = time.time()
        error = ""
        try:
            if opts.url:
                self.base = opts.url.rstrip("/")
            else:
                self.server = LocalServer(opts.serve_config, self.workdir, leak=self.leak)
                await self.server.start()
                self.base = self.server.url
            self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
            try:
                async with self.http.get(self.base + "/healthz") as r:
                    self.health = await r.json()
                self.t0 = time.time()
                await self._body()
            except Exception as e:  # noqa: BLE001 - a report is written whatever happens
                log.exception("soak failed")
                error = f"{type(e).__name__}: {e}"
            finally:
                await self._teardown()
        except Exception as e:  # noqa: BLE001 - the server did not start
            error = f"{type(e).__name__}: {e}"
            log.error("%s", error)
        finally:
            aiortc_log.removeHandler(self.decode_errors)
            if self.server is not None:
                rc = await self.server.stop()
                log.info("server stopped (exit code %s)", rc)
        return analyse(self, started, error)

    async def _body(self) -> None:
        opts = self.opts
        if self.health.get("source", {}).get("kind") == "webrtc":
            src = self.health["source"]
            self.publisher = Publisher(
                self,
                int(src.get("width") or 320),
                int(src.get("height") or 180),
                float(src.get("fps") or 15.0) or 15.0,
            )
            await self.publisher.connect()
        await self.poll()  # the level before anyone watches
        for k in range(opts.viewers):
            await self._join()
            if k + 1 < opts.viewers:
                await asyncio.sleep(0.2)
        tasks = [asyncio.ensure_future(self._poller()), asyncio.ensure_future(self._lag_watch())]
        if opts.churn_s > 0 and "leave" in opts.faults:
            tasks.append(asyncio.ensure_future(self._churn()))
        if opts.fault_every_s > 0 and set(opts.faults) - {"leave"}:
            tasks.append(asyncio.ensure_future(self._fault_loop()))
        if opts.browser:
            tasks.append(asyncio.ensure_future(self._browser()))
        try:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stop.wait(), max(0.0, opts.duration_s - self.now()))
            for t in tasks:
                if t.done() and t.exception() is not None:
                    raise t.exception()  # type: ignore[misc]
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await self.poll()

    async def _teardown(self) -> None:
        await asyncio.gather(*(v.close() for v in self.present), return_exceptions=True)
        if self.publisher is not None:
            await self.publisher.close(delete=True)
        if self.http is not None:
            await asyncio.sleep(0.5)  # let the server see the DELETEs before the last poll
            with contextlib.suppress(Exception):
                await self.poll(final=True)
            await self.http.close()

    async def _join(self) -> Viewer:
        self._serial += 1
        v = Viewer(self, f"v{self._serial}")
        self.viewers.append(v)
        try:
            await v.connect()
        except Exception as e:  # noqa: BLE001 - a failed join is judged, not fatal
            v.error = f"join failed: {type(e).__name__}: {e}"
            log.warning("viewer %s: %s", v.name, v.error)
            await v.leave("failed")
        return v

    async def _lag_watch(self, tick: float = 0.1) -> None:
        """Records how late this loop wakes. aiortc runs RTP, SRTP and ICE consent on it:
        a client that lags misses consent checks and frames, which its viewers would
        otherwise report as the server's fault."""
        while True:
            t = time.perf_counter()
            await asyncio.sleep(tick)
            late = time.perf_counter() - t - tick
            if late > 0.05:
                self.lags.append((round(self.now(), 3), round(late, 4)))

    # -- polling ---------------------------------------------------------------------------

    async def _poller(self) -> None:
        while True:
            await asyncio.sleep(self.opts.sample_s)
            await self.poll()

    async def poll(self, final: bool = False) -> None:
        t = self.now()
        row: dict = {"t": round(t, 3)}
        t_req = time.perf_counter()
        try:
            async with self.http.get(self.base + "/api/stats") as r:
                stats = await r.json()
            row["api_ms"] = round((time.perf_counter() - t_req) * 1000, 3)
            async with self.http.get(self.base + "/metrics") as r:
                text = await r.text()
        except Exception as e:  # noqa: BLE001 - a missed poll is recorded, not fatal
            row["error"] = f"{type(e).__name__}: {e}"
            self._bad_polls += 1
            self.polls.append(row)
            return
        proc = dict(stats.get("process") or {})
        if self.server is not None and self.server.pid:
            for k, v in _proc_figures(self.server.pid).items():
                proc.setdefault(k, v)
                if proc.get(k) is None:
                    proc[k] = v
        row["rss_mb"] = _mb(proc.get("rss_bytes"))
        row["gpu_mb"] = _mb(proc.get("gpu_bytes"))
        row["fds"] = proc.get("open_fds")
        row["peers"] = proc.get("peer_connections")
        row["peer_objects"] = proc.get("peer_objects")
        row["threads"] = proc.get("threads")
        row["viewers"] = stats.get("viewers")
        row["queue"] = proc.get("viewer_queue_packets")
        row["queue_max"] = proc.get("viewer_queue_max")
        row["in_flight"] = proc.get("pipeline_in_flight")
        row["stages"] = {
            name: {k: round(v["mean"], 3) for k, v in p.items() if isinstance(v, dict)}
            for name, p in (stats.get("pipelines") or {}).items()
        }
        row["pipeline_dropped"] = {
            n: p.get("dropped") for n, p in (stats.get("pipelines") or {}).items()
        }
        row["encoders"] = [
            {
                k: e.get(k)
                for k in (
                    "stream",
                    "codec",
                    "fps",
                    "frames_encoded",
                    "dropped",
                    "keyframes",
                    "encode_ms_mean",
                    "subscribers",
                )
            }
            for e in stats.get("encoders") or []
        ]
        row["source"] = {k: stats.get("source", {}).get(k) for k in ("state", "frames", "skipped")}
        row["metrics"] = _metrics(text)
        if final:
            row["final"] = True
        self.polls.append(row)

    # -- faults ----------------------------------------------------------------------------

    def _target(self) -> Viewer | None:
        """The present viewer that has gone longest without a fault (and has frames)."""
        now = self.now()
        busy = {
            f["viewer"]
            for f in self.faults
            if f.get("viewer") and f["t1"] + self.opts.grace_s > now
        }
        cands = [v for v in self.present if v.name not in busy and v.first_frame is not None]
        if not cands:
            return None
        last = {
            v.name: max((f["t0"] for f in self.faults if f.get("viewer") == v.name), default=-1.0)
            for v in cands
        }
        return min(cands, key=lambda v: (last[v.name], v.joined))

    async def _churn(self) -> None:
        while True:
            await asyncio.sleep(self.opts.churn_s)
            v = self._target()
            if v is None:
                continue
            self._leaves += 1
            mode = "close" if self._leaves % 2 else "vanish"
            t0 = self.now()
            log.info("fault: viewer %s leaves (%s, no DELETE)", v.name, mode)
            await v.leave(mode)
            await asyncio.sleep(self.opts.rejoin_s)
            nv = await self._join()
            self.faults.append(
                {
                    "kind": "leave",
                    "viewer": v.name,
                    "mode": mode,
                    "t0": round(t0, 3),
                    "t1": round(self.now(), 3),
                    "rejoined_as": nv.name,
                }
            )

    async def _fault_loop(self) -> None:
        opts = self.opts
        kinds = [f for f in opts.faults if f != "leave"]
        if self.publisher is None and "publisher" in kinds:
            kinds.remove("publisher")
            self.faults.append(
                {
                    "kind": "publisher",
                    "skipped": "the server's source is not webrtc",
                    "t0": 0.0,
                    "t1": 0.0,
                    "viewer": None,
                }
            )
        if not kinds:
            return
        await asyncio.sleep(max(0.0, opts.warmup_s + opts.fault_every_s / 2 - self.now()))
        k = 0
        while True:
            kind = kinds[k % len(kinds)]
            k += 1
            try:
                await getattr(self, f"_fault_{kind}")()
            except Exception:  # noqa: BLE001 - a broken fault must not end the soak
                log.exception("fault %s failed", kind)
            await asyncio.sleep(opts.fault_every_s)

    async def _fault_slow(self) -> None:
        v = self._target()
        if v is None:
            return
        t0 = self.now()
        log.info("fault: viewer %s stalls its reader for %.1f s", v.name, self.opts.stall_s)
        v.stall_until = time.time() + self.opts.stall_s
        self.faults.append(
            {
                "kind": "slow",
                "viewer": v.name,
                "t0": round(t0, 3),
                "t1": round(t0 + self.opts.stall_s, 3),
            }
        )

    async def _fault_lossy(self) -> None:
        v = self._target()
        if v is None:
            return
        t0 = self.now()
        log.info(
            "fault: viewer %s loses %.0f%% of RTP for %.1f s",
            v.name,
            self.opts.loss * 100,
            self.opts.loss_s,
        )
        v.loss = self.opts.loss
        v.loss_until = time.time() + self.opts.loss_s
        self.faults.append(
            {
                "kind": "lossy",
                "viewer": v.name,
                "loss": self.opts.loss,
                "t0": round(t0, 3),
                "t1": round(t0 + self.opts.loss_s, 3),
            }
        )

    async def _fault_publisher(self) -> None:
        if self.publisher is None:
            return
        t0 = self.now()
        log.info("fault: the publisher vanishes and reconnects after %.1f s", self.opts.rejoin_s)
        await self.publisher.close(delete=False)
        await asyncio.sleep(self.opts.rejoin_s)
        await self.publisher.connect()
        # every viewer waits for the new publisher's first frames: a fault for all of them
        self.faults.append(
            {
                "kind": "publisher",
                "viewer": None,
                "t0": round(t0, 3),
                "t1": round(self.now() + 2.0, 3),
            }
        )

    async def _fault_malformed(self) -> None:
        t0 = self.now()
        limit = 1 << 20
        good = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
        cases = [
            ("POST", "/whep", SDP, "hello"),  # not SDP
            ("POST", "/whep", SDP, good),  # SDP with no m= lines
            ("POST", "/whep", "text/plain", good),  # wrong content type
            ("POST", "/whep", "application/json", '{"sdp": 1}'),
            ("POST", "/whep", SDP, "v=0\r\n" + "a=x\r\n" * (limit // 5)),  # oversize
            ("POST", "/whep?codec=av1", SDP, good),
            ("POST", "/whep", SDP, "v=0\r\n\xff\xfe garbage"),
            ("DELETE", "/whep/0123456789abcdef", None, None),  # unknown session
            ("DELETE", "/whip/nope", None, None),
            ("PATCH", "/whep/nope", "application/trickle-ice-sdpfrag", "a=candidate:1"),
            ("POST", "/whip", SDP, "nonsense"),
            ("POST", "/api/mode", "application/json", "{not json"),
            ("POST", "/api/mode", "application/json", '{"mode": "warp"}'),
            ("GET", "/whep", None, None),
        ]
        log.info("fault: a burst of %d malformed requests", len(cases) * 3)

        async def one(
            http: aiohttp.ClientSession, method: str, path: str, ctype: str | None, body: str | None
        ) -> dict:
            headers = {"Content-Type": ctype} if ctype else {}
            data = body.encode("utf-8", "surrogateescape") if body is not None else None
            try:
                async with http.request(method, self.base + path, data=data, headers=headers) as r:
                    await r.read()
                    return {"method": method, "path": path, "status": r.status}
            except Exception as e:  # noqa: BLE001
                return {
                    "method": method,
                    "path": path,
                    "status": None,
                    "error": f"{type(e).__name__}: {e}",
                }

        # a session of its own that closes every connection: keep-alive sockets would
        # otherwise sit in the server's fd count and read as a leak
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True),
            timeout=aiohttp.ClientTimeout(total=10),
        ) as http:
            answers = await asyncio.gather(*(one(http, *c) for _ in range(3) for c in cases))
        for a in answers:
            a["t"] = round(t0, 3)
        self.requests += answers
        ok = all(a["status"] is not None and 400 <= a["status"] < 500 for a in answers)
        self.faults.append(
            {
                "kind": "malformed",
                "viewer": None,
                "global": False,
                "t0": round(t0, 3),
                "t1": round(self.now(), 3),
                "requests": len(answers),
                "all_4xx": ok,
            }
        )

    # -- the browser viewer ----------------------------------------------------------------

    async def _browser(self) -> None:
        """One headless Chromium on the viewer page; its own figures (window.framesmith)
        are recorded as viewer "chromium"."""
        from playwright.async_api import async_playwright

        features = "WebRtcHideLocalIpsWithMdns,Translate,MediaRouter,OptimizationHints"
        args = [
            "--no-sandbox",
            "--disable-gpu",
            "--autoplay-policy=no-user-gesture-required",
            f"--disable-features={features}",
        ]
        async with async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
            try:
                page = await browser.new_page()
                t0 = self.now()
                await page.goto(f"{self.base}/?codec={self.opts.codec}")
                seen = 0
                while True:
                    await asyncio.sleep(self.opts.sample_s)
                    got = await page.evaluate(
                        "() => window.framesmith ? {stats: window.framesmith.stats,"
                        " lat: window.framesmith.latencies.slice(-2000)} : null"
                    )
                    if not got:
                        continue
                    t = self.now()
                    self.browser.append(
                        {"t": round(t, 3), "joined": round(t0, 3), "stats": got.get("stats")}
                    )
                    lat = got.get("lat") or []
                    new = lat[-max(0, len(lat) - seen) :] if seen < len(lat) else []
                    seen = len(lat)
                    for x in new:
                        self.frames.append(
                            {
                                "t": round(t, 4),
                                "viewer": "chromium",
                                "n": None,
                                "latency_ms": round(float(x), 3),
                                "send_ms": None,
                                "interval_ms": None,
                                "missed": 0,
                            }
                        )
            finally:
                await browser.close()


def _mb(v: Any) -> float | None:
    return None if v is None else round(v / (1 << 20), 4)


def _metrics(text: str) -> dict:
    """framesmith_* and process_* samples of the Prometheus text, without histogram
    buckets."""
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    with contextlib.suppress(Exception):
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                if s.name.endswith("_bucket") or s.name.endswith("_created"):
                    continue
                if not s.name.startswith(("framesmith_", "process_")):
                    continue
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


# -- the verdict --------------------------------------------------------------------------------


def _windows(run: Soak, viewer: str) -> list[tuple[float, float]]:
    g = run.opts.grace_s
    return [
        (f["t0"], f["t1"] + g)
        for f in run.faults
        if f.get("t1", 0) > 0
        and f.get("kind") != "malformed"
        and f.get("kind") != "leave"
        and (f.get("viewer") in (None, viewer))
    ]


def _inside(t: float, wins: list[tuple[float, float]]) -> bool:
    return any(a <= t <= b for a, b in wins)


def _overlaps(a: float, b: float, wins: list[tuple[float, float]]) -> bool:
    return any(x <= b and a <= y for x, y in wins)


def slope_per_min(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (t seconds, value) points, per minute."""
    pts = [(t, v) for t, v in points if v is not None]
    if len(pts) < 3:
        return None
    t = np.array([p[0] for p in pts], float)
    v = np.array([p[1] for p in pts], float)
    if t.max() - t.min() < 1e-6:
        return None
    return float(np.polyfit(t / 60.0, v, 1)[0])


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def analyse(run: Soak, started: float, error: str = "") -> dict:
    opts = run.opts
    end = run.now() if run.t0 else 0.0
    warm = opts.warmup_s
    wins = {v.name: _windows(run, v.name) for v in run.viewers}
    for row in run.frames:
        w = wins.get(row["viewer"], [])
        row["faulted"] = _inside(row["t"], w)
        row.pop("_t_wall", None)

    judged = [
        r for r in run.frames if r["t"] >= warm and not r["faulted"] and r["viewer"] != "chromium"
    ]
    lat = [r["latency_ms"] for r in judged if r["latency_ms"] is not None]
    send = [r["send_ms"] for r in judged if r["send_ms"] is not None]
    server = [
        r["latency_ms"] - r["send_ms"]
        for r in judged
        if r["latency_ms"] is not None and r["send_ms"] is not None
    ]
    read = [r for r in judged if r["n"] is not None]
    missed = sum(r["missed"] for r in read)
    expected = len(read) + missed
    intervals = [r["interval_ms"] for r in judged if r["interval_ms"] is not None]
    frozen = sum(1 for x in intervals if x > opts.freeze_ms)
    g = opts.grace_s
    fault_spans = [
        (f["t0"], f["t1"] + g)
        for f in run.faults
        if f.get("t1", 0) > 0 and f["kind"] in ("lossy", "publisher")
    ]
    dec_errors = [run.rel(t) for t in run.decode_errors.times]
    dec_judged = [t for t in dec_errors if t >= warm and not _inside(t, fault_spans)]

    # per viewer: frame rate and the longest gap outside its faults
    per_viewer = []
    by_viewer: dict[str, list[dict]] = {}
    for r in run.frames:
        by_viewer.setdefault(r["viewer"], []).append(r)
    worst_gap = 0.0
    worst_gap_at: dict = {}
    joins_failed = []
    for v in run.viewers:
        rows = by_viewer.get(v.name, [])
        w = wins[v.name]
        s = v.summary()
        stop = v.left if v.left is not None else end
        if v.first_frame is None:
            if stop - v.joined >= JOIN_TIMEOUT_S or v.error:
                joins_failed.append(v.name)
        elif v.first_frame - v.joined > JOIN_TIMEOUT_S:
            joins_failed.append(v.name)
        s["join_s"] = None if v.first_frame is None else round(v.first_frame - v.joined, 3)
        # active span after warm-up, minus fault windows
        a0 = max(warm, v.first_frame if v.first_frame is not None else stop)
        span = max(0.0, stop - a0)
        for x, y in w:
            span -= max(0.0, min(y, stop) - max(x, a0))
        n = sum(1 for r in rows if r["t"] >= a0 and not r["faulted"])
        s["active_s"] = round(span, 3)
        s["fps"] = round(n / span, 3) if span >= 5.0 else None
        vl = [
            r["latency_ms"]
            for r in rows
            if r["latency_ms"] is not None and not r["faulted"] and r["t"] >= warm
        ]
        s["latency_p50_ms"] = _pct(vl, 50)
        # gaps: between frames, and from the last frame to the end (not across a fault)
        times = [r["t"] for r in rows] + ([stop] if v.first_frame is not None else [])
        gap = 0.0
        for a, b in zip(times, times[1:], strict=False):
            if b < warm or _overlaps(a, b, w):
                continue
            if b - a > gap:
                gap = b - a
                if gap > worst_gap:
                    worst_gap = gap
                    worst_gap_at = {"viewer": v.name, "from": round(a, 3), "to": round(b, 3)}
        s["max_gap_s"] = round(gap, 3)
        per_viewer.append(s)

    fps_values = [s["fps"] for s in per_viewer if s["fps"] is not None]
    polls = [p for p in run.polls if "error" not in p and p["t"] >= warm]

    def series(key: str) -> list[tuple[float, float]]:
        return [
            (p["t"], p.get(key)) for p in polls if p.get(key) is not None and not p.get("final")
        ]

    slopes = {k: slope_per_min(series(k)) for k in ("rss_mb", "gpu_mb", "fds", "peers")}
    span_min = (
        max((p["t"] for p in polls), default=0) - min((p["t"] for p in polls), default=0)
    ) / 60
    rss_growth = slopes["rss_mb"] * span_min if slopes["rss_mb"] is not None else None

    summary = {
        "duration_s": round(end, 3),
        "frames": len(run.frames),
        "frames_judged": len(judged),
        "latency_samples": len(lat),
        "latency_p50_ms": _pct(lat, 50),
        "latency_p95_ms": _pct(lat, 95),
        "latency_p99_ms": _pct(lat, 99),
        "latency_max_ms": max(lat, default=None),
        "send_p50_ms": _pct(send, 50),
        "send_p95_ms": _pct(send, 95),
        "send_p99_ms": _pct(send, 99),
        # born -> handed to the viewer's sender: the server's share of the latency; the
        # rest (send_*) is transport and the viewer's jitter buffer and decoder
        "server_p50_ms": _pct(server, 50),
        "server_p95_ms": _pct(server, 95),
        "server_p99_ms": _pct(server, 99),
        "server_max_ms": max(server, default=None),
        "fps_min": min(fps_values, default=None),
        "fps_mean": float(np.mean(fps_values)) if fps_values else None,
        "dropped": missed,
        "expected": expected,
        "drop_ratio": missed / expected if expected else None,
        "frozen": frozen,
        "intervals": len(intervals),
        "frozen_ratio": frozen / len(intervals) if intervals else None,
        "unreadable": sum(v.unreadable for v in run.viewers),
        "misread": sum(v.misread for v in run.viewers),
        # lost packets the viewers gave up on (then asked for a keyframe), see jitter.py
        "jitter_skips": sum(v.jitter.skips for v in run.viewers if v.jitter is not None),
        "decode_errors": len(dec_errors),
        "decode_errors_judged": len(dec_judged),
        "decode_error_ratio": len(dec_judged) / len(judged) if judged else None,
        "max_gap_s": worst_gap,
        "max_gap_at": worst_gap_at,
        "slopes_per_min": slopes,
        "rss_growth_mb": rss_growth,
        "polls": len(run.polls),
        "polls_failed": run._bad_polls,
        "viewers_total": len(run.viewers),
        "joins_failed": joins_failed,
        "faults": {
            k: sum(1 for f in run.faults if f["kind"] == k and not f.get("skipped"))
            for k in settings_mod.FAULTS
        },
    }
    if polls:
        first, last = polls[0], polls[-1]
        for key in ("rss_mb", "gpu_mb", "fds", "peers"):
            summary[f"{key}_first"] = first.get(key)
            summary[f"{key}_last"] = last.get(key)

    lags = [lag for t, lag in run.lags if t >= warm]
    summary["client_lag_max_s"] = max(lags, default=0.0) if run.t0 else None
    summary["client_lag_over_0_25_s"] = sum(1 for lag in lags if lag > 0.25)

    limits = {
        k: v
        for k, v in asdict(opts).items()
        if k.startswith(("max_", "min_")) or k in ("freeze_ms", "warmup_s", "grace_s")
    }
    # the latency limits under the names stream.plots draws
    thresholds = {
        "p50_ms": opts.max_latency_p50_ms,
        "p95_ms": opts.max_latency_p95_ms,
        "p99_ms": opts.max_latency_p99_ms,
    }
    checks: list[dict] = []

    def check(
        name: str,
        value: Any,
        limit: float,
        *,
        at_least: bool = False,
        unit: str = "",
        need: bool = True,
        why: str = "",
    ) -> None:
        if value is None:
            checks.append(
                {
                    "name": name,
                    "value": None,
                    "limit": limit,
                    "unit": unit,
                    "ok": not need,
                    "detail": "no data",
                }
            )
            return
        ok = value >= limit if at_least else value <= limit
        checks.append(
            {
                "name": name,
                "value": round(float(value), 4),
                "limit": limit,
                "unit": unit,
                "ok": bool(ok),
                "op": ">=" if at_least else "<=",
                **({"detail": why} if why and not ok else {}),
            }
        )

    check("latency_p50", summary["latency_p50_ms"], opts.max_latency_p50_ms, unit="ms")
    check("latency_p95", summary["latency_p95_ms"], opts.max_latency_p95_ms, unit="ms")
    check("latency_p99", summary["latency_p99_ms"], opts.max_latency_p99_ms, unit="ms")
    check("min_fps", summary["fps_min"], opts.min_fps, at_least=True, unit="fps")
    check("drop_ratio", summary["drop_ratio"], opts.max_drop_ratio)
    check("frozen_ratio", summary["frozen_ratio"], opts.max_frozen_ratio)
    check(
        "decode_error_ratio", summary["decode_error_ratio"], opts.max_decode_error_ratio, need=False
    )
    check("max_gap", worst_gap if run.frames else None, opts.max_gap_s, unit="s")
    check("joins_failed", len(joins_failed), 0, unit="viewers")
    check("rss_slope", slopes["rss_mb"], opts.max_rss_mb_per_min, unit="MB/min")
    check("rss_growth", rss_growth, opts.max_rss_growth_mb, unit="MB")
    check("gpu_memory_slope", slopes["gpu_mb"], opts.max_gpu_mb_per_min, unit="MB/min", need=False)
    check("fds_slope", slopes["fds"], opts.max_fds_per_min, unit="fds/min")
    check("peer_connections_slope", slopes["peers"], opts.max_peers_per_min, unit="pcs/min")
    check(
        "client_lag",
        summary["client_lag_max_s"],
        opts.max_client_lag_s,
        unit="s",
        why="the soak client's own event loop stalled: its viewers measured the client, not "
        "the server; run fewer viewers per soak, or the soak on another machine",
    )
    if run.requests:
        bad = [a for a in run.requests if not (a["status"] and 400 <= a["status"] < 500)]
        checks.append(
            {
                "name": "malformed_requests_refused",
                "value": len(bad),
                "limit": 0,
                "unit": "not 4xx",
                "ok": not bad,
                "op": "<=",
                "detail": bad[:5] if bad else f"{len(run.requests)} requests, all 4xx",
            }
        )
    checks.append(
        {
            "name": "server_answered_polls",
            "value": run._bad_polls,
            "limit": 0,
            "unit": "failed polls",
            "ok": run._bad_polls == 0,
            "op": "<=",
        }
    )
    if error:
        checks.append(
            {"name": "completed", "value": None, "limit": None, "ok": False, "detail": error}
        )

    report = {
        "kind": "soak",
        "version": 1,
        "started": started,
        "url": run.base,
        "server": {
            "log": str(run.server.log_path) if run.server else None,
            "leak_hook": run.leak,
            "health": run.health,
        },
        "settings": asdict(opts),
        "duration_s": summary["duration_s"],
        "thresholds": thresholds,
        "limits": limits,
        "summary": summary,
        "checks": checks,
        "passed": all(c["ok"] for c in checks),
        "verdict": {
            "passed": all(c["ok"] for c in checks),
            "failed": [c["name"] for c in checks if not c["ok"]],
        },
        "error": error,
        "stopped_by": run.stopped_by or None,  # a signal that ended the run early
        "viewers": per_viewer,
        "faults": run.faults,
        "requests": run.requests,
        "decode_errors": [round(t, 3) for t in dec_errors],
        "browser": run.browser,
        "polls": run.polls,
        "frames": run.frames,
    }
    return report


# -- output -------------------------------------------------------------------------------------


def format_verdict(report: dict) -> str:
    s = report["summary"]

    def f(v: Any, nd: int = 1) -> str:
        return "-" if v is None else f"{v:.{nd}f}"

    slopes = s.get("slopes_per_min", {})
    early = f" (ended early by {report['stopped_by']})" if report.get("stopped_by") else ""
    lines = [
        f"soak: {s['duration_s']:.0f} s{early}, {s['viewers_total']} viewer sessions, "
        f"{s['frames']} frames ({s['frames_judged']} judged), faults {s['faults']}",
        f"latency ms p50 {f(s['latency_p50_ms'])}  p95 {f(s['latency_p95_ms'])}  "
        f"p99 {f(s['latency_p99_ms'])}   fps min {f(s['fps_min'])}  "
        f"drops {s['dropped']}/{s['expected']}  frozen {s['frozen']}  "
        f"max gap {f(s['max_gap_s'], 2)} s  client lag max {f(s.get('client_lag_max_s'), 2)} s"
        f"  skips {s.get('jitter_skips', '-')}  misread {s.get('misread', '-')}",
        f"  of which server (born -> sent) p50 {f(s.get('server_p50_ms'))}  p95 "
        f"{f(s.get('server_p95_ms'))}  p99 {f(s.get('server_p99_ms'))}; sent -> decoded p50 "
        f"{f(s.get('send_p50_ms'))}  p95 {f(s.get('send_p95_ms'))}  p99 {f(s.get('send_p99_ms'))}",
        f"slopes per min: rss {f(slopes.get('rss_mb'), 2)} MB  gpu "
        f"{f(slopes.get('gpu_mb'), 3)} MB  fds {f(slopes.get('fds'), 2)}  peer connections "
        f"{f(slopes.get('peers'), 2)}",
    ]
    for c in report["checks"]:
        mark = "ok  " if c["ok"] else "FAIL"
        val = "-" if c["value"] is None else c["value"]
        lines.append(
            f"  {mark} {c['name']:<28} {val} {c.get('op', '')} {c['limit']} "
            f"{c.get('unit', '')}"
            + (f"  ({c['detail']})" if not c["ok"] and c.get("detail") else "")
        )
    lines.append("PASSED" if report["passed"] else "FAILED")
    return "\n".join(lines)


def write_report(report: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(
        json.dumps(report, separators=(",", ":"), allow_nan=False, default=_json_default)
    )
    tmp.replace(path)


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    return str(o)


def write_plots(report: dict, report_path: Path, out_dir: Path) -> list[Path]:
    """Latency histogram and latency over time (stream.plots) of the judged frames: after
    warm-up, outside faults (a stalled viewer's backlog would flatten the rest)."""
    try:
        from . import plots
    except ImportError as e:
        log.warning("no plots: stream.plots is not available (%s)", e)
        return []
    judged = {k: v for k, v in report.items() if k not in ("frames", "polls")}
    warm = report["limits"]["warmup_s"]
    judged["frames"] = [f for f in report["frames"] if f["t"] >= warm and not f.get("faulted")]
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = report_path.stem
    out = []
    try:
        out.append(plots.plot_latency_hist(judged, out_dir / f"{stem}.latency_hist.png"))
        out.append(plots.plot_latency_time(judged, out_dir / f"{stem}.latency_time.png"))
    except ValueError as e:  # no latencies at all
        log.warning("no plots: %s", e)
    return [Path(p) for p in out]


# -- command line -------------------------------------------------------------------------------


async def soak(opts: settings_mod.SoakSettings, *, leak: bool = False) -> dict:
    """Run a soak. SIGINT or SIGTERM ends it early: viewers and server are closed and the
    report judges what was seen until then (an hour-long run stopped at minute 40 still says
    what it measured)."""
    run = Soak(opts, leak=leak)
    loop = asyncio.get_running_loop()

    def stop(name: str) -> None:
        log.warning("%s: ending the soak early, report follows", name)
        run.stopped_by = name
        run.stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(sig, stop, sig.name)
    try:
        return await run.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m stream soak",
        description="Hold WHEP viewers on a server for a while, inject faults, and judge "
        "latency, frame rate, drops and resource growth against thresholds. "
        "Exit code 1 when a check fails; a JSON report always.",
    )
    ap.add_argument("--config", help="TOML config (see configs/soak.toml)")
    ap.add_argument("--url", help="a running server (default: start one on a free port)")
    ap.add_argument("--serve-config", help="serve config of the server started here")
    ap.add_argument("--viewers", type=int, help="WHEP viewers held at once")
    ap.add_argument("--duration", type=float, help="seconds")
    ap.add_argument("--json", help="report path (default: soak.report in the config)")
    ap.add_argument("--plots", help="folder for the latency plots")
    ap.add_argument(
        "--faults", help="comma-separated: leave,slow,lossy,malformed,publisher (empty: none)"
    )
    ap.add_argument(
        "--browser",
        action="store_true",
        default=None,
        help="add one headless Chromium viewer (playwright, /usr/bin/chromium)",
    )
    ap.add_argument(
        "--leak-viewer-pcs",
        action="store_true",
        help="start the server with its test hook that leaks the peer connection "
        "of every viewer that leaves (shows that the leak check can fail)",
    )
    ap.add_argument("--log-level", default="INFO")
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("aiortc", "aioice", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    try:
        opts = settings_mod.load("soak", args.config)
        over = {
            "url": args.url,
            "serve_config": args.serve_config,
            "viewers": args.viewers,
            "duration_s": args.duration,
            "report": args.json,
            "plots": args.plots,
            "browser": args.browser,
            "faults": None
            if args.faults is None
            else [f.strip() for f in args.faults.split(",") if f.strip()],
        }
        for k, v in over.items():
            if v is not None:
                setattr(opts, k, v)
        _validate(opts)
    except ConfigError as e:
        print(f"error: {e}")
        return 2
    if args.leak_viewer_pcs and opts.url:
        print("error: --leak-viewer-pcs needs a server started here (no --url)")
        return 2
    report = asyncio.run(soak(opts, leak=args.leak_viewer_pcs))
    path = Path(opts.report)
    write_report(report, path)
    print(format_verdict(report))
    print(f"report: {path}")
    if opts.plots:
        for p in write_plots(report, path, Path(opts.plots)):
            print(f"plot: {p}")
    if report.get("error") and not report["frames"]:
        return 2
    return 0 if report["passed"] else 1


def _validate(opts: settings_mod.SoakSettings) -> None:
    """The command-line overrides, checked by the config's own rules."""
    for key, check in settings_mod._CHECKS.items():
        sec, name = key.split(".")
        if sec == "soak":
            ok = check(getattr(opts, name))
            if ok is not True:
                raise ConfigError(f"{key}: {ok}, got {getattr(opts, name)!r}")


if __name__ == "__main__":
    raise SystemExit(main())
