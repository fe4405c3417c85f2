"""The viewer page in headless Firefox (Debian's firefox-esr, driven over Marionette with
marionette-driver: no geckodriver, no downloaded browser): the same page, plain ES modules,
plays the VP8 stream at the model's output size and measures glass-to-glass latency from the
frame marker. Screenshot and figures kept in the `artifacts` folder (tmp_path by default)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from stream.tools.soak.server import free_port

from .rtc import start_server, viewer_page_config

pytestmark = [pytest.mark.browser, pytest.mark.gpu]

FIREFOX = os.environ.get("FRAMESMITH_FIREFOX", "/usr/bin/firefox-esr")
PREFS = {
    "media.autoplay.default": 0,  # allow autoplay, as Chromium's --autoplay-policy does
    "media.autoplay.blocking_policy": 0,
    "media.peerconnection.ice.obfuscate_host_addresses": False,  # no mDNS host candidates
    "media.peerconnection.ice.loopback": True,  # the server is on this machine
    "browser.shell.checkDefaultBrowser": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "app.update.enabled": False,
}


@contextlib.contextmanager
def _pgid_without_preexec():
    """mozprocess starts Firefox with preexec_fn=setpgid: Python code run in the forked child
    of this many-threaded process (wgpu's pollers, the encoders' and X helpers' threads), which
    can deadlock on a lock another thread held at the fork (seen: a forked pytest child stuck
    on a futex for 15 min). Popen's process_group=0 does the same setpgid without Python in
    the child."""
    original = subprocess.Popen.__init__

    def init(self, *args, **kwargs):
        fn = kwargs.get("preexec_fn")
        if fn is not None and getattr(fn, "__name__", "") == "setpgidfn":
            kwargs["preexec_fn"], kwargs["process_group"] = None, 0
        original(self, *args, **kwargs)

    subprocess.Popen.__init__ = init
    try:
        yield
    finally:
        subprocess.Popen.__init__ = original


def _firefox(tmp: Path):
    marionette = pytest.importorskip("marionette_driver.marionette")
    if not shutil.which(FIREFOX) and not Path(FIREFOX).exists():
        pytest.skip(f"no Firefox at {FIREFOX} (apt-get install firefox-esr)")
    with _pgid_without_preexec():
        client = marionette.Marionette(
            host="127.0.0.1",
            port=free_port(),
            bin=FIREFOX,
            headless=True,
            prefs=PREFS,
            gecko_log=str(tmp / "gecko.log"),
            startup_timeout=90,
        )
    client.start_session()
    return client


def _page(client, expr: str):
    """Evaluate `expr` in the page (not the Xray sandbox: window.framesmith is the page's)."""
    return client.execute_script(
        f"const w = window.wrappedJSObject; return JSON.stringify(({expr}));"
    )


async def _wait(client, expr: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if json.loads(await asyncio.to_thread(_page, client, expr)):
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {expr}")


@pytest.mark.timeout(240)
async def test_viewer_page_plays_in_firefox(tmp_path, artifacts):
    srv = await start_server(viewer_page_config())
    # Marionette calls block: they run on a worker thread so the server keeps serving
    client = await asyncio.to_thread(_firefox, tmp_path)
    try:
        t0 = time.monotonic()
        await asyncio.to_thread(client.navigate, f"{srv.url}/?codec=vp8")
        video = "w.document.getElementById('main')"
        await _wait(client, f"{video}.videoWidth > 0 && {video}.currentTime > 0", 60)
        first_frame_s = time.monotonic() - t0
        size = json.loads(
            await asyncio.to_thread(_page, client, f"[{video}.videoWidth, {video}.videoHeight]")
        )
        assert size == [640, 360]
        await _wait(client, "w.framesmith.latencies.length >= 60", 90)
        await asyncio.sleep(1.5)  # one more overlay refresh
        stats = json.loads(await asyncio.to_thread(_page, client, "w.framesmith.stats"))
        overlay = json.loads(
            await asyncio.to_thread(_page, client, "w.document.getElementById('overlay').innerText")
        )
        png = await asyncio.to_thread(client.screenshot)
        (artifacts / "viewer-firefox.png").write_bytes(base64.b64decode(png))
        (artifacts / "viewer-firefox.json").write_text(
            json.dumps({"first_frame_s": first_frame_s, "stats": stats}, indent=1)
        )
        assert "glass-to-glass" in overlay and " ms median" in overlay, overlay
        assert stats["codec"].lower() == "vp8"
        assert 0 < stats["g2gMedian"] < 2000, stats
        assert stats["markersRead"] > 0.9 * (stats["markersRead"] + stats["markersMissed"])
        # the page says goodbye on pagehide (DELETE with keepalive), in Firefox too
        assert len(srv.service.sessions.viewers) == 1
        await asyncio.to_thread(client.navigate, "about:blank")
        deadline = time.monotonic() + 5
        while srv.service.sessions.viewers and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert not srv.service.sessions.viewers, "page left without DELETE"
        print(f"\nfirefox: first frame {first_frame_s:.2f} s; overlay:\n{overlay}")
    finally:
        await asyncio.to_thread(client.quit, in_app=False)
        await srv.close()
