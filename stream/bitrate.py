"""The shared encoders' bitrate, from their viewers' links, and each viewer's layer.

Twice a second: every viewer's link picks its temporal layer from its estimate and the
encoder's per-layer rates (webrtc/link.py, webrtc/layers.py); then each encoder's target
is the controlling player's estimate when a player controls (the one whose picture matters
most, as Sunshine and Selkies serve one player), else a percentile of its viewers' estimates
(75th by default: most viewers get the whole stream, the slowest quarter fewer layers),
within [bandwidth.min_bitrate, encoder.bitrate] (an encode that also feeds a push sink
keeps encoder.bitrate: an ingest expects a steady rate; its viewers have the layers).

A link's estimate is what its viewer's RTCP says, and any viewer can forge RTCP (a receiver
report of 100% loss, a tiny REMB); any player can take control. So with two links or more,
the target is never below the second-lowest estimate (a link yet to report counts at its
start rate): one link alone, the controller's included, does not lower the encode the others
get. The slowest viewer then gets fewer temporal layers (VP8) or loses packets and resumes at
keyframes (H.264), as a viewer slower than the percentile always has; a controlling player
slower than every spectator gets what the spectators' links take.

The rate moves only when the target is 20% away, down at most every 4 s and up every 10 s:
a VP8 change reopens libvpx (a keyframe for everyone, see SharedEncoder.set_bitrate). One log
line per change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .config import BandwidthConfig
from .encode import PacketTrack, SharedEncoder
from .webrtc.link import ViewerLink

log = logging.getLogger(__name__)

TICK_S = 0.5
MOVE_AT = 0.2  # fraction of the current bitrate a target must differ by
DOWN_EVERY_S = 4.0
UP_EVERY_S = 10.0


def percentile(values: list[float], p: float) -> float:
    """Nearest rank: the smallest value at or above p% of them."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def one_link_floor(rates: list[float]) -> float:
    """The lowest target the others allow: with two links or more, the second-lowest estimate
    (no single viewer's reports decide the rate of the rest)."""
    return sorted(rates)[1] if len(rates) >= 2 else 0.0


@dataclass
class EncoderTarget:
    target: float = 0.0
    reason: str = "no viewer reports yet"
    last_change: float = -math.inf
    history: list[tuple[float, int]] = field(default_factory=list)


class BitratePolicy:
    def __init__(
        self,
        cfg: BandwidthConfig,
        encoders: Callable[[], dict[tuple[str, str], SharedEncoder]],
        viewers: Callable[[], list[tuple[str, PacketTrack]]],
        controller: Callable[[], str | None],
    ) -> None:
        self.cfg = cfg
        self.encoders = encoders
        self.viewers = viewers
        self.controller = controller
        self.targets: dict[tuple[str, str], EncoderTarget] = {}
        self._layers: dict[int, int] = {}  # id(link) -> last layer logged
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.cfg.enabled and self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            try:
                self.tick(time.monotonic())
            except Exception:
                log.exception("bandwidth policy failed; next tick in %.0f s", TICK_S)

    def tick(self, now: float) -> None:
        by_encoder: dict[int, list[tuple[str, ViewerLink]]] = {}
        for sid, track in self.viewers():
            link = track.link
            if not isinstance(link, ViewerLink):
                continue
            link.tick(track.encoder.layer_bps(), now)
            self._log_layer(sid, link)
            by_encoder.setdefault(id(track.encoder), []).append((sid, link))
        for key, enc in self.encoders().items():
            links = by_encoder.get(id(enc), [])
            if links:
                self._steer(key, enc, links, now)

    def _log_layer(self, sid: str, link: ViewerLink) -> None:
        sel = link.selector
        if sel is None or self._layers.get(id(link)) == sel.target:
            return
        if id(link) in self._layers:
            log.info(
                "viewer %s: temporal layers 0-%d (%s; estimate %.0f kbit/s)",
                sid[:8],
                sel.target,
                sel.reason,
                link.estimate.rate / 1000,
            )
        self._layers[id(link)] = sel.target

    def _steer(
        self,
        key: tuple[str, str],
        enc: SharedEncoder,
        links: list[tuple[str, ViewerLink]],
        now: float,
    ) -> None:
        state = self.targets.setdefault(key, EncoderTarget())
        reported = [(sid, link) for sid, link in links if link.estimate.reports]
        if not reported:
            return
        controller = self.controller()
        mine = [link for sid, link in reported if sid == controller]
        if any(not isinstance(sub, PacketTrack) for sub in enc.subscribers):
            target, reason = float(enc.max_bitrate), "a push sink takes this encode at its bitrate"
        elif mine:
            target, reason = mine[0].estimate.rate, "the controlling player's link"
        else:
            rates = [link.estimate.rate for _, link in reported]
            target = percentile(rates, self.cfg.percentile)
            reason = f"p{self.cfg.percentile:g} of {len(rates)} viewer link(s)"
        # over every link: one that has not reported yet stands at its start (the encode's
        # rate when it joined), so a lone early reporter does not speak for it
        floor = one_link_floor([link.estimate.rate for _, link in links])
        if target < floor:
            target, reason = floor, "the second-lowest link: one link alone does not lower it"
        target = min(enc.max_bitrate, max(self.cfg.min_bitrate, target))
        state.target, state.reason = target, reason
        current = enc.bitrate
        if abs(target - current) < MOVE_AT * current:
            return
        wait = DOWN_EVERY_S if target < current else UP_EVERY_S
        if now - state.last_change < wait:
            return
        state.last_change = now
        state.history.append((round(now, 3), int(target)))
        del state.history[:-100]
        log.info(
            "bitrate: %s %s %.0f -> %.0f kbit/s (%s)",
            key[0],
            key[1],
            current / 1000,
            target / 1000,
            reason,
        )
        enc.set_bitrate(int(target))

    def state(self) -> dict[str, Any]:
        now = time.monotonic()
        encoders = {}
        for (stream, codec), enc in self.encoders().items():
            t = self.targets.get((stream, codec))
            encoders[f"{stream}/{codec}"] = {
                "bitrate": enc.bitrate,
                "max_bitrate": enc.max_bitrate,
                "target": None if t is None else int(t.target),
                "reason": "no viewer reports yet" if t is None else t.reason,
                "changes": enc.bitrate_changes,
                "layers": 3 if enc.layered else 1,
            }
        viewers: dict[str, Any] = {}
        for sid, track in self.viewers():
            if isinstance(track.link, ViewerLink):
                name = sid if sid not in viewers else f"{sid}:{track.encoder.name}"
                viewers[name] = track.link.state(now)
        return {"enabled": self.cfg.enabled, "encoders": encoders, "viewers": viewers}
