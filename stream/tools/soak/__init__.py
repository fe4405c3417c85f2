"""`python -m stream soak`: WHEP viewers held on a server for a while, faults injected, a
verdict on what they saw and how the server's resources grew.

runner (the run) · viewer (an aiortc viewer reading the frame marker) · publisher (a WHIP
scene) · server (serve as a child process) · faults · verdict · report · browser (Chromium) ·
av (audio-video sync: a beep/flash viewer).
"""

from __future__ import annotations

from .cli import soak
from .report import format_verdict, write_plots, write_report
from .runner import Soak
from .settings import SoakSettings
from .verdict import analyse

__all__ = [
    "Soak",
    "SoakSettings",
    "analyse",
    "format_verdict",
    "soak",
    "write_plots",
    "write_report",
]
