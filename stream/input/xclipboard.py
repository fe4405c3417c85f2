"""The X side of the clipboard (clipboard.py): a python-xlib connection in its own thread that
owns CLIPBOARD and PRIMARY for the page's pastes and watches CLIPBOARD (XFixes) for copies.
Imported only for x11 sources, like xtest.py."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import select
import threading
from collections.abc import Callable
from typing import Any

from Xlib import X, Xatom
from Xlib.ext import xfixes
from Xlib.protocol import event as xevent

from ..xlib_tables import open_display
from .events import InjectError

log = logging.getLogger(__name__)

PASTE_WAIT_S = 0.5  # for the X server to make us the owner


class XClipboard:
    """The display's CLIPBOARD and PRIMARY, set from the page and watched for copies."""

    def __init__(
        self, display: str, max_bytes: int, on_copy: Callable[[str], None] | None = None
    ) -> None:
        self.display_name = display
        self.max_bytes = max_bytes
        self.on_copy = on_copy or (lambda text: None)  # called in the X thread
        self.pasted = 0
        self.copied = 0
        self.too_big = 0
        self.text = b""  # what we own, UTF-8
        self._todo: queue.Queue[tuple[bytes, threading.Event]] = queue.Queue(8)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._stop = False
        self._ready = threading.Event()
        self.error = ""
        self._thread = threading.Thread(target=self._run, name=f"clipboard {display}", daemon=True)
        self._thread.start()

    def ready(self, timeout_s: float = 10.0) -> bool:
        return self._ready.wait(timeout_s) and not self.error

    # -- from the event loop -------------------------------------------------------------

    def paste(self, text: str) -> None:
        """Own both selections with `text` (InjectError: too big, or not done in time)."""
        data = text.encode()
        if len(data) > self.max_bytes:
            self.too_big += 1
            raise InjectError(f"clipboard text over {self.max_bytes} bytes ([input])")
        if not self._ready.is_set() or self.error:
            raise InjectError(f"clipboard: X display {self.display_name} not connected")
        done = threading.Event()
        try:
            self._todo.put_nowait((data, done))
        except queue.Full:
            raise InjectError("clipboard busy") from None
        self._wake()
        if not done.wait(PASTE_WAIT_S):
            raise InjectError("clipboard: the X server did not answer in time")
        self.pasted += 1

    def close(self) -> None:
        self._stop = True
        self._wake()
        self._thread.join(5)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"x")

    def stats(self) -> dict[str, Any]:
        return {"pasted": self.pasted, "copied": self.copied, "too_big": self.too_big}

    # -- the X thread ----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            d = open_display(self.display_name)
            if not d.has_extension("XFIXES"):
                raise RuntimeError("no XFIXES extension")
            d.xfixes_query_version()
            # python-xlib registers a copy of the event class: match by code, not isinstance
            self._owner_event = (
                d.query_extension("XFIXES").first_event + xfixes.XFixesSelectionNotify
            )
            win = d.screen().root.create_window(-10, -10, 1, 1, 0, X.CopyFromParent)
            atom = {n: d.intern_atom(n) for n in ("CLIPBOARD", "TARGETS", "UTF8_STRING", "TEXT")}
            atom["INCR"] = d.intern_atom("INCR")
            atom["PROP"] = d.intern_atom("FRAMESMITH_CLIPBOARD")
            d.xfixes_select_selection_input(
                win, atom["CLIPBOARD"], xfixes.XFixesSetSelectionOwnerNotifyMask
            )
            d.flush()
        except Exception as e:  # noqa: BLE001 - any failure to open is reported, not raised
            self.error = str(e)
            log.warning("clipboard: cannot use X display %s: %s", self.display_name, e)
            self._ready.set()
            return
        self.d, self.win, self.atom = d, win, atom
        self._ready.set()
        log.info("clipboard: shared with X display %s", self.display_name)
        try:
            while not self._stop:
                r, _, _ = select.select([d.fileno(), self._wake_r], [], [], 1.0)
                if self._wake_r in r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 64)
                self._own()
                while d.pending_events():
                    self._event(d.next_event())
        except Exception as e:  # noqa: BLE001 - the X server went away: logged, thread ends
            self.error = str(e)
            log.warning("clipboard: X display %s lost: %s", self.display_name, e)
        finally:
            with contextlib.suppress(Exception):
                d.close()

    def _own(self) -> None:
        while True:
            try:
                data, done = self._todo.get_nowait()
            except queue.Empty:
                return
            self.text = data
            for sel in (self.atom["CLIPBOARD"], Xatom.PRIMARY):
                self.win.set_selection_owner(sel, X.CurrentTime)
            self.d.get_selection_owner(self.atom["CLIPBOARD"])  # a round trip: it is done
            done.set()

    def _event(self, ev: Any) -> None:
        if ev.type == X.SelectionRequest:
            self._answer(ev)
        elif ev.type == self._owner_event and ev.sub_code == xfixes.XFixesSetSelectionOwnerNotify:
            owner = getattr(ev.owner, "id", ev.owner)  # a Window, or 0
            if owner not in (self.win.id, X.NONE):  # another client copied
                self.win.convert_selection(
                    self.atom["CLIPBOARD"],
                    self.atom["UTF8_STRING"],
                    self.atom["PROP"],
                    ev.timestamp,
                )
                self.d.flush()
        elif ev.type == X.SelectionNotify and ev.requestor == self.win:
            self._read(ev)

    def _answer(self, ev: Any) -> None:
        """ICCCM: the text as UTF8_STRING, TEXT or STRING (Latin-1), or the TARGETS list."""
        prop = ev.property or ev.target  # an obsolete requestor names no property
        a = self.atom
        if ev.target == a["TARGETS"]:
            targets = [a["TARGETS"], a["UTF8_STRING"], a["TEXT"], Xatom.STRING]
            ev.requestor.change_property(prop, Xatom.ATOM, 32, targets)
        elif ev.target in (a["UTF8_STRING"], a["TEXT"]):
            ev.requestor.change_property(prop, a["UTF8_STRING"], 8, self.text)
        elif ev.target == Xatom.STRING:
            latin1 = self.text.decode().encode("latin-1", "replace")
            ev.requestor.change_property(prop, Xatom.STRING, 8, latin1)
        else:
            prop = X.NONE
        notify = xevent.SelectionNotify(
            time=ev.time,
            requestor=ev.requestor,
            selection=ev.selection,
            target=ev.target,
            property=prop,
        )
        ev.requestor.send_event(notify)
        self.d.flush()

    def _read(self, ev: Any) -> None:
        if ev.property == X.NONE:
            return  # the owner had no UTF-8 text (an image, say)
        words = self.max_bytes // 4 + 1
        prop = self.win.get_property(self.atom["PROP"], X.AnyPropertyType, 0, words, True)
        if prop is None:
            return
        data = bytes(prop.value) if prop.format == 8 else b""
        if (
            prop.property_type == self.atom["INCR"]
            or prop.bytes_after
            or len(data) > self.max_bytes
        ):
            self.too_big += 1
            log.info("clipboard: a copy over %d bytes not sent to the page", self.max_bytes)
            return
        self.copied += 1
        self.on_copy(data.decode("utf-8", "replace"))
