"""`python -m stream serve` as a user starts it: secure by default (no [auth] off loopback
refuses to start unless told --insecure-open) and HTTPS with a given or a self-signed
certificate."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stream.auth import Role, TokenAuthority
from stream.tools.soak.server import free_port

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--mode", "bilinear", "--width", "64", "--height", "36", "--fps", "5"]
SECRET = b"0123456789abcdef0123456789abcdef"


def _serve(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "stream", "serve", *SMALL, *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _get(url: str, token: str | None = None, timeout: float = 60.0) -> tuple[int, dict]:
    """GET with retries until the server answers (any TLS certificate accepted)."""
    import urllib.error
    import urllib.request

    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(req, timeout=5, context=ctx) as r:
                return r.status, dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers)
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    return out


def test_no_auth_on_a_network_address_refuses_to_start():
    proc = _serve("--host", "0.0.0.0", "--port", str(free_port()))
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2, out
    assert "[auth]" in out and "--insecure-open" in out


@pytest.mark.gpu
@pytest.mark.timeout(180)
def test_insecure_open_or_auth_lets_it_serve_a_network_address(tmp_path):
    port = free_port()
    proc = _serve("--host", "0.0.0.0", "--port", str(port), "--insecure-open")
    try:
        assert _get(f"http://127.0.0.1:{port}/api/stats")[0] == 200  # open: anyone is admin
    finally:
        assert "--insecure-open: serving 0.0.0.0 with no auth" in _stop(proc)
    secret = tmp_path / "secret"
    secret.write_bytes(SECRET)
    cfg = tmp_path / "serve.toml"
    cfg.write_text(f'[auth]\nsecret_file = "{secret}"\n')
    port = free_port()
    proc = _serve("--host", "0.0.0.0", "--port", str(port), "--config", str(cfg))
    try:
        url = f"http://127.0.0.1:{port}/api/stats"
        assert _get(url)[0] == 401
        assert _get(url, TokenAuthority(SECRET).mint(Role.ADMIN, 60))[0] == 200
    finally:
        _stop(proc)


@pytest.mark.gpu
@pytest.mark.timeout(180)
def test_https_with_a_self_signed_or_a_given_certificate(tmp_path):
    from stream.tls import self_signed

    port = free_port()
    proc = _serve("--port", str(port), "--tls-self-signed")
    try:
        status, headers = _get(f"https://127.0.0.1:{port}/healthz")
        assert status == 200 and headers["Strict-Transport-Security"].startswith("max-age=")
    finally:
        out = _stop(proc)
    assert f"https://127.0.0.1:{port}/" in out and "fingerprint" in out
    cert, key, _ = self_signed(tmp_path, "127.0.0.1")
    port = free_port()
    proc = _serve("--port", str(port), "--tls-cert", str(cert), "--tls-key", str(key))
    try:
        assert _get(f"https://127.0.0.1:{port}/healthz")[0] == 200
    finally:
        _stop(proc)
