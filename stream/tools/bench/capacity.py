"""`python -m stream bench-capacity`: how many rooms one process holds (issue 31).

For each source size, mode and room count N, one `serve` child runs N testsrc rooms
([[rooms]] r0..rN-1, every room at that size and rate) with one aiortc WHEP viewer per room.
After a warm-up, the frames each viewer decodes over `--seconds` give the fps each room
delivered; the child's CPU time over the same window (/proc/PID/stat utime+stime) divided by
the frames delivered gives the CPU milliseconds a room's frame costs. That figure holds under
load, where fps does not: lavapipe runs the "GPU" on the same CPUs, so the per-frame CPU time
is the capacity figure that carries over to a quiet machine (cores x 1000 / (ms x fps) rooms).

Adaptation is off ([adapt] enabled = false) and the compare split off, so the CNN's cost is
the model at full input size per frame, not whatever scale the controller settled on.
The JSON (kind "capacity-bench") has one row per size, mode and N; `--plot` draws per-room fps
and per-frame CPU ms against N beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from ...auth import Role, TokenAuthority
from ...config import read_toml, write_toml
from ..soak.server import LocalServer

log = logging.getLogger(__name__)

DEFAULT_SERVE_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "serve.toml"
_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (its threads included), from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14, 15)


def rooms_serve_config(
    base: dict[str, Any], size: tuple[int, int], fps: float, mode: str, rooms: int
) -> dict[str, Any]:
    """The serve config of one run: N testsrc rooms at `size`, no adaptation, no compare."""
    data = json.loads(json.dumps(base))  # a deep copy of plain TOML data
    data.setdefault("source", {}).update(
        {"uri": "testsrc", "width": size[0], "height": size[1], "fps": fps}
    )
    data.setdefault("model", {}).update({"mode": mode, "compare": False, "extra": []})
    data.setdefault("adapt", {})["enabled"] = False
    data["rooms"] = [
        {"name": f"r{i}", "source": "testsrc", "width": size[0], "height": size[1], "fps": fps}
        for i in range(rooms)
    ]
    return data


class _Viewer:
    """One aiortc WHEP viewer that counts the frames it decodes, with their times."""

    def __init__(self, room: str) -> None:
        self.room = room
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.times: list[float] = []
        self.size: tuple[int, int] | None = None
        self._task: asyncio.Task[None] | None = None

    async def connect(self, http: aiohttp.ClientSession, base: str, token: str) -> None:
        got: asyncio.Future[Any] = asyncio.get_running_loop().create_future()

        @self.pc.on("track")
        def _on(track: Any) -> None:
            if not got.done():
                got.set_result(track)

        self.pc.addTransceiver("video", direction="recvonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        headers = {"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"}
        url = f"{base}/rooms/{self.room}/whep"
        async with http.post(url, data=self.pc.localDescription.sdp, headers=headers) as r:
            body = await r.text()
            if r.status != 201:
                raise RuntimeError(f"WHEP {url}: {r.status} {body[:200]}")
        await self.pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
        track = await asyncio.wait_for(got, 30)
        self._task = asyncio.create_task(self._read(track))

    async def _read(self, track: Any) -> None:
        with contextlib.suppress(Exception):  # the track ends when the peer closes
            while True:
                frame = await track.recv()
                self.times.append(time.monotonic())
                self.size = (frame.width, frame.height)

    def frames_between(self, t0: float, t1: float) -> int:
        return sum(1 for t in self.times if t0 <= t < t1)

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
        await self.pc.close()


async def measure_rooms(
    size: tuple[int, int],
    mode: str,
    rooms: int,
    *,
    fps: float,
    seconds: float,
    warmup: float,
    workdir: Path,
    serve_config: Path = DEFAULT_SERVE_CONFIG,
    first_s: float = 180.0,
) -> dict[str, Any]:
    """One process with `rooms` rooms, one viewer each: fps per room and CPU ms per frame."""
    workdir.mkdir(parents=True, exist_ok=True)
    base = read_toml(serve_config) if serve_config.is_file() else {}
    cfg = write_toml(rooms_serve_config(base, size, fps, mode, rooms), workdir / "rooms.toml")
    server = LocalServer(serve_config=str(cfg), workdir=workdir)
    row: dict[str, Any] = {"size": f"{size[0]}x{size[1]}", "mode": mode, "rooms": rooms}
    viewers = [_Viewer(f"r{i}") for i in range(rooms)]
    await server.start()
    try:
        token = TokenAuthority.from_file(server.secret_file).mint(Role.ADMIN, 3600)
        async with aiohttp.ClientSession() as http:
            for v in viewers:
                await v.connect(http, server.url, token)
            # every room's first frame (its pipelines built, on a loaded lavapipe that takes
            # tens of seconds for N CNN rooms), then the warm-up
            # and, for the CNN, its compile done: until then the room serves the fallback
            # scaler (stream/preparing.py), which is not the cost being measured
            t_join = time.monotonic()
            while time.monotonic() - t_join < first_s:
                running = await _running_modes(http, server.url, token)
                if all(v.times for v in viewers) and all(m == mode for m in running):
                    break
                await asyncio.sleep(1.0)
            row["first_frame_s"] = round(time.monotonic() - t_join, 1)
            await asyncio.sleep(warmup)
            assert server.pid is not None
            t0, c0 = time.monotonic(), cpu_seconds(server.pid)
            await asyncio.sleep(seconds)
            t1, c1 = time.monotonic(), cpu_seconds(server.pid)
            async with http.get(
                server.url + "/api/rooms", headers={"Authorization": f"Bearer {token}"}
            ) as r:
                listing = await r.json() if r.status == 200 else None
            row["running_modes"] = await _running_modes(http, server.url, token)
        counts = [v.frames_between(t0, t1) for v in viewers]
        per_room = [c / (t1 - t0) for c in counts]
        total = sum(counts)
        row.update(
            {
                "source_fps": fps,
                "seconds": round(t1 - t0, 2),
                "fps_per_room": [round(x, 2) for x in per_room],
                "fps_min": round(min(per_room), 2),
                "fps_mean": round(sum(per_room) / rooms, 2),
                "output": list(viewers[0].size) if viewers[0].size else None,
                "cpu_s": round(c1 - c0, 3),
                "cpu_ms_per_frame": round(1000 * (c1 - c0) / total, 2) if total else None,
                "cpu_cores_busy": round((c1 - c0) / (t1 - t0), 2),
                "api_rooms": listing,
            }
        )
    finally:
        for v in viewers:
            await v.close()
        await server.stop()
    return row


async def _running_modes(http: aiohttp.ClientSession, url: str, token: str) -> list[str]:
    async with http.get(url + "/api/rooms", headers={"Authorization": f"Bearer {token}"}) as r:
        listing = await r.json() if r.status == 200 else {"rooms": []}
    return [room.get("running_mode", "") for room in listing["rooms"]]


def plot(result: dict[str, Any], png: Path) -> Path:
    """Per-room fps and CPU ms per frame against the room count, one line per size and mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    series: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in result["rows"]:
        series.setdefault((row["size"], row["mode"]), []).append(row)
    for (size, mode), rows in series.items():
        ns = [r["rooms"] for r in rows]
        ax1.plot(ns, [r.get("fps_min") for r in rows], marker="o", label=f"{size} {mode}")
        ax2.plot(ns, [r.get("cpu_ms_per_frame") for r in rows], marker="o")
    ax1.axhline(result["source_fps"], color="grey", linestyle=":")
    ax1.set(xlabel="rooms in the process", ylabel="fps of the slowest room", ylim=(0, None))
    ax2.set(xlabel="rooms in the process", ylabel="process CPU ms per delivered frame (log)")
    ax2.set_yscale("log")
    ax1.legend(fontsize=7)
    load = result.get("loadavg_1m")
    fig.suptitle(
        f"Rooms per process, one viewer each (lavapipe, {os.cpu_count()} CPUs,"
        f" load average {load})",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return png


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from infer.tools.benchmark import parse_size

    rows = []
    loads = []
    with tempfile.TemporaryDirectory(prefix="capacity-") as tmp:
        for size_s in args.sizes:
            size = parse_size(size_s)
            for mode in args.modes:
                for n in args.rooms:
                    loads.append(os.getloadavg()[0])
                    work = Path(tmp) / f"{size_s}-{mode}-{n}"
                    try:
                        row = await measure_rooms(
                            size,
                            mode,
                            n,
                            fps=args.fps,
                            seconds=args.seconds,
                            warmup=args.warmup,
                            workdir=work,
                            serve_config=Path(args.serve_config),
                        )
                    except Exception as e:  # one failed run is a row, not the end
                        log.exception("%s %s N=%d failed", size_s, mode, n)
                        row = {"size": size_s, "mode": mode, "rooms": n, "error": str(e)}
                    row["loadavg_1m"] = round(loads[-1], 1)
                    print(json.dumps({k: v for k, v in row.items() if k != "api_rooms"}))
                    rows.append(row)
                    # after every row: a long run cut short still leaves what it measured
                    Path(args.json).write_text(json.dumps(_result(args, rows, loads), indent=2))
    return _result(args, rows, loads)


def _result(args: argparse.Namespace, rows: list[dict[str, Any]], loads: list[float]) -> dict:
    return {
        "kind": "capacity-bench",
        "source_fps": args.fps,
        "cpus": os.cpu_count(),
        "loadavg_1m": round(sum(loads) / len(loads), 1) if loads else None,
        "adapt": False,
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m stream bench-capacity", description=__doc__)
    p.add_argument("--sizes", nargs="+", default=["160x90", "320x180", "640x360"])
    p.add_argument("--modes", nargs="+", default=["bilinear", "model"])
    p.add_argument("--rooms", nargs="+", type=int, default=[1, 2, 4])
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--warmup", type=float, default=4.0)
    p.add_argument("--serve-config", default=str(DEFAULT_SERVE_CONFIG))
    p.add_argument("--json", default="capacity.json")
    p.add_argument("--plot", action="store_true")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    result = asyncio.run(run(args))
    Path(args.json).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json}")
    if args.plot:
        print(f"wrote {plot(result, Path(args.json).with_suffix('.png'))}")
    return 0
