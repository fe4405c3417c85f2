"""Text clipboard between the controlling player's page and the game's X display (off unless
`[input] clipboard = true`).

    page -> server  {"type": "clipboard", "text": "..."}   player role, at most
                    `clipboard_max_bytes` of UTF-8: the page's paste (Ctrl+V on the picture)
    server -> page  {"type": "clipboard", "text": "..."}   to the players who control: an X
                    client copied (a new owner of CLIPBOARD), as long as it is within the size

A page's text goes through `InputControl.submit` like keys (only the controlling player's,
only a player's), then this module makes it the display's CLIPBOARD and PRIMARY selection: it
owns both with its own window and answers SelectionRequest for UTF8_STRING, STRING, TEXT and
TARGETS (ICCCM), so a game's Ctrl+V or a middle click pastes it. The paste waits (a few ms)
until the X server has made us the owner, so the Ctrl+V the page sends right after cannot
reach the game first.

The other way, XFixes tells us of every new CLIPBOARD owner; we ask it for UTF8_STRING once
and hand the text on. Only CLIPBOARD: PRIMARY changes with every selection of text. Bigger
than the limit (or INCR, the ICCCM's way for big data) is dropped and counted, never read.
The X connection lives in its own thread (xclipboard.py: python-xlib blocks), woken by a pipe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..limits import TokenBucket
from .events import InputError, InputEvent

if TYPE_CHECKING:
    from .xclipboard import XClipboard

MAX_TEXT = 3000  # bytes: a data-channel message is at most 4 KiB of JSON
COPIES = 2.0  # X copies sent to the page a second (a game copying in a loop floods nothing)


@dataclass(frozen=True)
class ClipboardEvent(InputEvent):
    kind: str = "clipboard"
    text: str = ""

    def as_message(self) -> dict[str, Any]:
        return {"type": "clipboard", "text": self.text}


def parse_clipboard(data: dict[str, Any], max_bytes: int = MAX_TEXT) -> ClipboardEvent:
    """The checked text of a {"type": "clipboard", "text"} message, or InputError."""
    text = data.get("text")
    if not isinstance(text, str):
        raise InputError("text must be a string")
    try:
        size = len(text.encode())
    except UnicodeEncodeError:  # a lone surrogate ("\\ud800" is valid JSON)
        raise InputError("text must be valid Unicode") from None
    if size > max_bytes:
        raise InputError(f"text is {size} bytes of UTF-8; at most {max_bytes}")
    if "\0" in text:
        raise InputError("text must not hold NUL")
    return ClipboardEvent(text=text)


class ClipboardShare:
    """The clipboard's InputSink (InputControl hands it clipboard events only: `accepts`),
    over the display's selections (xclipboard.py), and the copies made there sent on to the
    players in control (`to_players`, on the event loop; at most COPIES a second)."""

    def __init__(
        self, display: str, max_bytes: int, to_players: Callable[[dict[str, Any]], None]
    ) -> None:
        from .xclipboard import XClipboard  # python-xlib, only for X displays

        self.x: XClipboard = XClipboard(display, max_bytes, self._copied)
        self.to_players = to_players
        self.copies = TokenBucket(COPIES, 2 * COPIES)
        self.loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def for_display(
        cls, injector: Any, cfg: Any, to_players: Callable[[dict[str, Any]], None]
    ) -> ClipboardShare | None:
        """The clipboard of an x11 source's display (its XTestInjector) with `[input]
        clipboard = true`, else None: pastes are then refused (no sink takes them)."""
        if injector is None or not cfg.clipboard:
            return None
        return cls(injector.display_name, cfg.clipboard_max_bytes, to_players)

    def start(self) -> None:
        """From the event loop that sends to the players."""
        self.loop = asyncio.get_running_loop()

    def accepts(self, kind: str) -> bool:
        return kind == "clipboard"

    def send(self, session: str, event: InputEvent) -> None:
        if isinstance(event, ClipboardEvent):
            self.x.paste(event.text)

    def release(self, session: str) -> None:
        pass

    def _copied(self, text: str) -> None:  # in the X thread
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self._send, text)

    def _send(self, text: str) -> None:
        if self.copies.allow():
            self.to_players({"type": "clipboard", "text": text})

    def stats(self) -> dict[str, Any]:
        return self.x.stats()

    def close(self) -> None:
        self.x.close()
