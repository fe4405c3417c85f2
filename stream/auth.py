"""Who may do what: roles, their rights, and the signed bearer tokens that carry a role.

Roles (RFC 9725 leaves the token format to the server):
  viewer     watch (WHEP)
  player     watch, and send input to the game
  publisher  publish (WHIP), and read the players' input (GET /api/input)
  admin      everything: mode switch, /api/stats, /metrics, ending any session

A token is ``fs1.<payload>.<mac>``: the payload is base64url JSON ``{"r": role, "exp": unix
seconds, "n": 128-bit nonce, "rm": [room names]}`` ("rm" only in a token for some rooms:
``--room NAME``, repeatable; without it a token reaches every room) and the mac is HMAC-SHA256
over ``fs1.<payload>`` keyed by the server secret ([auth] secret_file). The nonce names the
token: a session remembers the nonce of the token that created it, so only that token (or an
admin's) may end it, rate limits and the session cap count per token, and a token is revoked by
listing its nonce in [auth] revoked_file (``python -m stream token --config FILE --revoke
TOKEN``; the server rereads the file when it changes and ends the token's sessions). Tokens are
minted by ``python -m stream token --config FILE --role ROLE``; a session or WebSocket ends
when the token that opened it expires.

With no [auth] section a server bound to loopback is open (a developer's own machine: every
caller holds every right); bound to any other address it refuses to start unless told
``--insecure-open`` (serve.py).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PREFIX = "fs1"
MAX_TOKEN_CHARS = 512
MIN_SECRET_BYTES = 16
ROOM_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")  # as config.RoomConfig's


class Role(StrEnum):
    VIEWER = "viewer"
    PLAYER = "player"
    PUBLISHER = "publisher"
    ADMIN = "admin"


class Right(StrEnum):
    PUBLIC = "public"  # the pages, static files, /healthz: no token needed
    WATCH = "watch"  # POST /whep
    PLAY = "play"  # input events on the data channel
    PUBLISH = "publish"  # POST /whip, GET /api/input
    SESSION = "session"  # GET /api/ice, DELETE of one's own session: any valid token
    ADMIN = "admin"  # /api/stats, /metrics, /api/mode, DELETE of anyone's session


RIGHTS: dict[Role, frozenset[Right]] = {
    Role.VIEWER: frozenset({Right.WATCH, Right.SESSION}),
    Role.PLAYER: frozenset({Right.WATCH, Right.PLAY, Right.SESSION}),
    Role.PUBLISHER: frozenset({Right.PUBLISH, Right.SESSION}),
    Role.ADMIN: frozenset(Right),
}


class AuthError(Exception):
    """A token that proves nothing: missing, malformed, forged or expired (HTTP 401)."""


@dataclass(frozen=True)
class Grant:
    """What a request may do: its role, the token's nonce, when it expires, and the rooms it
    reaches (None: every room)."""

    role: Role
    nonce: str
    expires: float
    rooms: frozenset[str] | None = None

    def reaches(self, room: str) -> bool:
        return self.rooms is None or room in self.rooms

    def may(self, right: Right) -> bool:
        return right is Right.PUBLIC or right in RIGHTS[self.role]

    def owns(self, owner: str) -> bool:
        """May end the session created by the token with nonce `owner`."""
        return self.role is Role.ADMIN or hmac.compare_digest(self.nonce, owner)


OPEN = Grant(Role.ADMIN, "open", float("inf"))  # an open (loopback, no [auth]) server


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenAuthority:
    """Mints and checks tokens with one server secret."""

    def __init__(
        self, secret: bytes, max_ttl_s: float = 7 * 86400, revoked: Revocations | None = None
    ) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the auth secret must be at least {MIN_SECRET_BYTES} bytes")
        self._key = secret
        self.max_ttl_s = max_ttl_s
        self.revoked = revoked or Revocations("")

    @classmethod
    def from_file(
        cls, path: str | Path, max_ttl_s: float = 7 * 86400, revoked_file: str = ""
    ) -> TokenAuthority:
        try:
            secret = Path(path).read_bytes().strip()
        except OSError as e:
            raise ValueError(
                f"auth.secret_file: cannot read {str(path)!r} ({e.strerror})"
            ) from None
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(
                f"auth.secret_file: {str(path)!r} holds {len(secret)} bytes; use at least "
                f"{MIN_SECRET_BYTES} (e.g. `openssl rand -hex 32 > {path}`)"
            )
        return cls(secret, max_ttl_s, Revocations(revoked_file))

    def _mac(self, signed: str) -> str:
        return _b64(hmac.new(self._key, signed.encode(), hashlib.sha256).digest())

    def mint(
        self,
        role: Role,
        ttl_s: float,
        now: float | None = None,
        rooms: Iterable[str] | None = None,
    ) -> str:
        """A token for `role`; `rooms`: the rooms it reaches (None or empty: every room)."""
        if not 0 < ttl_s <= self.max_ttl_s:
            raise ValueError(f"ttl must be 0..{self.max_ttl_s:g} s, not {ttl_s:g}")
        exp = int((time.time() if now is None else now) + ttl_s)
        body: dict[str, Any] = {"r": str(role), "exp": exp, "n": secrets.token_hex(16)}
        names = sorted(set(rooms or ()))
        if names:
            if not all(ROOM_NAME.fullmatch(n) for n in names):
                raise ValueError(f"room names are [a-z0-9][a-z0-9_-]{{0,31}}, not {names}")
            body["rm"] = names
        payload = _b64(json.dumps(body, separators=(",", ":")).encode())
        signed = f"{PREFIX}.{payload}"
        return f"{signed}.{self._mac(signed)}"

    def verify(self, token: str, now: float | None = None) -> Grant:
        # a header's non-ASCII text would reach compare_digest (TypeError: a 500), not a 401
        if len(token) > MAX_TOKEN_CHARS or token.count(".") != 2 or not token.isascii():
            raise AuthError("malformed token")
        prefix, payload, mac = token.split(".")
        if prefix != PREFIX:
            raise AuthError("malformed token")
        if not hmac.compare_digest(mac, self._mac(f"{prefix}.{payload}")):
            raise AuthError("invalid token")
        try:
            body = json.loads(_unb64(payload))
            rooms = body.get("rm")
            if rooms is not None and not (
                isinstance(rooms, list) and rooms and all(isinstance(r, str) for r in rooms)
            ):
                raise ValueError("rm")
            grant = Grant(
                Role(body["r"]),
                str(body["n"]),
                float(body["exp"]),
                None if rooms is None else frozenset(rooms),
            )
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise AuthError("malformed token") from None
        if grant.expires <= (time.time() if now is None else now):
            raise AuthError("token expired")
        if self.revoked.has(grant.nonce):
            raise AuthError("token revoked")
        return grant

    def nonce_of(self, token: str) -> str:
        """The nonce of a token this authority signed (expired ones too: revoking one that
        has run out is harmless); AuthError for anything else."""
        return self.verify(token, now=0).nonce


class Revocations:
    """The nonces of revoked tokens, one a line in a file ([auth] revoked_file), reread when
    the file changes: a leaked token stops working without rotating the secret (which would
    end every token). A missing file revokes nothing; an unreadable one is logged and keeps
    the last list rather than let revoked tokens back in."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.nonces: frozenset[str] = frozenset()
        self._stamp: tuple[int, int] | None = None

    def reload(self) -> bool:
        """Reread the file if it changed; True when the list changed."""
        if not self.path:
            return False
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            stamp, nonces = None, frozenset[str]()
        else:
            stamp = (st.st_mtime_ns, st.st_size)
            if stamp == self._stamp:
                return False
            try:
                text = Path(self.path).read_text(encoding="ascii", errors="replace")
            except OSError as e:
                log.error("auth.revoked_file: cannot read %r (%s)", self.path, e.strerror)
                return False
            nonces = frozenset(w for line in text.splitlines() if (w := line.split("#")[0].strip()))
        self._stamp = stamp
        changed = nonces != self.nonces
        self.nonces = nonces
        return changed

    def has(self, nonce: str) -> bool:
        self.reload()
        return nonce in self.nonces


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (None when there is none)."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


# -- python -m stream token ---------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    from .config import ConfigError, load

    ap = argparse.ArgumentParser(
        prog="python -m stream token",
        description="Mint a bearer token for a serve config's [auth] secret. The token alone "
        "goes to stdout: pass it as `Authorization: Bearer <token>`, or open the viewer page "
        "as http://host:port/#token=<token>.",
    )
    ap.add_argument("--config", required=True, help="the serve config (its [auth] secret_file)")
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--role", choices=[str(r) for r in Role])
    what.add_argument(
        "--revoke",
        metavar="TOKEN_FILE",
        help="revoke the token held in this file ('-': read it from stdin): its nonce is "
        "added to [auth] revoked_file; a running server ends its sessions within seconds",
    )
    ap.add_argument("--ttl", type=float, help="lifetime in seconds (default: [auth] token_ttl_s)")
    ap.add_argument(
        "--room",
        action="append",
        metavar="NAME",
        help="the token reaches this room only (repeatable; default: every room); in "
        "another room it gets 403",
    )
    args = ap.parse_args(argv)
    try:
        cfg = load(args.config)
        if not cfg.auth.secret_file:
            raise ConfigError(f"{args.config}: no [auth] secret_file: this server is open")
        authority = TokenAuthority.from_file(cfg.auth.secret_file, cfg.auth.max_token_ttl_s)
        if args.revoke is not None:
            return _revoke(authority, cfg.auth.revoked_file, args.revoke)
        token = authority.mint(Role(args.role), args.ttl or cfg.auth.token_ttl_s, rooms=args.room)
    except (ConfigError, ValueError, AuthError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(token)
    return 0


def _revoke(authority: TokenAuthority, revoked_file: str, source: str) -> int:
    from .config import ConfigError

    """Append the nonce of the token in `source` to the revocation list (never the token
    itself: the list is no store of credentials)."""
    if not revoked_file:
        raise ConfigError("no [auth] revoked_file: set one to revoke tokens")
    text = sys.stdin.read() if source == "-" else Path(source).read_text()
    nonce = authority.nonce_of(text.strip())
    with open(revoked_file, "a", encoding="ascii") as f:
        f.write(f"{nonce}\n")
    print(f"revoked token {nonce}", file=sys.stderr)
    return 0
