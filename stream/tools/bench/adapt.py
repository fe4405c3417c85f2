"""Frame rate held and scale chosen over time under a changing load.

`python -m stream bench --adapt [--out DIR]` runs `serve` as a newcomer does (a child process,
auth on, the test scene 640x360 @ 30 -> 1280x720 through the bundled CNN, adaptation on) with
the hq model offered as a second mode, one aiortc WHEP viewer counting the frames it decodes,
and polls /api/stats twice a second. At --switch-at it switches the running model to the hq
one (POST /api/mode, admin) and at --back-at back to the default: the controller must find a
new input scale (or the fallback) each time while the viewer keeps its frame rate. The result
(kind "adapt-run": per poll, frames received, the scale, the running mode and why) and its
plot (stream/tools/plots_adapt.py) go to --out.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from ...auth import Role, TokenAuthority
from ...config import write_toml
from ..soak.server import LocalServer
from ..soak.viewer import NO_STUN, SDP

HQ = "upscale-hq"


async def _viewer(http: aiohttp.ClientSession, url: str, token: str, frames: list[float]) -> Any:
    pc = RTCPeerConnection(NO_STUN)
    got: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()

    @pc.on("track")
    def _on(track: MediaStreamTrack) -> None:
        if not got.done():
            got.set_result(track)

    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": SDP, "Authorization": f"Bearer {token}"}
    async with http.post(url + "/whep", data=pc.localDescription.sdp, headers=headers) as r:
        if r.status != 201:
            raise RuntimeError(f"WHEP answered {r.status}: {await r.text()}")
        answer = await r.text()
    await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    track = await asyncio.wait_for(got, 30)

    async def read() -> None:
        with contextlib.suppress(Exception):
            while True:
                await track.recv()
                frames.append(time.monotonic())

    return pc, asyncio.ensure_future(read())


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.workdir or tempfile.mkdtemp(prefix="framesmith-adapt-"))
    work.mkdir(parents=True, exist_ok=True)
    config = {
        "source": {"width": args.width, "height": args.height, "fps": args.fps},
        "model": {"extra": [HQ], "compare": False},
        "adapt": {"enabled": True},
    }
    server = LocalServer(str(write_toml(config, work / "adapt.toml")), work)
    await server.start(timeout=300)
    admin = TokenAuthority.from_file(server.secret_file).mint(Role.ADMIN, args.seconds + 600)
    auth = {"Authorization": f"Bearer {admin}"}
    frames: list[float] = []
    rows: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    try:
        async with aiohttp.ClientSession() as http:
            pc, reader = await _viewer(http, server.url, admin, frames)
            t0 = time.monotonic()
            plan = [(args.switch_at, f"model:{HQ}"), (args.back_at, "model")]
            while (t := time.monotonic() - t0) < args.seconds:
                if plan and t >= plan[0][0]:
                    _, mode = plan.pop(0)
                    async with http.post(
                        server.url + "/api/mode", json={"mode": mode}, headers=auth
                    ) as r:
                        events.append({"t": round(t, 3), "mode": mode, "status": r.status})
                async with http.get(server.url + "/api/stats", headers=auth) as r:
                    stats = await r.json()
                a = stats.get("adapt") or {}
                rows.append(
                    {
                        "t": round(t, 3),
                        "frames": sum(1 for f in frames if f - t0 <= t),
                        "scale": a.get("scale"),
                        "running_mode": a.get("running_mode"),
                        "reason": a.get("reason"),
                        "gpu_ms": a.get("gpu_ms"),
                    }
                )
                await asyncio.sleep(args.sample_s)
            reader.cancel()
            await pc.close()
    finally:
        await server.stop()
    return {
        "kind": "adapt-run",
        "source": f"{args.width}x{args.height}@{args.fps:g}",
        "budget_ms": round(1000 / args.fps, 3),
        "events": events,
        "rows": rows,
        "log": str(server.log_path),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m stream bench --adapt", description=__doc__)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=360)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--switch-at", type=float, default=40.0, help="to the hq model, seconds in")
    p.add_argument("--back-at", type=float, default=80.0, help="back to the default model")
    p.add_argument("--sample-s", type=float, default=0.5)
    p.add_argument("--out", default="artifacts/adapt", help="folder for the JSON and the plot")
    p.add_argument("--workdir", help="the server's config and log (default: a temp folder)")
    args = p.parse_args(argv)
    result = asyncio.run(run(args))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "adapt-run.json"
    path.write_text(json.dumps(result, indent=1))
    from ..plots import plot_result

    for png in plot_result(result, out):
        print(png)
    print(path)
    return 0
