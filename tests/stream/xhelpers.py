"""Helpers of the remote-play tests: a private Xvfb, our input app in it, frames read back."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import av
import pytest

from stream.sources.frames import planes_of
from stream.tools.input_app import InputAppProcess, read_input_marker
from stream.tools.xvfb import Xvfb, xvfb_available

needs_xvfb = pytest.mark.skipif(
    not xvfb_available(), reason="no Xvfb (apt-get install xvfb: scripts/setup.sh)"
)


@contextmanager
def game(
    tmp_path: Path, width: int = 320, height: int = 180
) -> Iterator[tuple[Xvfb, InputAppProcess]]:
    """An Xvfb with the input app filling it."""
    with Xvfb(width, height) as x, InputAppProcess(x.display, tmp_path / "app.jsonl") as app:
        yield x, app


def counter_of(frame: av.VideoFrame) -> int | None:
    return read_input_marker(planes_of(frame)[0])


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"no {tool} (scripts/setup.sh installs it)")
    return path
