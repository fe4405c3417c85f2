"""`serve` configuration (configs/serve.toml), and the TOML + validation rules every command's
settings share.

Every option has a default here; a TOML file may set any subset. Validation is pydantic's, in
strict mode (a string is not a number, 1 is not true); its errors are rewritten to name the
key the way a reader of the TOML file sees it, e.g.
``encoder.bitrate: must be an integer, got 'fast'``. Command-line flags override the file.
"""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Mode = Literal["model", "bilinear", "bicubic", "planar", "edge", "bypass"]
Precision = Literal["fp32", "fp16"]
Codec = Literal["vp8", "h264"]
CODECS: tuple[Codec, ...] = ("vp8", "h264")


class ConfigError(ValueError):
    """A bad configuration file or value; the message names the key."""


class Section(BaseModel):
    """One [table] of a TOML file: unknown keys refused, types strict."""

    model_config = ConfigDict(extra="forbid", strict=True)

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump()


class ServerConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    max_body_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)  # SDP: a few kB
    max_viewers: int = Field(32, ge=1)
    ice_consent_interval_s: float = Field(1.0, ge=0.2, le=60)  # aioice default 5 s
    ice_consent_failures: int = Field(3, ge=1, le=100)  # aioice default 6: ~4 s, not ~30 s
    stun_servers: list[str] = Field(default_factory=list)
    static_dir: str = ""  # empty: the viewer page shipped in stream/static
    # deployment (stream/webrtc/ice.py, docker/): TURN, UDP port range, announced address
    turn_servers: list[str] = Field(default_factory=list)  # ["turn:host:3478?transport=udp"]
    turn_username: str = ""  # static TURN credentials (e.g. a TURN provider's account)
    turn_credential: str = ""  # inline: for trying only; prefer turn_credential_file
    turn_credential_file: str = ""  # file holding the credential (docker / k8s secret)
    turn_secret_file: str = ""  # coturn static-auth-secret: mint time-limited credentials
    turn_ttl_s: int = Field(3600, ge=60, le=7 * 86400)
    ice_port_min: int = 0  # UDP port range of ICE host candidates; 0, 0: ephemeral ports
    ice_port_max: int = 0
    ice_public_address: str = ""  # IPv4 announced (srflx) with each host candidate's port
    public_url: str = ""  # base of WHEP/WHIP Location headers; $VARS expanded ($POD_NAME)
    adapter: int = Field(-1, ge=-1, le=64)  # GPU adapter index; -1: the best one
    # RTP playout-delay [min, max] ms on video (webrtc/playout.py; 0/0 costs Chromium ~12 ms)
    playout_delay_ms: list[int] = Field(default_factory=lambda: [0, 100])  # []: not sent
    # HTTP hardening (stream/http.py)
    cors_origins: list[str] = Field(default_factory=list)  # other origins allowed to call
    body_timeout_s: float = Field(5.0, gt=0, le=120)  # a request body must arrive in this
    rate_limit_per_s: float = Field(5.0, gt=0)  # POST/PATCH/DELETE per client (token or address)
    rate_limit_burst: int = Field(20, ge=1)
    # GETs above public (/api/*, /metrics) and WebSocket upgrades, per token (or address)
    get_rate_limit_per_s: float = Field(20.0, gt=0)
    get_rate_limit_burst: int = Field(60, ge=1)
    max_sessions_per_token: int = Field(8, ge=1)  # WHEP + WHIP sessions one token holds
    # Host names this server answers to besides IP literals, localhost and public_url's host
    # (DNS rebinding: a name an attacker controls that resolves to this server is refused);
    # a leading dot allows a domain's subdomains (".example.com")
    allowed_hosts: list[str] = Field(default_factory=list)
    tls_cert: str = ""  # PEM certificate chain; with tls_key: serve HTTPS
    tls_key: str = ""
    tls_self_signed: bool = False  # a development certificate made at start (not for production)

    @property
    def adapter_index(self) -> int | None:
        """The adapter to ask infer for (None: the best one)."""
        return None if self.adapter < 0 else self.adapter

    @field_validator("playout_delay_ms")
    @classmethod
    def _playout_bounds(cls, v: list[int]) -> list[int]:
        if v and not (len(v) == 2 and 0 <= v[0] <= v[1] <= 40950):
            raise ValueError("playout_delay_ms is [] or [min, max] with 0 <= min <= max <= 40950")
        return v

    @field_validator("stun_servers")
    @classmethod
    def _stun(cls, v: list[str]) -> list[str]:
        if not all(u.startswith(("stun:", "stuns:")) for u in v):
            raise ValueError("must be stun: or stuns: URLs")
        return v

    @field_validator("turn_servers")
    @classmethod
    def _turn(cls, v: list[str]) -> list[str]:
        if not all(u.startswith(("turn:", "turns:")) for u in v):
            raise ValueError("must be turn: or turns: URLs")
        return v

    @field_validator("ice_port_min", "ice_port_max")
    @classmethod
    def _port(cls, v: int) -> int:
        if v != 0 and not 1024 <= v <= 65535:
            raise ValueError("must be 0 or 1024..65535")
        return v

    @field_validator("ice_public_address")
    @classmethod
    def _ipv4(cls, v: str) -> str:
        try:
            ok = not v or ipaddress.ip_address(v).version == 4
        except ValueError:
            ok = False
        if not ok:
            raise ValueError("must be an IPv4 address or empty")
        return v

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, v: list[str]) -> list[str]:
        for origin in v:
            scheme, _, rest = origin.partition("://")
            if scheme not in ("http", "https") or not rest or "/" in rest:
                raise ValueError(f"must be origins like https://example.com, not {origin!r}")
        return v

    @field_validator("public_url")
    @classmethod
    def _url(cls, v: str) -> str:
        if v and not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v

    @model_validator(mode="after")
    def _ranges(self) -> ServerConfig:
        lo, hi = self.ice_port_min, self.ice_port_max
        if (lo == 0) != (hi == 0) or lo > hi:
            raise ValueError(
                f"ice_port_max: the range {lo}-{hi} is not valid (set both, min <= max, or both 0)"
            )
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ValueError("tls_key: tls_cert and tls_key go together")
        if self.tls_self_signed and self.tls_cert:
            raise ValueError("tls_self_signed: either a certificate (tls_cert) or self-signed")
        if self.turn_servers and not (self.turn_secret_file or self.turn_username):
            raise ValueError(
                "turn_servers: needs turn_username (+ turn_credential or "
                "turn_credential_file) or turn_secret_file"
            )
        return self


class SourceConfig(Section):
    # "testsrc", "webrtc" (WHIP ingest), "x11:DISPLAY" (screen capture: "x11::1"; "x11" takes
    # $DISPLAY; player input is injected into that display), or a file / URL PyAV opens
    uri: str = "testsrc"
    width: int = Field(640, ge=64, le=7680)  # testsrc size, and the "no source" slate size
    height: int = Field(360, ge=36, le=4320)
    fps: float = Field(30.0, ge=1, le=240)  # testsrc and x11 capture rate; files keep theirs
    loop: bool = True  # loop files at EOF
    marker: bool = False  # stamp the frame-number marker on file / webrtc sources too
    # the largest frame a publisher may send (a bigger one ends that publisher's session)
    max_width: int = Field(3840, ge=64, le=16384)
    max_height: int = Field(2160, ge=36, le=16384)
    on_change: bool = True  # x11: grab when the screen changes (at most fps, at least 5/s)

    @field_validator("uri")
    @classmethod
    def _uri(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v


class ModelConfig(Section):
    path: str = "upscale.onnx"  # a file, or a bundled model's name
    mode: Mode = "model"
    scale: int = Field(2, ge=1, le=8)  # for the baseline modes (and when no model is loaded)
    precision: Precision = "fp32"
    slots: int = Field(2, ge=1, le=8)
    compare: bool = True  # also run a bilinear pipeline for the viewer's split compare
    extra: list[str] = Field(default_factory=list)  # more models for the mode switch
    plans: int = Field(4, ge=1, le=64)  # frame sizes kept compiled per pipeline (LRU)
    # where a viewer's picture is upscaled (stream/placement.py): the server's GPU, the
    # viewer's browser (WebGPU, the model's bundle), or the browser when it keeps up
    placement: Literal["server", "viewer", "auto"] = "server"
    # conv variants forced in the viewer's bundle (infer.export_webgpu kernels; [] = rule)
    web_kernels: list[str] = Field(default_factory=list, max_length=8)


class EncoderConfig(Section):
    codecs: list[Codec] = Field(default_factory=lambda: list(CODECS), min_length=1)
    default_codec: Codec = "vp8"  # what a viewer gets when it does not ask
    bitrate: int = Field(2_500_000, ge=50_000, le=100_000_000)  # bits per second
    max_fps: float = Field(60.0, ge=1, le=240)
    hardware: Literal["auto", "off"] = "auto"  # auto: h264_nvenc on a GPU when PyAV has it
    keyframe_interval_s: float = Field(10.0, ge=0.5, le=3600)  # also on viewer join and PLI
    # viewers' keyframe requests (PLI/FIR) honoured at most this often, whoever asks; those
    # inside it are merged into one keyframe at its end (stream/encode.py)
    min_keyframe_interval_s: float = Field(1.0, ge=0.1, le=60)
    viewer_queue: int = Field(4, ge=1, le=120)  # packets buffered per viewer
    rtp_clock: Literal["send", "source"] = "send"  # RTP time: send time (lowest latency)

    @model_validator(mode="after")
    def _default_served(self) -> EncoderConfig:
        if self.default_codec not in self.codecs:
            raise ValueError(
                f"default_codec: {self.default_codec!r} is not in encoder.codecs {self.codecs}"
            )
        return self


class AuthConfig(Section):
    """Bearer tokens (stream/auth.py). No secret_file: no auth, allowed on loopback only."""

    secret_file: str = ""  # the HMAC key of tokens (a Docker/k8s secret file)
    token_ttl_s: float = Field(3600.0, gt=0)  # lifetime of `python -m stream token` tokens
    max_token_ttl_s: float = Field(7 * 86400.0, gt=0)
    revoked_file: str = ""  # nonces of revoked tokens, a line each (`stream token --revoke`)

    @property
    def enabled(self) -> bool:
        return bool(self.secret_file)


class AdaptConfig(Section):
    """Dynamic resolution (stream/pipeline/adapt.py): the CNN's input scale follows the GPU's
    load so viewers keep the source's frame rate; the output size never changes."""

    enabled: bool = True
    floor: float = Field(0.25, ge=0.05, le=1.0)  # lowest input scale before falling back
    headroom: float = Field(0.1, ge=0.0, lt=0.9)  # of the frame budget, kept free
    # when even the floor is too slow: planar (bilinear on the Y'CbCr planes, no RGB: the
    # cheapest), bilinear or bicubic (through RGB, like the model)
    fallback: Literal["planar", "bilinear", "bicubic"] = "planar"
    ramp_up_s: float = Field(10.0, gt=0)  # low load this long before stepping up (doubles
    # after a step up that overloaded again, up to 240 s)


class BandwidthConfig(Section):
    """Per-viewer links (stream/bitrate.py): RTCP-based estimates, the shared encoders'
    bitrate policy and VP8 temporal layers."""

    enabled: bool = True
    layers: bool = True  # VP8 in 3 temporal layers; a slow viewer gets fewer of them
    min_bitrate: int = Field(300_000, ge=50_000, le=100_000_000)  # the policy's floor
    percentile: float = Field(75.0, ge=0, le=100)  # of viewers' estimates, with no player
    hold_s: float = Field(2.0, gt=0, le=60)  # quiet link this long: try the next layer up
    max_hold_s: float = Field(6.0, gt=0, le=300)  # the hold doubles after a failed step up


class InputConfig(Section):
    """Players' input (stream/input): who drives the game and how keys map (issue 14), and
    what a player may reach (issue 25, stream/input/policy.py): on a desktop display, input
    without a policy is the desktop's."""

    control: Literal["single", "shared"] = "single"  # one controlling player, or all at once
    auto_take: bool = True  # nobody in control: the first player's input takes it
    keymap: Literal["keysym", "evdev"] = "keysym"  # evdev: physical keys on non-US servers
    # the pointer confined to one window: an X window id ("0x1e00004") or a substring of its
    # title (_NET_WM_NAME / WM_NAME); "": the whole display (one that holds only the game)
    window: str = ""
    keys: list[str] = Field(default_factory=list)  # when set, only these keys ("KeyW", "Space")
    # chords re-allowed out of the blocked ones (Super, Ctrl+Alt+*, Alt+F*, Alt+Tab, Print...)
    allow_chords: list[str] = Field(default_factory=list)  # e.g. ["Alt+F4", "Ctrl+Alt+T"]
    unicode: bool = False  # characters not on the keymap typed by remapping a spare keycode

    @field_validator("keys")
    @classmethod
    def _keys(cls, v: list[str]) -> list[str]:
        from .input.policy import key_token  # the key names are the input package's

        for text in v:
            key_token(text)  # PolicyError (a ValueError) names the bad entry
        return v

    @field_validator("allow_chords")
    @classmethod
    def _chords(cls, v: list[str]) -> list[str]:
        from .input.policy import parse_chord

        for text in v:
            parse_chord(text)
        return v

    # issue 26, stream/input/gamepad.py: pads as keys (XTEST, the policy above applies), as
    # virtual Xbox 360 pads (uinput), "auto" (uinput where /dev/uinput is writable) or "off"
    gamepad: Literal["auto", "uinput", "keys", "off"] = "auto"
    # [input.gamepad_keys]: a pad control ("a", "start", "ls_left", or a button index "0".."16")
    # -> a DOM code ("KeyZ"), "" unmaps it; over the default profile (gamepad.DEFAULT_KEYS)
    gamepad_keys: dict[str, str] = Field(default_factory=dict)
    # text clipboard both ways for the controlling player (stream/input/clipboard.py)
    clipboard: bool = False
    clipboard_max_bytes: int = Field(2048, ge=1, le=3000)  # UTF-8; a message is <= 4 KiB

    @field_validator("gamepad_keys")
    @classmethod
    def _gamepad_keys(cls, v: dict[str, str]) -> dict[str, str]:
        from .input.gamepad import key_profile

        key_profile(v)  # ValueError names the bad entry
        return v


# -- push sinks (issue 18: stream/sinks/) ---------------------------------------------------


class PushConfig(Section):
    """Push the processed stream on (stream/sinks/): rtmp://, srt://, rtp://, whip+http(s)://,
    each from the shared encoder of its codec (no encode per sink)."""

    urls: list[str] = Field(default_factory=list)  # $VARS expanded at start (stream keys)
    codec: Codec = "h264"  # of rtp:// and whip+ pushes (rtmp:// and srt:// carry H.264)
    whip_token: str = ""  # bearer token of whip+ pushes, inline: for trying only
    whip_token_file: str = ""  # a file holding it (a Docker/k8s secret)
    sdp_dir: str = ""  # rtp:// pushes write push-<n>.sdp here ("": a temporary folder)
    queue: int = Field(150, ge=8, le=10000)  # packets (video and audio) queued per sink
    keyframe_interval_s: float = Field(2.0, ge=0.5, le=60)  # of an encoder feeding a sink
    backoff_max_s: float = Field(10.0, ge=0.5, le=600)  # reconnect delays double up to this
    connect_timeout_s: float = Field(5.0, gt=0, le=120)
    send_timeout_s: float = Field(5.0, gt=0, le=120)  # an SRT send blocked this long fails

    @model_validator(mode="after")
    def _targets(self) -> PushConfig:
        from .sinks.targets import TargetError, parse

        for i, url in enumerate(self.urls):
            try:
                parse(url, i)
            except TargetError as e:  # the message shows the URL redacted
                raise ValueError(f"urls: [{i}] {e}") from None
        if self.whip_token and self.whip_token_file:
            raise ValueError("whip_token: give whip_token or whip_token_file, not both")
        return self


# -- end of push sinks ---------------------------------------------------------------------


# -- game audio (issue 26: stream/audio/) -------------------------------------------------


class AudioConfig(Section):
    """Game sound to WHEP viewers (stream/audio/): captured once, Opus encoded once."""

    # "auto": pulse for an x11 source when a PulseAudio server answers, a WHIP publisher's
    # own Opus for a webrtc source (passed on: stream/audio/relay.py), else none; "pulse":
    # the default sink's monitor on $PULSE_SERVER (or the default server); "pulse:NAME" a
    # named source ("game.monitor"); "none"; "beep": a test tone on every flash of testsrc
    source: str = "auto"
    bitrate: int = Field(96_000, ge=16_000, le=510_000)  # Opus, bits per second
    sync: bool = True  # hold the audio by the video's source-to-sent latency (lip sync)
    offset_ms: float = Field(0.0, ge=-500, le=500)  # added to that hold (+: audio later)
    queue: int = Field(50, ge=5, le=500)  # 20 ms packets held per viewer (newest win)

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        from .audio.spec import parse  # the spec's grammar is the audio package's

        parse(v)  # a ValueError names what is accepted
        return v


# -- end of game audio --------------------------------------------------------------------


# -- rooms (issue 31: stream/service.py, stream/room.py) -----------------------------------


class RoomConfig(Section):
    """One room ([[rooms]], `serve --room NAME=SOURCE`): its own source, viewers, players
    and tokens; what it leaves unset comes from the top-level [source], [model] and [audio]."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")  # its URLs: /rooms/NAME/
    source: str  # as [source] uri
    width: int | None = Field(None, ge=64, le=7680)
    height: int | None = Field(None, ge=36, le=4320)
    fps: float | None = Field(None, ge=1, le=240)
    mode: Mode | None = None
    model: str | None = None  # a model file or bundled name (loaded once per path)
    audio: str | None = None  # as [audio] source
    max_viewers: int | None = Field(None, ge=1)  # else server.max_viewers

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        return SourceConfig._uri(v)

    @field_validator("audio")
    @classmethod
    def _audio(cls, v: str | None) -> str | None:
        return v if v is None else AudioConfig._source(v)


# -- end of rooms ---------------------------------------------------------------------------


class Config(Section):
    server: ServerConfig = Field(default_factory=ServerConfig)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    source: SourceConfig = Field(default_factory=SourceConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    adapt: AdaptConfig = Field(default_factory=AdaptConfig)
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    bandwidth: BandwidthConfig = Field(default_factory=BandwidthConfig)
    input: InputConfig = Field(default_factory=InputConfig)
    push: PushConfig = Field(default_factory=PushConfig)
    audio: AudioConfig = Field(default_factory=AudioConfig)
    rooms: list[RoomConfig] = Field(default_factory=list)  # none: one room, today's routes

    @field_validator("rooms")
    @classmethod
    def _rooms(cls, v: list[RoomConfig]) -> list[RoomConfig]:
        names = [r.name for r in v]
        if len(set(names)) != len(names):
            raise ValueError(f"room names must differ: {names}")
        return v


# -- reading, validating and writing TOML ------------------------------------------------------

S = TypeVar("S", bound=Section)

_TYPES = {
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
}
_BOUNDS = {
    "greater_than_equal": ">=",
    "less_than_equal": "<=",
    "greater_than": ">",
    "less_than": "<",
}


def _explain(err: Any, cls: type[Section], origin: str, section: str = "") -> str:
    """One pydantic error as a reader of the TOML file needs it: the dotted key first."""
    inner = [str(p) for p in err["loc"] if not isinstance(p, int)]
    loc = [section, *inner] if section else inner
    key = ".".join(loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        owner = _model_at(cls, inner[:-1])
        known = ", ".join(owner.model_fields) if owner is not None else ""
        if len(loc) == 1 and _is_table_file(cls):
            return f"{origin}: unknown section [{key}] (known: {known})"
        return f"{origin}: unknown key {key!r} (known in [{'.'.join(loc[:-1])}]: {known})"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{origin}: {key} must be a table, got {err['input']!r}"
    got = f", got {err['input']!r}" if "input" in err and not isinstance(err["input"], dict) else ""
    if kind in _TYPES:
        return f"{key}: {_TYPES[kind]}{got}"
    if kind in _BOUNDS:
        (limit,) = err["ctx"].values()
        return f"{key}: must be {_BOUNDS[kind]} {limit}{got}"
    if kind == "literal_error":
        return f"{key}: must be {err['ctx']['expected']}{got}"
    if kind == "value_error":
        msg = str(err["ctx"]["error"])
        # a model validator names its own field first ("ice_port_max: the range ...")
        head, _, rest = msg.partition(": ")
        if rest and " " not in head:
            return f"{'.'.join([*loc, head])}: {rest}"
        return f"{key}: {msg}{got}"
    return f"{key}: {err['msg'].replace('Input should be', 'must be')}{got}"


def _model_at(cls: type[Section], path: list[str]) -> type[Section] | None:
    for name in path:
        field = cls.model_fields.get(name)
        ann = field.annotation if field is not None else None
        if not (isinstance(ann, type) and issubclass(ann, Section)):
            return None
        cls = ann
    return cls


def _is_table_file(cls: type[Section]) -> bool:
    """A model whose fields are all tables (a whole file: [server], [source], ...) or arrays
    of tables ([[rooms]])."""

    def table_list(name: str) -> bool:
        args = get_args(cls.model_fields[name].annotation)
        return bool(args) and isinstance(args[0], type) and issubclass(args[0], Section)

    return all(_model_at(cls, [name]) is not None or table_list(name) for name in cls.model_fields)


def validate_as(cls: type[S], data: dict[str, Any], origin: str, section: str = "") -> S:
    """`data` as a `cls`, or a ConfigError naming the first bad key (`section.key` when the
    data is one table of a file)."""
    try:
        return cls.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_explain(e.errors()[0], cls, origin, section)) from None


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file's contents, or a ConfigError saying why it cannot be read."""
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} not found") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None


def write_toml(data: dict[str, Any], path: Path) -> Path:
    """Write a config for another process (the soak's and bench's `serve`)."""
    path.write_text(tomli_w.dumps(data))
    return path


def load(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults, then the TOML file (if any), then `overrides` ({"server.port": 9000})."""
    data = read_toml(Path(path)) if path is not None else {}
    cfg = validate_as(Config, data, str(path))
    if not any(v is not None for v in (overrides or {}).values()):
        return cfg
    merged = cfg.model_dump()
    for key, value in (overrides or {}).items():
        if value is not None:
            section, name = key.split(".")
            merged[section][name] = value
    return validate_as(Config, merged, "command line")


def load_section(cls: type[S], section: str, path: str | Path | None = None) -> S:
    """The `[section]` of a file that holds that one table (configs/process.toml, soak.toml)."""
    if path is None:
        return cls()
    p = Path(path)
    data = read_toml(p)
    unknown = sorted(set(data) - {section})
    if unknown:
        raise ConfigError(f"{p}: unknown section [{unknown[0]}] (this file holds [{section}] only)")
    values = data.get(section, {})
    if not isinstance(values, dict):
        raise ConfigError(f"{p}: {section} must be a table")
    return validate_as(cls, values, str(p), section)


def override(
    settings: S, values: dict[str, Any], section: str = "", origin: str = "command line"
) -> S:
    """`settings` with the non-None `values` applied and validated again."""
    given = {k: v for k, v in values.items() if v is not None}
    if not given:
        return settings
    return validate_as(type(settings), {**settings.model_dump(), **given}, origin, section)
