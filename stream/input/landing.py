"""The moment a player's input lands in an X display, for that display's capture.

Why: the x11 source grabs on the display's damage but at most `fps` times a second, so the
frame showing a click could wait up to one capture interval behind a frame the game drew just
before (an animated screen damages all the time). Told that input landed, the source grabs the
damage that follows at once, for a short while (x11.py HURRY_S), whatever the rate cap says.
The injector (xtest.py) and the source share nothing but the display's name, hence this
registry; listeners are called on the injecting thread and must only hand the news on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

_lock = threading.Lock()
_last: dict[str, float] = {}  # display -> time.monotonic() of its last injected input
_listeners: dict[str, list[Callable[[], None]]] = {}


def landed(display: str) -> None:
    """Input was just injected into `display`."""
    with _lock:
        _last[display] = time.monotonic()
        listeners = list(_listeners.get(display, ()))
    for listener in listeners:
        listener()


def last(display: str) -> float:
    """time.monotonic() of the last input injected into `display` (0.0: none yet)."""
    with _lock:
        return _last.get(display, 0.0)


def listen(display: str, listener: Callable[[], None]) -> Callable[[], None]:
    """Call `listener` each time input lands in `display`; returns the function that stops it."""
    with _lock:
        _listeners.setdefault(display, []).append(listener)

    def stop() -> None:
        with _lock:
            group = _listeners.get(display, [])
            if listener in group:
                group.remove(listener)
            if not group:
                _listeners.pop(display, None)

    return stop
