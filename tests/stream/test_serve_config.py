"""configs/serve.toml loading: every option validated, unknown keys refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream import config

REPO = Path(__file__).resolve().parents[2]


def test_shipped_config_is_valid_and_documents_every_option():
    cfg = config.load(REPO / "configs" / "serve.toml")
    assert cfg == config.Config()  # the file states the defaults
    text = (REPO / "configs" / "serve.toml").read_text()
    for section, values in cfg.as_dict().items():
        assert f"[{section}]" in text
        for key in values:
            assert f"\n{key} =" in text, f"{section}.{key} missing from configs/serve.toml"


@pytest.mark.parametrize(
    "toml,words",
    [
        ("[server]\nprot = 1\n", "unknown key 'server.prot'"),
        ("[sever]\nport = 1\n", "unknown section [sever]"),
        ("[server]\nport = 'x'\n", "server.port: must be an integer"),
        ("[server]\nport = 70000\n", "server.port: must be <= 65535"),
        ("[encoder]\ncodecs = ['av1']\n", "encoder.codecs"),
        ("[encoder]\ndefault_codec = 'h264'\ncodecs = ['vp8']\n", "encoder.default_codec"),
        ("[encoder]\nbitrate = 1.5\n", "encoder.bitrate: must be an integer"),
        ("[model]\nmode = 'sharpen'\n", "model.mode"),
        ("[source]\nloop = 'yes'\n", "source.loop: must be true or false"),
        ("[source]\nfps = 0\n", "source.fps"),
        ("server = 3\n", "server must be a table"),
        ("[server\n", "not valid TOML"),
    ],
)
def test_bad_files_are_refused_naming_the_key(tmp_path, toml, words):
    p = tmp_path / "serve.toml"
    p.write_text(toml)
    with pytest.raises(config.ConfigError) as e:
        config.load(p)
    assert words in str(e.value)


def test_flags_override_the_file(tmp_path):
    p = tmp_path / "serve.toml"
    p.write_text('[server]\nport = 9000\nhost = "0.0.0.0"\n[source]\nuri = "webrtc"\n')
    cfg = config.load(p, {"server.port": 9100, "source.uri": None})
    assert (cfg.server.port, cfg.server.host, cfg.source.uri) == (9100, "0.0.0.0", "webrtc")
    with pytest.raises(config.ConfigError, match="server.port"):
        config.load(p, {"server.port": -1})


def test_missing_file():
    with pytest.raises(config.ConfigError, match="not found"):
        config.load("/nonexistent/serve.toml")
