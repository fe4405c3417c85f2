"""Which game sound to serve: `--audio SPEC` / `[audio] source`, and whether it can be had.

The capture goes through PulseAudio's own clients (`parec`, `pactl`: Debian's
pulseaudio-utils) rather than PyAV's pulse demuxer, which the PyAV wheels' FFmpeg is built
without; PipeWire answers them too (pipewire-pulse). The server is the one the clients find
themselves: $PULSE_SERVER, else the user's runtime socket.

What the resolution says is split the way /healthz needs it: `reason` is for anyone (no
server address, no source name), `detail` for admins (/api/stats) and the log.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

DEFAULT_MONITOR = "@DEFAULT_MONITOR@"  # PulseAudio's name for the default sink's monitor
KINDS = ("auto", "none", "pulse", "beep")
PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class AudioSpec:
    kind: str  # "auto", "none", "pulse" or "beep"
    device: str = ""  # pulse: the source name ("" = the default sink's monitor)


@dataclass(frozen=True)
class AudioPlan:
    """What will be served: `kind` is "pulse", "beep", "publisher" or "none"."""

    kind: str
    device: str = ""
    reason: str = ""  # public: why there is no audio (or what it is)
    detail: str = ""  # admins only: the tool's own words

    @property
    def enabled(self) -> bool:
        return self.kind != "none"


def parse(text: str) -> AudioSpec:
    """`pulse`, `pulse:NAME`, `none`, `beep` or `auto`; a ValueError says what is accepted."""
    kind, sep, device = text.strip().partition(":")
    if kind not in KINDS or (sep and kind != "pulse"):
        raise ValueError(
            f"must be auto, none, pulse, pulse:NAME (a PulseAudio source such as "
            f"game.monitor) or beep (a test tone on testsrc's flashes), not {text!r}"
        )
    if sep and not device.strip():
        raise ValueError("pulse:NAME needs a source name (pactl list short sources)")
    if any(c.isspace() or not c.isprintable() for c in device):
        raise ValueError(f"pulse:NAME: {device!r} is not a PulseAudio source name")
    return AudioSpec(kind, device)


def pulse_tools() -> str | None:
    """Why the PulseAudio clients cannot run (None: they can)."""
    missing = [t for t in ("parec", "pactl") if shutil.which(t) is None]
    if missing:
        return f"{' and '.join(missing)} not installed (Debian: pulseaudio-utils)"
    return None


def probe(device: str = "") -> str | None:
    """Why the PulseAudio server (and `device` on it) cannot be captured now; None: it can."""
    why = pulse_tools()
    if why is not None:
        return why
    try:
        info = subprocess.run(
            ["pactl", "info"],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            env=os.environ.copy(),
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"no PulseAudio server answered ({type(e).__name__})"
    if info.returncode != 0:
        return "no PulseAudio server answered"
    if not device:
        return None
    listed = subprocess.run(
        ["pactl", "list", "short", "sources"],
        capture_output=True,
        text=True,
        timeout=PROBE_TIMEOUT_S,
    )
    names = {line.split("\t")[1] for line in listed.stdout.splitlines() if "\t" in line}
    if device not in names:
        return "the PulseAudio server has no source of that name"
    return None


def resolve(text: str, source_kind: str) -> AudioPlan:
    """The plan for `[audio] source = text` with a video source of `source_kind`.

    auto: the publisher's own sound for webrtc (relay.py); none for testsrc and files (a
    file's own sound goes to the pushes as it is); pulse for an x11 source when a server
    answers, else none with the reason. An explicit pulse is served even when the server
    does not answer yet (the capture retries)."""
    spec = parse(text)
    if spec.kind == "none":
        return AudioPlan("none", reason="audio.source = none")
    if spec.kind == "beep":
        if source_kind != "testsrc":
            raise ValueError("audio.source = beep needs source testsrc (its flashes beep)")
        return AudioPlan("beep", reason="a test tone on every flash of the test scene")
    if spec.kind == "auto" and source_kind == "webrtc":
        return AudioPlan("publisher", reason="the WHIP publisher's own sound, passed on")
    if spec.kind == "auto" and source_kind != "x11":
        return AudioPlan(
            "none",
            reason=f"a {source_kind} source has no game sound to capture "
            "(audio.source = pulse to capture a PulseAudio server anyway)",
        )
    why = probe(spec.device)
    if why is not None and spec.kind == "auto":
        return AudioPlan("none", reason=f"audio.source = auto: {why}", detail=why)
    device = spec.device or DEFAULT_MONITOR
    reason = "PulseAudio: " + ("the default sink's monitor" if not spec.device else "a source")
    return AudioPlan("pulse", device, reason=reason, detail=why or "")
