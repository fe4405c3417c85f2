"""`serve` configuration: configs/serve.toml, validated; command-line flags override it.

Every option has a default here; a TOML file may set any subset. Unknown sections or keys
and values of the wrong type or out of range are refused with the key named, e.g.
``encoder.bitrate: must be an integer >= 50000, got 'fast'``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A bad configuration file or value; the message names the key."""


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 64 * 1024  # SDP bodies are a few kB
    max_viewers: int = 32
    ice_consent_interval_s: float = 1.0  # aioice default 5 s
    ice_consent_failures: int = 3  # aioice default 6: a dead peer goes in ~4 s, not ~30 s
    stun_servers: list[str] = field(default_factory=list)  # e.g. ["stun:stun.l.google.com:19302"]
    static_dir: str = ""  # empty: the viewer page shipped in stream/static
    # deployment (stream/ice.py, docker/): TURN, UDP port range, announced address, routing
    turn_servers: list[str] = field(default_factory=list)  # ["turn:host:3478?transport=udp"]
    turn_username: str = ""  # static TURN credentials (e.g. a TURN provider's account)
    turn_credential: str = ""  # inline: for trying only; prefer turn_credential_file
    turn_credential_file: str = ""  # file holding the credential (docker / k8s secret)
    turn_secret_file: str = ""  # coturn static-auth-secret: mint time-limited credentials
    turn_ttl_s: int = 3600  # lifetime of minted TURN credentials
    ice_port_min: int = 0  # UDP port range of ICE host candidates; 0, 0: ephemeral ports
    ice_port_max: int = 0
    ice_public_address: str = ""  # IPv4 announced (srflx) with each host candidate's port
    public_url: str = ""  # base of WHEP/WHIP Location headers; $VARS expanded ($POD_NAME)
    adapter: int = -1  # GPU adapter index (python -m stream devices); -1: the best one


@dataclass
class SourceConfig:
    uri: str = "testsrc"  # "testsrc", "webrtc" (WHIP ingest), or a file / URL PyAV opens
    width: int = 640  # testsrc size, and the "no source" slate size for webrtc
    height: int = 360
    fps: float = 30.0  # testsrc rate; files play at their own rate
    loop: bool = True  # loop files at EOF
    marker: bool = False  # stamp the frame-number marker on file / webrtc sources too


@dataclass
class ModelConfig:
    path: str = "upscale.onnx"  # a file, or a bundled model's name
    mode: str = "model"  # model | bilinear | bicubic | bypass
    scale: int = 2  # for the baseline modes (and when no model is loaded)
    precision: str = "fp32"  # fp32 | fp16
    slots: int = 2
    compare: bool = True  # also run a bilinear pipeline for the viewer's split compare
    extra: list[str] = field(default_factory=list)  # more models for the viewer's mode switch


@dataclass
class EncoderConfig:
    codecs: list[str] = field(default_factory=lambda: ["vp8", "h264"])
    default_codec: str = "vp8"  # what a viewer gets when it does not ask
    bitrate: int = 2_500_000  # bits per second
    max_fps: float = 60.0
    hardware: str = "auto"  # auto: h264_nvenc when PyAV has it and the device is a GPU; off
    keyframe_interval_s: float = 10.0  # periodic keyframe (also on viewer join and PLI)
    viewer_queue: int = 4  # packets buffered per viewer before it loses frames
    rtp_clock: str = "send"  # RTP timestamps from the send time (lowest latency) or "source"


@dataclass
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    source: SourceConfig = field(default_factory=SourceConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


_CHECKS = {
    "server.port": lambda v: 0 <= v <= 65535 or "must be 0..65535",
    "server.max_body_bytes": lambda v: 1024 <= v <= 16 * 1024 * 1024 or "must be 1 kB..16 MB",
    "server.max_viewers": lambda v: v >= 1 or "must be >= 1",
    "server.ice_consent_interval_s": lambda v: 0.2 <= v <= 60 or "must be 0.2..60",
    "server.ice_consent_failures": lambda v: 1 <= v <= 100 or "must be 1..100",
    "server.turn_servers": lambda v: (
        all(u.startswith(("turn:", "turns:")) for u in v) or "must be turn: or turns: URLs"
    ),
    "server.stun_servers": lambda v: (
        all(u.startswith(("stun:", "stuns:")) for u in v) or "must be stun: or stuns: URLs"
    ),
    "server.turn_ttl_s": lambda v: 60 <= v <= 7 * 86400 or "must be 60..604800",
    "server.ice_port_min": lambda v: v == 0 or 1024 <= v <= 65535 or "must be 0 or 1024..65535",
    "server.ice_port_max": lambda v: v == 0 or 1024 <= v <= 65535 or "must be 0 or 1024..65535",
    "server.ice_public_address": lambda v: _ipv4_or_empty(v) or "must be an IPv4 address or empty",
    "server.public_url": lambda v: (
        v == "" or v.startswith(("http://", "https://")) or "must start with http:// or https://"
    ),
    "server.adapter": lambda v: -1 <= v <= 64 or "must be -1 (auto) or an adapter index",
    "source.width": lambda v: 64 <= v <= 7680 or "must be 64..7680",
    "source.height": lambda v: 36 <= v <= 4320 or "must be 36..4320",
    "source.fps": lambda v: 1 <= v <= 240 or "must be 1..240",
    "source.uri": lambda v: bool(v.strip()) or "must not be empty",
    "model.mode": lambda v: (
        v in ("model", "bilinear", "bicubic", "bypass")
        or "must be one of model, bilinear, bicubic, bypass"
    ),
    "model.scale": lambda v: 1 <= v <= 8 or "must be 1..8",
    "model.precision": lambda v: v in ("fp32", "fp16") or "must be fp32 or fp16",
    "model.slots": lambda v: 1 <= v <= 8 or "must be 1..8",
    "encoder.codecs": lambda v: (
        (bool(v) and all(c in ("vp8", "h264") for c in v))
        or "must be a non-empty list of vp8, h264"
    ),
    "encoder.default_codec": lambda v: v in ("vp8", "h264") or "must be vp8 or h264",
    "encoder.bitrate": lambda v: 50_000 <= v <= 100_000_000 or "must be 50000..100000000",
    "encoder.max_fps": lambda v: 1 <= v <= 240 or "must be 1..240",
    "encoder.hardware": lambda v: v in ("auto", "off") or "must be auto or off",
    "encoder.keyframe_interval_s": lambda v: 0.5 <= v <= 3600 or "must be 0.5..3600",
    "encoder.viewer_queue": lambda v: 1 <= v <= 120 or "must be 1..120",
    "encoder.rtp_clock": lambda v: v in ("send", "source") or "must be send or source",
}


def _ipv4_or_empty(v: str) -> bool:
    if not v:
        return True
    try:
        return ipaddress.ip_address(v).version == 4
    except ValueError:
        return False


def _coerce(key: str, typ: Any, value: Any) -> Any:
    name = typ if isinstance(typ, str) else getattr(typ, "__name__", str(typ))
    if name == "bool":
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: must be true or false, got {value!r}")
    if name == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: must be an integer, got {value!r}")
    if name == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key}: must be a number, got {value!r}")
    if name == "str":
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: must be a string, got {value!r}")
    if name.startswith("list"):
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return list(value)
        raise ConfigError(f"{key}: must be a list of strings, got {value!r}")
    raise ConfigError(f"{key}: unsupported option type {name}")


def apply_section(target: Any, section: str, values: dict, origin: str) -> None:
    """Set a [section] table's keys on its dataclass, each type-checked; unknown keys refused."""
    known = {f.name: f for f in fields(target)}
    for key, value in values.items():
        full = f"{section}.{key}"
        if key not in known:
            raise ConfigError(
                f"{origin}: unknown key {full!r} (known in [{section}]: {', '.join(known)})"
            )
        setattr(target, key, _coerce(full, known[key].type, value))


def _apply(cfg: Config, data: dict, origin: str) -> None:
    sections = {f.name: f for f in fields(Config)}
    for section, values in data.items():
        if section not in sections:
            raise ConfigError(
                f"{origin}: unknown section [{section}] (known: {', '.join(sections)})"
            )
        if not isinstance(values, dict):
            raise ConfigError(f"{origin}: {section} must be a table, got {values!r}")
        apply_section(getattr(cfg, section), section, values, origin)


def validate(cfg: Config) -> Config:
    for key, check in _CHECKS.items():
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        ok = check(value)
        if ok is not True:
            raise ConfigError(f"{key}: {ok}, got {value!r}")
    srv = cfg.server
    if (srv.ice_port_min == 0) != (srv.ice_port_max == 0) or srv.ice_port_min > srv.ice_port_max:
        raise ConfigError(
            f"server.ice_port_max: the range {srv.ice_port_min}-{srv.ice_port_max} is not "
            "valid (set both, min <= max, or both 0)"
        )
    if srv.turn_servers and not (srv.turn_secret_file or srv.turn_username):
        raise ConfigError(
            "server.turn_servers: needs turn_username (+ turn_credential or "
            "turn_credential_file) or turn_secret_file"
        )
    if cfg.encoder.default_codec not in cfg.encoder.codecs:
        raise ConfigError(
            f"encoder.default_codec: {cfg.encoder.default_codec!r} is not in encoder.codecs "
            f"{cfg.encoder.codecs}"
        )
    return cfg


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file's contents, or a ConfigError saying why it cannot be read."""
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} not found") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None


def load(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults, then the TOML file (if any), then `overrides` ({"server.port": 9000})."""
    cfg = Config()
    if path is not None:
        p = Path(path)
        _apply(cfg, read_toml(p), str(p))
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        section, name = key.split(".")
        _apply(cfg, {section: {name: value}}, "command line")
    return validate(cfg)
