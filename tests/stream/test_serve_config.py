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
            # a key whose value is a table is documented as its own [section.key] table
            documented = f"\n{key} =" in text or f"\n[{section}.{key}]\n" in text
            assert documented, f"{section}.{key} missing from configs/serve.toml"


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


@pytest.mark.parametrize("which", ["turn", "auth"])
def test_serve_refuses_a_placeholder_secret(tmp_path, monkeypatch, capsys, which):
    """A secret file still holding an example's placeholder stops the start with the file
    named (docker/env.example shipped TURN_SECRET=change-me)."""
    from stream import serve

    def never(*args, **kwargs):  # serving would mean the secret was taken
        raise AssertionError("served with a placeholder secret")

    monkeypatch.setattr(serve.web, "run_app", never)
    placeholder = tmp_path / "placeholder"
    placeholder.write_text("change-me\n" if which == "turn" else "Change-Me-Too" * 3)
    good = tmp_path / "good"
    good.write_text("0123456789abcdef0123456789abcdef")
    turn = placeholder if which == "turn" else good
    auth = placeholder if which == "auth" else good
    p = tmp_path / "serve.toml"
    p.write_text(
        f'[server]\nturn_servers = ["turn:127.0.0.1:3478"]\nturn_secret_file = "{turn}"\n'
        f'[auth]\nsecret_file = "{auth}"\n[model]\nmode = "bypass"\n'
    )
    assert serve.main(["--config", str(p)]) == 2
    out = capsys.readouterr().out
    assert "placeholder" in out and str(placeholder) in out, out
