"""A real PulseAudio daemon for the audio tests: its own runtime folder under tmp_path, a
null sink named `game` (its monitor `game.monitor` is what a game's sound is captured from)
and an anonymous unix socket; and real apps playing into it (`pacat`)."""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

RATE = 48000


@dataclass
class Pulse:
    server: str  # what PULSE_SERVER names: unix:<socket>
    env: dict[str, str]  # the environment its clients need
    log: Path


def need_pulse() -> None:
    for tool in ("pulseaudio", "pacat", "parec", "pactl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (Debian: pulseaudio, pulseaudio-utils)")


@contextlib.contextmanager
def pulse_daemon(folder: Path) -> Iterator[Pulse]:
    """`pulseaudio` with a null sink `game` on a private socket, stopped afterwards."""
    need_pulse()
    folder.mkdir(parents=True, exist_ok=True)
    socket = folder / "native"
    env = {
        **os.environ,
        "HOME": str(folder),
        "XDG_RUNTIME_DIR": str(folder),
        "PULSE_RUNTIME_PATH": str(folder / "pulse"),
        "XDG_CONFIG_HOME": str(folder / "config"),
    }
    env.pop("PULSE_SERVER", None)
    log = folder / "pulseaudio.log"
    proc = subprocess.Popen(
        [
            "pulseaudio",
            "-n",  # no default.pa: only the modules below
            "--daemonize=no",
            "--exit-idle-time=-1",
            "--use-pid-file=no",
            "--disable-shm=yes",
            "--log-target=stderr",
            "-L",
            "module-null-sink sink_name=game rate=48000",
            "-L",
            f"module-native-protocol-unix socket={socket} auth-anonymous=1",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    client = {**env, "PULSE_SERVER": f"unix:{socket}"}
    try:
        deadline = time.monotonic() + 15
        while True:
            ok = subprocess.run(["pactl", "info"], env=client, capture_output=True, timeout=5)
            if ok.returncode == 0:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"pulseaudio did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield Pulse(f"unix:{socket}", client, log)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def sine(path: Path, hz: float, seconds: float, level: float = 0.3) -> Path:
    """A stereo s16le 48 kHz sine, raw, for pacat."""
    t = np.arange(int(seconds * RATE)) / RATE
    mono = np.round(np.sin(2 * math.pi * hz * t) * level * 32767).astype("<i2")
    path.write_bytes(np.repeat(mono[:, None], 2, axis=1).tobytes())
    return path


@contextlib.contextmanager
def playing(pulse: Pulse, raw: Path, sink: str = "game") -> Iterator[subprocess.Popen]:
    """A real app (pacat) playing `raw` into `sink` until the block ends."""
    proc = subprocess.Popen(
        [
            "pacat",
            "--raw",
            "--format=s16le",
            f"--rate={RATE}",
            "--channels=2",
            f"--device={sink}",
            "--client-name=test game",
            str(raw),
        ],
        env=pulse.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)


def peak_hz(pcm: np.ndarray, rate: int = RATE) -> float:
    """The strongest frequency of a mono signal (an FFT peak, Hann window)."""
    x = pcm.astype(float) - pcm.mean()
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * rate / len(x))


def stereo_sine(path: Path, left_hz: float, right_hz: float, seconds: float) -> Path:
    """A stereo s16le 48 kHz raw file with a different tone on each channel, for pacat."""
    t = np.arange(int(seconds * RATE)) / RATE
    left, right = (np.sin(2 * math.pi * hz * t) * 0.3 for hz in (left_hz, right_hz))
    pcm = np.round(np.stack([left, right], axis=1) * 32767).astype("<i2")
    path.write_bytes(pcm.tobytes())
    return path
