"""Every TOML in configs/ loads through its command's loader; a bad one is refused, key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream import config as serve_config
from stream.process import ProcessSettings
from stream.tools.soak.settings import SoakSettings

SECTIONS = {"process": ProcessSettings, "soak": SoakSettings}

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_every_config_has_a_loader():
    known = {"serve.toml", "process.toml", "soak.toml"}
    for path in CONFIGS.glob("*.toml"):
        assert path.name in known or path.name.startswith("train-"), (
            f"{path.name}: add it to tests/test_configs.py with its loader"
        )


def test_serve_config_is_the_defaults():
    assert serve_config.load(CONFIGS / "serve.toml") == serve_config.Config()


@pytest.mark.parametrize("section", ["process", "soak"])
def test_settings_file_is_the_defaults(section):
    cls = SECTIONS[section]
    assert serve_config.load_section(cls, section, CONFIGS / f"{section}.toml") == cls()


def test_train_configs_load():
    training = pytest.importorskip("infer.training.config")
    paths = sorted(CONFIGS.glob("train-*.toml"))
    if not paths:
        pytest.skip("no configs/train-*.toml yet")
    for path in paths:
        cfg = training.load_config(path)
        assert cfg.name == path.stem.removeprefix("train-"), path


def _bad(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "bad.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[server]\nice_port_min = "40000"\n', "server.ice_port_min"),
        ("[server]\nice_port_min = 40000\n", "server.ice_port_max"),
        ('[server]\nturn_servers = ["stun:x"]\nturn_username = "u"\n', "server.turn_servers"),
        ('[server]\nice_public_address = "example.com"\n', "server.ice_public_address"),
        ("[server]\nturn_pasword = 1\n", "server.turn_pasword"),
        ("[encoder]\nbitrate = 5\n", "encoder.bitrate"),
    ],
)
def test_bad_serve_config_names_the_key(tmp_path, text, key):
    with pytest.raises(serve_config.ConfigError, match=key.replace(".", r"\.")):
        serve_config.load(_bad(tmp_path, text))


@pytest.mark.parametrize(
    ("section", "text", "key"),
    [
        ("process", '[process]\ncodec = "mpeg2"\n', "process.codec"),
        ("process", "[process]\ncrf = 99\n", "process.crf"),
        ("process", "[process]\nslots = true\n", "process.slots"),
        ("process", "[process]\nthreads = 2\n", "process.threads"),
        ("soak", "[soak]\nviewers = 0\n", "soak.viewers"),
        ("soak", '[soak]\nurl = "ftp://x"\n', "soak.url"),
    ],
)
def test_bad_settings_name_the_key(tmp_path, section, text, key):
    with pytest.raises(serve_config.ConfigError, match=key.replace(".", r"\.")):
        serve_config.load_section(SECTIONS[section], section, _bad(tmp_path, text))


def test_bad_train_config_names_the_key(tmp_path):
    training = pytest.importorskip("infer.training.config")
    with pytest.raises(training.ConfigError, match=r"data\.patchsize"):
        training.load_config(_bad(tmp_path, "[data]\npatchsize = 3\n"))


def test_process_config_gives_defaults_and_flags_win(tmp_path, monkeypatch):
    from stream import process

    seen = {}

    def fake_parse(self, argv):
        ns = original(self, argv)
        seen.update(vars(ns))
        raise SystemExit(0)

    original = process.argparse.ArgumentParser.parse_args
    cfg = _bad(tmp_path, '[process]\ncodec = "vp9"\nslots = 3\nprogress = false\n')
    monkeypatch.setattr(process.argparse.ArgumentParser, "parse_args", fake_parse)
    with pytest.raises(SystemExit):
        process.main(["in.mp4", "out.mp4", "--config", str(cfg), "--slots", "4"])
    assert (seen["codec"], seen["slots"], seen["no_progress"], seen["adapter"]) == (
        "vp9",
        4,
        True,
        None,
    )
