"""One headless Chromium on the viewer page, as a soak viewer named "chromium".

Its own figures (the page's `window.framesmith`: stats and glass-to-glass latencies read from
the marker) are recorded every `sample_s`; its frames are reported, not judged.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import TYPE_CHECKING, Any

from ...auth import Role
from .records import FrameRow

if TYPE_CHECKING:
    from .runner import Soak

CHROMIUM = os.environ.get("FRAMESMITH_CHROMIUM", "/usr/bin/chromium")
FEATURES = "WebRtcHideLocalIpsWithMdns,Translate,MediaRouter,OptimizationHints"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
    f"--disable-features={FEATURES}",  # one switch: Chromium keeps only the last one
]


async def wait_js(page: Any, fn: str, arg: Any = None, timeout_s: float = 60.0) -> bool:
    """Poll the JS function `fn` (called with `arg`) until it returns something truthy; False
    after `timeout_s`. The viewer page's CSP forbids eval, which playwright's
    wait_for_function needs (its predicate then never runs); evaluate does not."""
    deadline = time.monotonic() + timeout_s
    while not await page.evaluate(fn, arg):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def browser_viewer(run: Soak) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = await browser.new_page()
            t0 = run.now()
            token = run.token(Role.PLAYER)
            await page.goto(f"{run.base}/?codec={run.opts.codec}#token={token}")
            seen = 0
            while True:
                await asyncio.sleep(run.opts.sample_s)
                got = await page.evaluate(
                    "() => window.framesmith ? {stats: window.framesmith.stats,"
                    " lat: window.framesmith.latencies.slice(-2000)} : null"
                )
                if not got:
                    continue
                t = run.now()
                run.browser.append(
                    {"t": round(t, 3), "joined": round(t0, 3), "stats": got.get("stats")}
                )
                lat = got.get("lat") or []
                new = lat[-max(0, len(lat) - seen) :] if seen < len(lat) else []
                seen = len(lat)
                for x in new:
                    run.frames.append(
                        FrameRow(t=round(t, 4), viewer="chromium", latency_ms=round(float(x), 3))
                    )
        finally:
            await browser.close()
