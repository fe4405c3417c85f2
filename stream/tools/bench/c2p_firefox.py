"""The click-to-photon bench's page in Firefox (`--browser firefox`): Debian's firefox-esr
driven over Marionette (marionette-driver, as tests/stream/test_viewer_firefox.py does), with
the few playwright page calls the bench makes (goto, evaluate, mouse.click, keyboard.press,
a bounding box, inner text, a screenshot) done through it.

Why not playwright: it drives only its own patched Firefox builds, not Debian's. Marionette
calls block, so each runs on a worker thread. Scripts run in Marionette's sandbox with the
page's own window and document (Xray waived), since the page's CSP forbids eval; an argument
is parsed by the page's JSON so the page can read it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from ..soak.server import free_port

FIREFOX = os.environ.get("FRAMESMITH_FIREFOX", "/usr/bin/firefox-esr")
PREFS = {
    "media.autoplay.default": 0,
    "media.autoplay.blocking_policy": 0,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    "media.peerconnection.ice.loopback": True,
    "browser.shell.checkDefaultBrowser": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "app.update.enabled": False,
}
# DOM codes the bench presses -> WebDriver key values
KEYS = {"KeyA": "a", "KeyS": "s", "KeyD": "d", "Space": " ", "Backspace": "\ue003"}

_CALL = """
const [src, argJson] = arguments;
const w = window.wrappedJSObject;
const arg = argJson === null ? undefined : w.JSON.parse(argJson);
const fn = new Function("window", "document", "return (" + src + ");")(w, w.document);
const out = fn(arg);
return out === undefined ? null : JSON.stringify(out);
"""


@contextlib.contextmanager
def _pgid_without_preexec() -> Iterator[None]:
    """mozprocess starts Firefox with preexec_fn=setpgid, Python run in the forked child of a
    many-threaded process (it can deadlock on a lock held at the fork); Popen's
    process_group=0 does the same setpgid without Python in the child."""
    original = subprocess.Popen.__init__

    def init(self: subprocess.Popen, *args: Any, **kwargs: Any) -> None:
        fn = kwargs.get("preexec_fn")
        if fn is not None and getattr(fn, "__name__", "") == "setpgidfn":
            kwargs["preexec_fn"], kwargs["process_group"] = None, 0
        original(self, *args, **kwargs)

    subprocess.Popen.__init__ = init  # type: ignore[method-assign]
    try:
        yield
    finally:
        subprocess.Popen.__init__ = original  # type: ignore[method-assign]


class _Mouse:
    def __init__(self, page: FirefoxPage) -> None:
        self.page = page

    async def click(self, x: float, y: float) -> None:
        def act() -> None:
            seq = self.page.client.actions.sequence("pointer", "mouse", {"pointerType": "mouse"})
            seq.pointer_move(round(x), round(y)).pointer_down(0).pointer_up(0).perform()

        await asyncio.to_thread(act)


class _Keyboard:
    def __init__(self, page: FirefoxPage) -> None:
        self.page = page

    async def press(self, code: str) -> None:
        value = KEYS[code]

        def act() -> None:
            self.page.client.actions.sequence("key", "keyboard").key_down(value).key_up(
                value
            ).perform()

        await asyncio.to_thread(act)


class _Locator:
    def __init__(self, page: FirefoxPage, selector: str) -> None:
        self.page, self.selector = page, selector

    async def bounding_box(self) -> dict[str, float] | None:
        src = (
            "(sel) => { const r = document.querySelector(sel).getBoundingClientRect();"
            " return {x: r.x, y: r.y, width: r.width, height: r.height}; }"
        )
        box: dict[str, float] | None = await self.page.evaluate(src, self.selector)
        return box


class FirefoxPage:
    """The subset of a playwright Page the click-to-photon bench uses."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.mouse = _Mouse(self)
        self.keyboard = _Keyboard(self)

    async def goto(self, url: str) -> None:
        await asyncio.to_thread(self.client.navigate, url)

    async def evaluate(self, src: str, arg: Any = None) -> Any:
        """`src`, a JS function, called with `arg` in the page; its result, JSON-copied. A
        function that returns a promise (the page's getStats) gives None: Marionette's
        sandbox cannot wait on the page's promises."""
        if src.lstrip().startswith("async"):
            return None
        args = [src, None if arg is None else json.dumps(arg)]
        out = await asyncio.to_thread(self.client.execute_script, _CALL, script_args=args)
        return None if out is None else json.loads(out)

    def locator(self, selector: str) -> _Locator:
        return _Locator(self, selector)

    async def inner_text(self, selector: str) -> str:
        text: str = await self.evaluate("(sel) => document.querySelector(sel).innerText", selector)
        return text

    async def screenshot(self, path: str) -> None:
        png = await asyncio.to_thread(self.client.screenshot)
        Path(path).write_bytes(base64.b64decode(png))


@asynccontextmanager
async def firefox_page(log_dir: Path, width: int, height: int) -> AsyncIterator[FirefoxPage]:
    """A headless Firefox window of about width x height showing nothing yet."""
    from marionette_driver.marionette import Marionette

    if not Path(FIREFOX).exists():
        raise FileNotFoundError(f"no Firefox at {FIREFOX} (apt-get install firefox-esr)")

    def start() -> Any:
        with _pgid_without_preexec():
            client = Marionette(
                host="127.0.0.1",
                port=free_port(),
                bin=FIREFOX,
                headless=True,
                prefs=PREFS,
                gecko_log=str(log_dir / "gecko.log"),
                startup_timeout=90,
            )
        client.start_session()
        client.set_window_rect(width=width, height=height)
        return client

    client = await asyncio.to_thread(start)
    try:
        yield FirefoxPage(client)
    finally:
        await asyncio.to_thread(client.quit, in_app=False)
