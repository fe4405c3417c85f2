"""What the sessions need from the service that holds them: a small Protocol, so sessions can
be built and tested against anything that provides it (and never reach into the Service)."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from aiortc.mediastreams import MediaStreamTrack

    from ..encode import SharedEncoder


class SessionKind(StrEnum):
    WHEP = "whep"  # a viewer
    WHIP = "whip"  # a publisher


class SessionHost(Protocol):
    def encoder(self, stream: str, codec: str) -> SharedEncoder:
        """The shared encoder of a stream ("main" or "compare") and codec."""
        ...

    def describe(self) -> dict[str, Any]:
        """What a viewer's hello message says about the service (source, modes, ...)."""
        ...

    def on_input(self, event: dict[str, Any], session: str) -> None: ...

    def on_report(self, session: str, report: dict[str, Any]) -> None: ...

    def on_session(self, kind: SessionKind) -> None:
        """A session of this kind was accepted (metrics)."""
        ...

    def session_closed(self, session: str) -> None:
        """A session ended (whatever the reason): forget what was kept for it."""
        ...

    def publisher_refusal(self) -> str | None:
        """Why a WHIP publisher cannot be taken now (None: it can)."""
        ...

    def publisher_track(self, session: str, track: MediaStreamTrack) -> None: ...

    def publisher_left(self, session: str) -> None: ...
