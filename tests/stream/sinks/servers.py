"""Real servers nobody here wrote, from Debian, started on free ports with their config in
tmp_path: nginx with libnginx-mod-rtmp, srt-tools' srt-live-transmit, Janus (streaming
plugin + HTTP API). Each test skips cleanly when the binary is absent (scripts/setup.sh
installs them)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import av
import pytest
from aiortc import RTCPeerConnection, RTCSessionDescription

from ..rtc import NO_STUN

RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")
JANUS_LIB = Path("/usr/lib/x86_64-linux-gnu/janus")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def need(binary: str, *files: Path) -> str:
    path = shutil.which(binary) or (
        f"/usr/sbin/{binary}" if Path(f"/usr/sbin/{binary}").exists() else None
    )
    if path is None or not all(f.exists() for f in files):
        pytest.skip(f"{binary} not installed (scripts/setup.sh installs it)")
    return path


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {port}")


def stop_process(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# -- nginx + libnginx-mod-rtmp ------------------------------------------------------------------

NGINX_CONF = """\
daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
load_module {module};
events {{ worker_connections 64; }}
rtmp {{
    server {{
        listen 127.0.0.1:{port};
        application live {{
            live on;
            record off;
            wait_key on;
        }}
    }}
}}
"""


@dataclass
class Nginx:
    folder: Path
    port: int = 0
    proc: subprocess.Popen | None = None
    binary: str = ""

    @classmethod
    def create(cls, tmp_path: Path) -> Nginx:
        binary = need("nginx", RTMP_MODULE)
        folder = tmp_path / "nginx"
        (folder / "logs").mkdir(parents=True)
        port = free_port()
        (folder / "nginx.conf").write_text(
            NGINX_CONF.format(dir=folder, module=RTMP_MODULE, port=port)
        )
        return cls(folder, port, binary=binary)

    def url(self, key: str) -> str:
        return f"rtmp://127.0.0.1:{self.port}/live/{key}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "-p", str(self.folder), "-c", str(self.folder / "nginx.conf"),
             "-e", str(self.folder / "error.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_port(self.port)

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def log(self) -> str:
        path = self.folder / "error.log"
        return path.read_text()[-3000:] if path.exists() else ""


# -- reading a stream back with PyAV --------------------------------------------------------------


@dataclass
class ReadBack:
    """Frames (and audio frames) decoded from a URL or file by PyAV, on a thread."""

    sizes: list[tuple[int, int]] = field(default_factory=list)
    audio_frames: int = 0
    audio_codec: str = ""
    video_codec: str = ""
    error: str = ""


def read_back(url: str, frames: int, timeout: float, **options: str) -> ReadBack:
    """(FFmpeg's default 5 s analyzeduration made an RTMP read take ~21 s here; 0.5 s: ~4 s)"""
    if "://" in url:
        options = {"analyzeduration": "500000", **options}
    out = ReadBack()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not out.sizes:
        try:
            container = av.open(url, options=options, timeout=(timeout, 5.0))
        except av.error.FFmpegError as e:
            out.error = str(e)
            time.sleep(0.3)
            continue
        try:
            if not container.streams.video:
                out.error = "no video stream found in the probe"
                continue
            streams = [*container.streams.video[:1], *container.streams.audio[:1]]
            out.video_codec = container.streams.video[0].codec_context.name
            if container.streams.audio:
                out.audio_codec = container.streams.audio[0].codec_context.name
            for packet in container.demux(*streams):
                for frame in packet.decode():
                    if isinstance(frame, av.AudioFrame):
                        out.audio_frames += 1
                    else:
                        out.sizes.append((frame.width, frame.height))
                if len(out.sizes) >= frames or time.monotonic() > deadline:
                    break
        except av.error.FFmpegError as e:
            out.error = str(e)
        finally:
            container.close()
    return out


async def read_back_async(url: str, frames: int, timeout: float, **options: str) -> ReadBack:
    result: list[ReadBack] = []
    thread = threading.Thread(
        target=lambda: result.append(read_back(url, frames, timeout, **options))
    )
    thread.start()
    await asyncio.to_thread(thread.join, timeout + 15)
    assert result, "reader hung"
    return result[0]


# -- srt-live-transmit as an SRT listener ------------------------------------------------------


@dataclass
class SrtListener:
    port: int
    out: Path
    proc: subprocess.Popen | None = None

    @classmethod
    def start(cls, tmp_path: Path, options: str = "", port: int = 0) -> SrtListener:
        binary = need("srt-live-transmit")
        port = port or free_port(socket.SOCK_DGRAM)
        tmp_path.mkdir(parents=True, exist_ok=True)
        out = tmp_path / "srt.ts"
        url = f"srt://127.0.0.1:{port}?mode=listener{options}"
        proc = subprocess.Popen(
            [binary, "-q", url, "file://con"],
            stdout=out.open("wb"), stderr=(tmp_path / "srt.log").open("w"),
        )  # fmt: skip
        time.sleep(0.3)
        return cls(port, out, proc)

    def stop(self) -> None:
        stop_process(self.proc)


# -- Janus: streaming plugin fed over RTP, viewers over its HTTP API ---------------------------

JANUS_CONF = """\
general: {{
    configs_folder = "{dir}"
    plugins_folder = "{dir}/plugins"
    transports_folder = "{dir}/transports"
    events_folder = "{dir}/none"
    loggers_folder = "{dir}/none"
    debug_level = 4
}}
media: {{
    rtp_port_range = "{rtp_lo}-{rtp_hi}"
}}
nat: {{
    ice_enforce_list = "127.0.0.1"
    ignore_mdns = true
}}
"""
JANUS_HTTP = """\
general: {{
    json = "plain"
    base_path = "/janus"
    http = true
    port = {port}
    ip = "127.0.0.1"
    https = false
}}
admin: {{
    admin_http = false
}}
"""
JANUS_STREAMING = """\
general: {{
    admin_key = "{admin_key}"
}}
framesmith: {{
    type = "rtp"
    id = 1
    description = "framesmith"
    secret = "{secret}"
    media = (
        {{
            type = "video"
            mid = "v"
            port = {rtp_port}
            pt = 96
            codec = "{codec}"
            bufferkf = true
            {fmtp}
        }}
    )
}}
"""


@dataclass
class Janus:
    folder: Path
    port: int
    rtp_port: int
    proc: subprocess.Popen | None = None
    # as docker/compose.janus.yaml: creating mountpoints needs the admin key, editing or
    # destroying mountpoint 1 its secret
    admin_key: str = ""
    secret: str = ""

    @classmethod
    def start(cls, tmp_path: Path, codec: str) -> Janus:
        binary = need("janus", JANUS_LIB / "plugins" / "libjanus_streaming.so")
        folder = tmp_path / "janus"
        for sub in ("plugins", "transports", "none"):
            (folder / sub).mkdir(parents=True)
        # only the streaming plugin and the HTTP transport
        os.symlink(
            JANUS_LIB / "plugins/libjanus_streaming.so", folder / "plugins/libjanus_streaming.so"
        )
        os.symlink(
            JANUS_LIB / "transports/libjanus_http.so", folder / "transports/libjanus_http.so"
        )
        port, rtp_port = free_port(), free_port(socket.SOCK_DGRAM)
        lo = random.randrange(40000, 60000, 100)
        (folder / "janus.jcfg").write_text(JANUS_CONF.format(dir=folder, rtp_lo=lo, rtp_hi=lo + 99))
        (folder / "janus.transport.http.jcfg").write_text(JANUS_HTTP.format(port=port))
        fmtp = 'fmtp = "profile-level-id=42e01f;packetization-mode=1"' if codec == "h264" else ""
        admin_key, secret = os.urandom(16).hex(), os.urandom(16).hex()
        (folder / "janus.plugin.streaming.jcfg").write_text(
            JANUS_STREAMING.format(
                rtp_port=rtp_port, codec=codec, fmtp=fmtp, admin_key=admin_key, secret=secret
            )
        )
        proc = subprocess.Popen(
            [binary, "-F", str(folder), "-C", str(folder / "janus.jcfg")],
            stdout=(folder / "janus.log").open("w"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        janus = cls(folder, port, rtp_port, proc, admin_key, secret)
        try:
            wait_port(port, 15)
        except TimeoutError:
            janus.stop()
            pytest.fail("Janus did not start: " + janus.log())
        return janus

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}/janus"

    def log(self) -> str:
        return (self.folder / "janus.log").read_text()[-3000:]

    def stop(self) -> None:
        stop_process(self.proc)


async def janus_request(http: aiohttp.ClientSession, api: str, body: dict) -> dict:
    """One synchronous streaming-plugin request (list, create, destroy, ...) on a session
    of its own; the plugin's answer (`plugindata.data`)."""

    async def post(url: str, message: dict) -> dict:
        tx = {"transaction": os.urandom(6).hex()}
        async with http.post(url, json={**message, **tx}) as r:
            return await r.json()

    session = (await post(api, {"janus": "create"}))["data"]["id"]
    try:
        handle = (
            await post(f"{api}/{session}", {"janus": "attach", "plugin": "janus.plugin.streaming"})
        )["data"]["id"]
        answer = await post(f"{api}/{session}/{handle}", {"janus": "message", "body": body})
        return answer["plugindata"]["data"]
    finally:
        await post(f"{api}/{session}", {"janus": "destroy"})


async def janus_viewer(http: aiohttp.ClientSession, api: str, mountpoint: int = 1):
    """A WebRTC viewer of a Janus streaming mountpoint through Janus's HTTP API (create a
    session, attach the plugin, watch: Janus offers, aiortc answers, start)."""

    async def post(url: str, body: dict) -> dict:
        tx = {"transaction": os.urandom(6).hex()}
        async with http.post(url, json={**body, **tx}) as r:
            return await r.json()

    session = (await post(api, {"janus": "create"}))["data"]["id"]
    handle = (
        await post(f"{api}/{session}", {"janus": "attach", "plugin": "janus.plugin.streaming"})
    )["data"]["id"]
    await post(
        f"{api}/{session}/{handle}",
        {"janus": "message", "body": {"request": "watch", "id": mountpoint}},
    )
    offer = None
    for _ in range(20):
        async with http.get(f"{api}/{session}?maxev=1") as r:
            event = await r.json()
        event = event[0] if isinstance(event, list) else event
        if "jsep" in event:
            offer = event["jsep"]["sdp"]
            break
    assert offer is not None, "Janus sent no offer"
    pc = RTCPeerConnection(NO_STUN)
    tracks: list = []
    got = asyncio.Event()

    @pc.on("track")
    def _track(track) -> None:
        tracks.append(track)
        got.set()

    await pc.setRemoteDescription(RTCSessionDescription(offer, "offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    body = {
        "janus": "message",
        "body": {"request": "start"},
        "jsep": {"type": "answer", "sdp": pc.localDescription.sdp},
    }
    await post(f"{api}/{session}/{handle}", body)
    await asyncio.wait_for(got.wait(), 10)
    return pc, tracks[0]
