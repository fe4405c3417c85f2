"""What the sessions need from the service that holds them: a small Protocol, so sessions can
be built and tested against anything that provides it (and never reach into the Service)."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from aiortc.mediastreams import MediaStreamTrack

    from ..encode import SharedEncoder
    from ..input import InputEvent, InputOutcome
    from .ingest import IngestLimits


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

    def on_input(self, event: InputEvent, session: str) -> InputOutcome:
        """A viewer's checked input event: injected when the session may control, else
        refused with the reason."""
        ...

    def on_control(self, session: str, take: bool | None) -> dict[str, Any]:
        """Take (True) or give up (False) control, or just ask (None): the "control" message
        the session's page shows."""
        ...

    def on_click_to_photon(self, session: str, sample: dict[str, Any]) -> None: ...

    def on_report(self, session: str, report: dict[str, Any]) -> None: ...

    def on_placement(self, session: str, data: dict[str, Any]) -> dict[str, Any]:
        """A page asks to upscale in the viewer or on the server (stream/placement.py): the
        "placement" message that answers it."""
        ...

    def on_session(self, kind: SessionKind) -> None:
        """A session of this kind was accepted (metrics)."""
        ...

    def publisher_refusal(self) -> str | None:
        """Why a WHIP publisher cannot be taken now (None: it can)."""
        ...

    def publisher_track(self, session: str, track: MediaStreamTrack) -> None: ...

    def publisher_left(self, session: str) -> None: ...

    def publisher_limits(self) -> IngestLimits:
        """What a publisher's stream may announce (size, and 4:2:0 8-bit always)."""
        ...

    def publisher_refused(self, session: str, reason: str) -> None:
        """A publisher's stream was refused before decode: log why and end it."""
        ...

    def session_closed(self, session: str, kind: SessionKind) -> None:
        """A session ended, whatever the reason (DELETE, ICE consent lost, shutdown): what was
        kept for it is forgotten, what it held (keys, buttons, control) is let go."""
        ...
