"""Helpers for the interop tests (real clients the project did not write): frames received
with their arrival time and marker, latency against a reference clock, and the figures each
test prints (and appends to `interop.jsonl` in the artifacts folder, for docs/interop.md).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from stream.sources import marker
from stream.sources.frames import planes_of


@dataclass
class Received:
    t: float  # time.time() when the decoded frame arrived
    width: int
    height: int
    n: int | None  # the frame marker, when it reads


async def receive(track, seconds: float, hint: float | None = None) -> list[Received]:
    """Every frame an aiortc track delivers for `seconds` (a stall ends it after 10 s)."""
    out: list[Received] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            frame = await asyncio.wait_for(track.recv(), min(left, 10.0))
        except TimeoutError:
            if left > 10.0:
                break  # stalled
            continue
        except Exception:  # noqa: BLE001 - the track ended (MediaStreamError)
            break
        now = time.time()
        n = marker.read(planes_of(frame)[0], hint)
        out.append(Received(now, frame.width, frame.height, n))
    return out


def read_times(path: Path) -> dict[int, float]:
    """A publisher's "n unix_time" lines."""
    sent: dict[int, float] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2:
                sent[int(parts[0])] = float(parts[1])
    return sent


@dataclass
class Figures:
    client: str
    direction: str
    codec: str
    frames: int  # frames at the expected output size
    seconds: float  # from the first to the last of them
    fps: float
    size: str
    markers_read: int
    latency_median_ms: float | None
    latency_p95_ms: float | None
    max_gap_s: float  # longest wait between two frames at that size
    note: str = ""


def figures(
    client: str,
    direction: str,
    codec: str,
    got: list[Received],
    size: tuple[int, int],
    reference: dict[int, float] | None = None,
    note: str = "",
) -> Figures:
    at = [r for r in got if (r.width, r.height) == size]
    span = at[-1].t - at[0].t if len(at) > 1 else 0.0
    gaps = [b.t - a.t for a, b in zip(at, at[1:], strict=False)]
    lat = sorted(
        (r.t - reference[r.n]) * 1000
        for r in at
        if reference and r.n is not None and r.n in reference
    )
    return Figures(
        client,
        direction,
        codec,
        len(at),
        round(span, 2),
        round((len(at) - 1) / span, 1) if span > 0 else 0.0,
        f"{size[0]}x{size[1]}",
        sum(r.n is not None for r in at),
        round(statistics.median(lat), 1) if lat else None,
        round(lat[int(0.95 * (len(lat) - 1))], 1) if lat else None,
        round(max(gaps), 2) if gaps else 0.0,
        note,
    )


def report(fig: Figures, artifacts: Path) -> None:
    line = json.dumps(asdict(fig))
    print(f"INTEROP {line}")
    with (artifacts / "interop.jsonl").open("a") as f:
        f.write(line + "\n")


def server_ms(messages: list) -> float | None:
    """Median time from the source's stamp to the packet leaving the server, from an aiortc
    viewer's data channel: the server's share of a latency measured from that stamp."""
    spans = []
    for m in messages:
        data = json.loads(m)
        if data.get("type") == "frame":
            spans.append(data["server_ms"])
    return round(statistics.median(spans), 1) if spans else None
