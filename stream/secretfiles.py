"""Secret files the service reads (TURN's static-auth-secret, the tokens' HMAC key) checked
for the values that examples and templates ship: a secret everyone has read in
docker/env.example or a tutorial is no secret, so the service refuses to start on one
instead of minting TURN credentials or tokens anybody can forge."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import Config

# compared case-insensitively, after stripping whitespace and quotes
PLACEHOLDERS = frozenset(
    {
        "change-me",
        "change-me-too",
        "changeme",
        "change_me",
        "changeit",
        "secret",
        "password",
        "turn_secret",
        "auth_secret",
        "your-secret",
        "your-secret-here",
        "replace-me",
        "todo",
        "example",
        "xxx",
    }
)


def is_placeholder(value: str) -> bool:
    """One of PLACEHOLDERS, or one repeated (change-mechange-me... passes a length check)."""
    v = value.strip().strip("\"'").lower()
    return any(v and len(v) % len(p) == 0 and v == p * (len(v) // len(p)) for p in PLACEHOLDERS)


def read_secret(path: str, key: str) -> str:
    """The secret in `path`, stripped; ValueError naming `key` when it cannot be read, is
    empty or is a known placeholder."""
    try:
        # a binary key (the tokens' HMAC key may be raw random bytes) is compared as text too
        value = Path(path).read_bytes().decode("utf-8", "replace").strip()
    except OSError as e:
        raise ValueError(f"{key}: cannot read {path!r} ({e.strerror})") from None
    if not value:
        raise ValueError(f"{key}: {path!r} is empty")
    if is_placeholder(value):
        raise ValueError(
            f"{key}: {path!r} holds the placeholder {value!r}, which everyone who read the "
            f"examples knows: put a real secret there (e.g. `openssl rand -hex 32 > {path}`)"
        )
    return value


def check(cfg: Config) -> None:
    """Refuse to start (ValueError) on a secret file of the config that holds a placeholder."""
    files = {
        "auth.secret_file": cfg.auth.secret_file,
        "server.turn_secret_file": cfg.server.turn_secret_file,
        "server.turn_credential_file": cfg.server.turn_credential_file,
    }
    for key, path in files.items():
        if path:
            read_secret(path, key)
