"""A private Xvfb for tests, benchmarks and docs: a free display number, ready when returned.

`-displayfd` makes Xvfb choose a free display and write its number once it accepts
connections, so nothing polls for a socket and parallel runs never collide. Xvfb cannot be
resized (its RandR range is fixed at start; /work/scratch/x11/REPORT.md): start it at the size
the test needs.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import subprocess
import time
from types import TracebackType


def xvfb_available() -> bool:
    return shutil.which("Xvfb") is not None


def stop_process(proc: subprocess.Popen | None, grace_s: float = 5.0) -> None:
    """Terminate a helper process, killed if it outlives `grace_s`; never raises for one that
    has already gone or will not die."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace_s)


class Xvfb:
    """`with Xvfb(640, 360) as x: ... x.display ...` (":N")."""

    def __init__(
        self, width: int = 640, height: int = 360, depth: int = 24, display: str = ""
    ) -> None:
        """`display` (":N") asks for that number (a restart of a server that died); by
        default Xvfb picks a free one."""
        self.size = (width, height)
        self.depth = depth
        self.proc: subprocess.Popen[bytes] | None = None
        self.display = display

    def start(self, timeout_s: float = 15.0) -> str:
        if not xvfb_available():
            raise FileNotFoundError("Xvfb not found: apt-get install xvfb (scripts/setup.sh)")
        read_fd, write_fd = os.pipe()
        w, h = self.size
        try:
            self.proc = subprocess.Popen(
                [
                    "Xvfb",
                    *([self.display] if self.display else []),
                    "-displayfd",
                    str(write_fd),
                    "-screen",
                    "0",
                    f"{w}x{h}x{self.depth}",
                    "-nolisten",
                    "tcp",
                    "-noreset",
                ],
                pass_fds=(write_fd,),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            os.close(write_fd)
            write_fd = -1
            got = b""
            deadline = time.monotonic() + timeout_s
            while not got.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([read_fd], [], [], left)[0]:
                    raise TimeoutError(f"Xvfb did not start within {timeout_s:g} s")
                chunk = os.read(read_fd, 16)
                if not chunk:
                    raise RuntimeError(f"Xvfb exited at start (code {self.proc.poll()})")
                got += chunk
        except BaseException:
            self.stop()
            raise
        finally:
            os.close(read_fd)
            if write_fd >= 0:
                os.close(write_fd)
        self.display = f":{int(got.strip())}"
        return self.display

    def kill(self) -> None:
        """The X server dies at once (SIGKILL), as a crashed game host would."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        stop_process(proc)

    def __enter__(self) -> Xvfb:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
