"""`x11:DISPLAY`: an X display (a game under Xvfb, or a desktop) captured at the source rate.

Capture is XShm (xshm.py) in a worker thread (the ctypes calls and swscale release the GIL,
so the event loop keeps running). By default a grab follows each change of the screen
(xdamage.py: DAMAGE), at most `fps` times a second and at least MIN_FPS times (a static screen
still feeds keyframes to new viewers); `on_change=False`, or a server without DAMAGE, grabs on
a fixed tick of the wall clock like the test scene. For HURRY_S after a player's input lands
in the display (stream/input/landing.py), damage is grabbed at once, not held back by the rate
cap: the frame showing a click no longer waits out the interval after a frame the game drew
just before it (an animated screen damages all the time). The time a grab took goes into the frame's
stages as `capture`, and the frame's birth time is the moment the grab started, so "injection
-> capture" of click-to-photon is measured from it.

The display may come and go (a game's Xvfb restarted, a desktop session ended): the source
then shows a slate naming the display, says so once in the log, and retries with a backoff
from 0.5 s up to 10 s; the first grab after a reconnect is live again. A display that
changes size (RandR) is followed frame by frame; the pipeline and encoders re-plan for the
new size on their own.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import av

from ..input import landing
from .base import Source, SourceState
from .marker import with_marker
from .scene import slate
from .xdamage import DamageWatch
from .xshm import XCaptureError, XServerLost, XShmCapture

log = logging.getLogger(__name__)

T = TypeVar("T")


def display_of(uri: str) -> str:
    """`x11::1` -> ":1"; `x11` -> $DISPLAY (an error when it is not set)."""
    name = uri[len("x11:") :] if uri.startswith("x11:") else ""
    name = name or os.environ.get("DISPLAY", "")
    if not name:
        raise ValueError("source x11 needs a display: --source x11::1, or set $DISPLAY")
    return name


class X11Source(Source):
    """Frames of one X display; a slate while it cannot be reached."""

    kind = "x11"
    SLATE_FPS = 5.0
    MIN_FPS = 5.0  # grab-on-change: a static screen still gets this many frames a second
    RETRY_FIRST_S = 0.5
    RETRY_MAX_S = 10.0
    HURRY_S = 0.25  # after input lands: damage grabbed at once (no rate cap) for this long

    def __init__(
        self,
        display: str,
        width: int = 640,
        height: int = 360,
        fps: float = 30.0,
        stamp_marker: bool = False,
        on_change: bool = True,
    ) -> None:
        super().__init__()
        self.display = display
        self.slate_size = (width, height)
        self.fps = fps
        self.stamp_marker = stamp_marker
        self.on_change = on_change
        self.cap: XShmCapture | None = None
        self.watch: DamageWatch | None = None
        self.grab_mode = "on change" if on_change else "tick"
        self._x = threading.Lock()  # one X call at a time: a worker's grab or wait, or close
        self.lost = 0  # times the X server went away
        self.grab_errors = 0
        self.capture_ms: deque[float] = deque(maxlen=300)  # wall time of each grab
        self.capture_cpu_ms: deque[float] = deque(maxlen=300)  # CPU time of each grab
        self._retry_s = self.RETRY_FIRST_S
        self._retry_at = 0.0
        self._landed: asyncio.Event | None = None  # set when input lands (frames() makes it)
        # its own thread for the damage wait and the grab: in the shared default executor
        # they queued behind other work (encoders, file reads), and a click's grab came late
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"x11 {display}")
        self.hurried = 0  # grabs taken at once after input, inside the rate cap's interval

    def info(self) -> dict[str, Any]:
        def mean(v: deque[float]) -> float | None:
            return round(sum(v) / len(v), 3) if v else None

        cpu = mean(self.capture_cpu_ms)
        return {
            **super().info(),
            "display": self.display,
            "grab": self.grab_mode,
            "shm": self.cap.use_shm if self.cap is not None else None,
            "resizes": self.cap.resizes if self.cap is not None else 0,
            "lost": self.lost,
            "grab_errors": self.grab_errors,
            "hurried": self.hurried,
            "capture_ms_mean": mean(self.capture_ms),
            "capture_cpu_ms_mean": cpu,
            # CPU seconds per second spent capturing at the source rate (1.0 = a whole core)
            "capture_cpu_share": round(cpu * self.fps / 1000, 4) if cpu is not None else None,
        }

    def _grab(self, cap: XShmCapture) -> tuple[av.VideoFrame, float, float, float]:
        with self._x:
            t_wall = time.time()
            t0, c0 = time.perf_counter(), time.thread_time()
            frame = cap.grab_frame()
            ms, cpu_ms = (time.perf_counter() - t0) * 1000, (time.thread_time() - c0) * 1000
        return frame, t_wall, ms, cpu_ms

    def _wait_change(self, watch: DamageWatch, timeout_s: float) -> bool:
        with self._x:
            return watch.wait(timeout_s)

    def _open(self) -> tuple[XShmCapture, DamageWatch | None]:
        cap = XShmCapture(self.display)
        watch = None
        if self.on_change:
            try:
                watch = DamageWatch(self.display)
            except XServerLost as e:
                log.warning("x11 source: %s; grabbing on a fixed tick instead", e)
        return cap, watch

    async def _connect(self) -> bool:
        try:
            cap, self.watch = await asyncio.to_thread(self._open)
        except (XServerLost, XCaptureError) as e:
            self._unreachable(str(e))
            return False
        self.cap = cap
        self.grab_mode = "on change" if self.watch is not None else "tick"
        log.info(
            "x11 source: capturing %s at %dx%d, %s (%s)",
            self.display,
            cap.width,
            cap.height,
            f"on change, {self.MIN_FPS:g}-{self.fps:g} fps" if self.watch else f"{self.fps:g} fps",
            "MIT-SHM" if cap.use_shm else "XGetImage: no shared memory with the server",
        )
        self.state, self.error = SourceState.LIVE, ""
        self._retry_s = self.RETRY_FIRST_S
        return True

    def _unreachable(self, why: str) -> None:
        message = f"{why}; showing a slate, next try in {self._retry_s:g} s"
        if self.state is not SourceState.ERROR:
            log.warning("x11 source: %s", message)
        self.fail(message)
        self._retry_at = time.monotonic() + self._retry_s
        self._retry_s = min(self._retry_s * 2, self.RETRY_MAX_S)

    async def _release(self) -> None:
        cap, watch, self.cap, self.watch = self.cap, self.watch, None, None

        def close() -> None:
            with self._x:  # after a grab or wait in flight
                if cap is not None:
                    cap.close()
                if watch is not None:
                    watch.close()

        await asyncio.to_thread(close)

    async def _drop(self, why: str) -> None:
        await self._release()
        self._unreachable(why)

    async def _pace(self, k: int, t0: float, last: float) -> int:
        """Wait for the next grab: the next change (at most `fps`, at least MIN_FPS a
        second), or the next tick. Returns the tick count."""
        period = 1.0 / self.fps
        watch = self.watch
        if watch is not None:
            keepalive = last + 1.0 / self.MIN_FPS - time.monotonic()
            await self._in_thread(self._wait_change, watch, max(0.0, keepalive))
            gap = last + period - time.monotonic()
            if gap > 0:
                await self._hold(gap)
            return k + 1
        return await self._tick(t0, k, period) + 1

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def _hold(self, gap: float) -> None:
        """The rate cap's wait, cut short by a player's input: at once within HURRY_S of
        the last input, and when input lands while it waits."""
        landed = self._landed
        if landed is not None:
            landed.clear()
        if time.monotonic() - landing.last(self.display) < self.HURRY_S:
            self.hurried += 1
            return
        if landed is None:
            await asyncio.sleep(gap)
            return
        try:
            await asyncio.wait_for(landed.wait(), gap)
            self.hurried += 1
        except TimeoutError:
            pass

    async def frames(self) -> AsyncIterator[av.VideoFrame]:
        loop = asyncio.get_running_loop()
        landed = self._landed = asyncio.Event()

        def tell() -> None:  # on the injecting thread
            loop.call_soon_threadsafe(landed.set)

        stop = landing.listen(self.display, tell)
        try:
            async for frame in self._frames():
                yield frame
        finally:
            stop()

    async def _frames(self) -> AsyncIterator[av.VideoFrame]:
        n = 0
        k, t0, last = 0, time.monotonic(), 0.0
        while True:
            if self.cap is None:
                if time.monotonic() >= self._retry_at and await self._connect():
                    k, t0 = 0, time.monotonic()
                else:
                    w, h = (self.width, self.height) if self.width else self.slate_size
                    text = f"NO DISPLAY {self.display}"
                    yield self.stamp(await asyncio.to_thread(slate, w, h, text, n), n)
                    n += 1
                    await asyncio.sleep(1.0 / self.SLATE_FPS)
                    continue
            try:
                k = await self._pace(k, t0, last)
                cap = self.cap
                if cap is None:
                    continue
                size = (cap.width, cap.height)
                last = time.monotonic()
                frame, t_grab, ms, cpu_ms = await self._in_thread(self._grab, cap)
            except XServerLost as e:
                self.lost += 1
                await self._drop(str(e))
                continue
            except XCaptureError as e:  # e.g. the grab raced a resize: the next tick retries
                self.grab_errors += 1
                log.info("x11 source: %s; retrying on the next frame", e)
                continue
            if (cap.width, cap.height) != size:
                log.info("x11 source: %s is now %dx%d", self.display, cap.width, cap.height)
            self.capture_ms.append(ms)
            self.capture_cpu_ms.append(cpu_ms)
            if self.stamp_marker:
                frame = with_marker(frame, n)
            self.stamp(frame, n)
            meta = self.meta(frame.pts)
            if meta is not None:
                meta.t_src = t_grab  # born when the grab started
                meta.stages["capture"] = ms
            n += 1
            yield frame

    async def close(self) -> None:
        await self._release()
        self._thread.shutdown(wait=False)
