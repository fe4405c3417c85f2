"""URLs as logs and stats may show them: the host and port, never the credentials.

Sources (stream/sources/file.py) and push sinks (stream/sinks/targets.py) each decide what else
of a URL is secret (a query, an RTMP stream key); the authority is judged the same for both.
"""

from __future__ import annotations

from urllib.parse import SplitResult


def public_netloc(parts: SplitResult) -> str:
    """`host[:port]` of a URL, `***@host[:port]` where it carried a user or password."""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:  # a port that is no number: leave it out rather than fail a log line
        port = None
    if port:
        host = f"{host}:{port}"
    return f"***@{host}" if (parts.username or parts.password) else host
