"""One soak run: start (or reach) a server, hold viewers on it, inject faults, poll its figures.

Without `url` it starts `python -m stream serve --config <serve_config>` itself on a free
loopback port (server.py). Every `sample_s` the server's /api/stats (its `process` section:
RSS, fds, GPU memory, open peer connections, queue depths) and /metrics are read. What the
run saw is judged by verdict.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import Any

import aiohttp

from ...auth import Role, TokenAuthority
from ...sources import marker
from . import av
from .browser import browser_viewer
from .faults import FAULTS, leave
from .publisher import Publisher
from .records import Fault, FrameRow, Poll, poll_from
from .server import LocalServer, proc_figures
from .settings import SoakSettings
from .viewer import DecodeErrors, Viewer

log = logging.getLogger("stream.soak")


class Soak:
    def __init__(
        self, opts: SoakSettings, *, leak: bool = False, workdir: Path | None = None
    ) -> None:
        self.opts = opts
        self.leak = leak
        self.workdir = workdir or Path(opts.report).parent
        self.t0 = 0.0
        self.base = ""
        self.http: aiohttp.ClientSession | None = None
        self.server: LocalServer | None = None
        self.viewers: list[Viewer] = []  # every viewer, present and gone
        self.frames: list[FrameRow] = []
        self.polls: list[Poll] = []
        self.faults: list[Fault] = []
        self.requests: list[dict[str, Any]] = []  # the malformed bursts' answers
        self.browser: list[dict[str, Any]] = []
        self.av: av.AvWatch | None = None  # the beep/flash viewer (a server with beep audio)
        self.publisher: Publisher | None = None
        self.health: dict[str, Any] = {}
        self.decode_errors = DecodeErrors()
        self.leaves = 0
        self.bad_polls = 0
        self.lags: list[tuple[float, float]] = []  # (t, s) when the loop woke late
        self.stop = asyncio.Event()  # set: end the run now and judge what was seen
        self.stopped_by = ""
        self.admin = ""  # the token polls use
        self.error = ""
        self.authority: TokenAuthority | None = None  # mints tokens for a server started here
        self._serial = 0
        self._hint: dict[int, float | None] = {}

    # clocks
    def now(self) -> float:
        return time.time() - self.t0

    def rel(self, t_wall: float) -> float:
        return t_wall - self.t0

    def absolute(self, location: str) -> str:
        return location if location.startswith("http") else self.base + location

    def marker_hint(self, height: int) -> float | None:
        """The marker's block size in frames of this height (the source's, scaled)."""
        if height not in self._hint:
            src_h = int(self.health.get("source", {}).get("height") or 0)
            self._hint[height] = marker.block_size(src_h) * height / src_h if src_h else None
        return self._hint[height]

    def token(self, role: Role) -> str:
        """A token of `role` for this soak's server: minted per call (one per viewer, so each
        has its own rate limit), or the admin token given for a server at --url."""
        if self.authority is not None:
            return self.authority.mint(role, self.opts.duration_s + 3600)
        return self.opts.token

    def headers(self, token: str, **more: str) -> dict[str, str]:
        return {**more, "Authorization": f"Bearer {token}"} if token else dict(more)

    @property
    def client(self) -> aiohttp.ClientSession:
        """The HTTP session to the server (open while the run runs)."""
        if self.http is None:
            raise RuntimeError("the soak is not running")
        return self.http

    @property
    def present(self) -> list[Viewer]:
        return [v for v in self.viewers if v.left is None]

    # -- lifecycle -------------------------------------------------------------------------

    async def run(self) -> None:
        """Run until `duration_s` or `stop`; whatever happens, the figures stay for the
        verdict and `error` says what went wrong."""
        opts = self.opts
        self.workdir.mkdir(parents=True, exist_ok=True)
        aiortc_log = logging.getLogger("aiortc.rtcrtpreceiver")
        aiortc_log.addHandler(self.decode_errors)
        try:
            if opts.url:
                self.base = opts.url.rstrip("/")
            else:
                self.server = LocalServer(opts.serve_config, self.workdir, leak=self.leak)
                await self.server.start()
                self.base = self.server.url
                self.authority = TokenAuthority.from_file(self.server.secret_file)
            self.admin = self.token(Role.ADMIN)
            self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
            try:
                async with self.http.get(self.base + "/healthz") as r:
                    self.health = await r.json()
                self.t0 = time.time()
                await self._body()
            except Exception as e:
                log.exception("soak failed")
                self.error = f"{type(e).__name__}: {e}"
            finally:
                await self._teardown()
        except Exception as e:  # noqa: BLE001 - the server did not start
            self.error = f"{type(e).__name__}: {e}"
            log.error("%s", self.error)
        finally:
            aiortc_log.removeHandler(self.decode_errors)
            if self.server is not None:
                rc = await self.server.stop()
                log.info("server stopped (exit code %s)", rc)

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
            await self.join()
            if k + 1 < opts.viewers:
                await asyncio.sleep(0.2)
        tasks = [asyncio.ensure_future(self._poller()), asyncio.ensure_future(self._lag_watch())]
        if opts.churn_s > 0 and "leave" in opts.faults:
            tasks.append(asyncio.ensure_future(self._churn()))
        if opts.fault_every_s > 0 and set(opts.faults) - {"leave"}:
            tasks.append(asyncio.ensure_future(self._fault_loop()))
        if opts.browser:
            tasks.append(asyncio.ensure_future(browser_viewer(self)))
        self.av = av.start(self)
        if self.av is not None:
            tasks.append(asyncio.ensure_future(av.watch(self, self.av)))
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
            with contextlib.suppress(Exception):  # a poll after the end is a bonus
                await self.poll(final=True)
            await self.http.close()

    async def join(self) -> Viewer:
        self._serial += 1
        v = Viewer(self, f"v{self._serial}", self.token(Role.PLAYER))
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
        t = round(self.now(), 3)
        t_req = time.perf_counter()
        try:
            auth = self.headers(self.admin)
            async with self.client.get(self.base + "/api/stats", headers=auth) as r:
                stats = await r.json()
            api_ms = round((time.perf_counter() - t_req) * 1000, 3)
            async with self.client.get(self.base + "/metrics", headers=auth) as r:
                text = await r.text()
        except Exception as e:  # noqa: BLE001 - a missed poll is recorded, not fatal
            self.bad_polls += 1
            self.polls.append(Poll(t, error=f"{type(e).__name__}: {e}"))
            return
        proc = dict(stats.get("process") or {})
        if self.server is not None and self.server.pid:
            for k, v in proc_figures(self.server.pid).items():
                if proc.get(k) is None:
                    proc[k] = v
        row = poll_from(t, {**stats, "process": proc}, prometheus_samples(text), api_ms)
        row.final = final
        self.polls.append(row)

    # -- faults ----------------------------------------------------------------------------

    def layer_kbps(self) -> list[float]:
        """The main VP8 encode's rates of layers <= k, from the newest poll that has them."""
        for p in reversed(self.polls):
            for e in p.encoders:
                if e.get("stream") == "main" and e.get("codec") == "vp8" and e.get("layer_kbps"):
                    return list(e["layer_kbps"])
        return []

    def target(self) -> Viewer | None:
        """The present viewer that has gone longest without a fault (and has frames)."""
        now = self.now()
        busy = {f.viewer for f in self.faults if f.viewer and f.t1 + self.opts.grace_s > now}
        cands = [v for v in self.present if v.name not in busy and v.first_frame is not None]
        if not cands:
            return None
        last = {
            v.name: max((f.t0 for f in self.faults if f.viewer == v.name), default=-1.0)
            for v in cands
        }
        return min(cands, key=lambda v: (last[v.name], v.joined))

    async def _churn(self) -> None:
        while True:
            await asyncio.sleep(self.opts.churn_s)
            fault = await leave(self)
            if fault is not None:
                self.faults.append(fault)

    async def _fault_loop(self) -> None:
        opts = self.opts
        kinds = [f for f in opts.faults if f != "leave"]
        if self.publisher is None and "publisher" in kinds:
            kinds.remove("publisher")
            skipped = "the server's source is not webrtc"
            self.faults.append(Fault("publisher", None, 0.0, 0.0, skipped=skipped))
        if not kinds:
            return
        await asyncio.sleep(max(0.0, opts.warmup_s + opts.fault_every_s / 2 - self.now()))
        k = 0
        while True:
            kind = kinds[k % len(kinds)]
            k += 1
            try:
                fault = await FAULTS[kind](self)
                if fault is not None:
                    self.faults.append(fault)
            except Exception:
                log.exception("fault %s failed", kind)
            await asyncio.sleep(opts.fault_every_s)


def prometheus_samples(text: str) -> dict[str, float]:
    """framesmith_* and process_* samples of the Prometheus text, without histogram
    buckets."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, float] = {}
    with contextlib.suppress(ValueError):  # a half-written scrape: what parsed is kept
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                if s.name.endswith("_bucket") or s.name.endswith("_created"):
                    continue
                if not s.name.startswith(("framesmith_", "process_")):
                    continue
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out
