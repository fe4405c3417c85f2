"""`python -m stream serve` in a child process on a free loopback port (its memory and file
descriptors are then the server's alone)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from ...config import read_toml, write_toml
from ...webrtc.sessions import LEAK_ENV

log = logging.getLogger("stream.soak")

REPO = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LocalServer:
    """`serve --config <serve_config>` as a child; its config and log go to `workdir`."""

    serve_config: str
    workdir: Path
    leak: bool = False  # the server's test hook that leaks departed viewers' connections
    proc: subprocess.Popen[bytes] | None = None
    url: str = ""
    log_path: Path = field(default_factory=Path)
    secret_file: str = ""  # the [auth] secret the server runs with (made here when absent)

    async def start(self, timeout: float = 120.0) -> None:
        cfg_path = self._config()
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = (self.workdir / "server.log").resolve()
        env = dict(os.environ)
        if self.leak:
            env[LEAK_ENV] = "1"
        else:
            env.pop(LEAK_ENV, None)
        cmd = [sys.executable, "-m", "stream", "serve", "--config", str(cfg_path)]
        cmd += ["--host", "127.0.0.1", "--port", str(port)]
        log.info("starting the server: %s (log: %s)", " ".join(cmd), self.log_path)
        with open(self.log_path, "wb") as logf:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                cmd, stdout=logf, stderr=subprocess.STDOUT, env=env, cwd=str(REPO)
            )
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"the server exited with {self.proc.returncode}:\n{self.log_tail()}"
                    )
                with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
                    async with http.get(
                        self.url + "/healthz", timeout=aiohttp.ClientTimeout(total=2)
                    ) as r:
                        if r.status == 200:
                            return
                await asyncio.sleep(0.3)
        await self.stop()
        raise RuntimeError(
            f"the server did not answer /healthz within {timeout:.0f} s:\n{self.log_tail()}"
        )

    def _config(self) -> Path:
        """The serve config, with source.marker on for a webrtc source (so the frame
        numbers are the server's) and auth on as in production (a secret made next to the
        report unless the config names one) - written next to the report."""
        data = read_toml(Path(self.serve_config)) if self.serve_config else {}
        src = data.setdefault("source", {})
        if src.get("uri") == "webrtc":
            src["marker"] = True
        auth = data.setdefault("auth", {})
        if not auth.get("secret_file"):
            secret = (self.workdir / "auth.secret").resolve()
            secret.touch(mode=0o600)
            secret.write_text(secrets.token_hex(32))
            auth["secret_file"] = str(secret)
        self.secret_file = auth["secret_file"]
        return write_toml(data, (self.workdir / "serve.toml").resolve())

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def log_tail(self, n: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        return ""

    async def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGINT)
        for _ in range(150):
            if self.proc.poll() is not None:
                return self.proc.returncode
            await asyncio.sleep(0.1)
        self.proc.kill()
        return await asyncio.to_thread(self.proc.wait)


def proc_figures(pid: int) -> dict[str, Any]:
    """Resident memory and open fds of a process, read from /proc."""
    out: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{pid}/statm") as f:
        out["rss_bytes"] = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    with contextlib.suppress(OSError):
        out["open_fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out
