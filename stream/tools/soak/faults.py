"""The faults a soak injects, one function each, registered by name in FAULTS.

- leave:     a viewer goes without DELETE (alternately: pc.close(), and its sockets
             vanishing like a killed tab), and rejoins as a new session `rejoin_s` later
             (the runner's churn, every `churn_s`);
- slow:      a viewer's track reader stalls for `stall_s`;
- lossy:     a viewer loses `loss` of its RTP packets for `loss_s` (NACK/PLI storm); like a
             browser, a viewer waits at most `viewer_max_wait_s` for a lost packet before it
             skips to the next frame and asks for a keyframe (jitter.py);
- bandwidth: a viewer's receive path is capped (a token bucket with a 200 ms queue) for
             `bandwidth_s`: on fewer VP8 temporal layers it must keep a moving picture while
             the others keep the whole stream, and be back on every layer soon after (the
             verdict's bandwidth_* checks);
- malformed: a burst of hostile requests (bad SDP, wrong content type, oversize body,
             unknown session DELETE, ...): each must get a 4xx;
- abuse:     what an attacker who reaches the port tries (the server must run with auth):
             no, forged and expired tokens; a viewer's token publishing, reading stats and
             ending another viewer's session; oversize, chunked-oversize and never-finished
             bodies; a foreign-origin preflight; a flood from one token. Each must get a
             4xx (401, 403, 408, 413, 429) while the authorised viewers keep their latency
             and frame rate (the verdict judges both).
- publisher: (server with `--source webrtc`) the soak's WHIP publisher vanishes and
             reconnects.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp

from ...auth import Role
from .records import Fault
from .viewer import SDP

if TYPE_CHECKING:
    from .runner import Soak

log = logging.getLogger("stream.soak")

FaultFn = Callable[["Soak"], Awaitable[Fault | None]]


async def leave(run: Soak) -> Fault | None:
    v = run.target()
    if v is None:
        return None
    run.leaves += 1
    mode = "close" if run.leaves % 2 else "vanish"
    t0 = run.now()
    log.info("fault: viewer %s leaves (%s, no DELETE)", v.name, mode)
    await v.leave(mode)
    await asyncio.sleep(run.opts.rejoin_s)
    nv = await run.join()
    detail = {"mode": mode, "rejoined_as": nv.name}
    return Fault("leave", v.name, round(t0, 3), round(run.now(), 3), detail)


async def slow(run: Soak) -> Fault | None:
    v = run.target()
    if v is None:
        return None
    t0 = run.now()
    log.info("fault: viewer %s stalls its reader for %.1f s", v.name, run.opts.stall_s)
    v.stall_until = time.time() + run.opts.stall_s
    return Fault("slow", v.name, round(t0, 3), round(t0 + run.opts.stall_s, 3))


async def lossy(run: Soak) -> Fault | None:
    v = run.target()
    if v is None:
        return None
    t0 = run.now()
    opts = run.opts
    log.info(
        "fault: viewer %s loses %.0f%% of RTP for %.1f s", v.name, opts.loss * 100, opts.loss_s
    )
    v.loss = opts.loss
    v.loss_until = time.time() + opts.loss_s
    return Fault("lossy", v.name, round(t0, 3), round(t0 + opts.loss_s, 3), {"loss": opts.loss})


async def bandwidth(run: Soak) -> Fault | None:
    opts = run.opts
    v = run.target()
    if v is None:
        return None
    t0 = run.now()
    if opts.codec != "vp8":
        return Fault("bandwidth", v.name, t0, t0, skipped="temporal layers are VP8's only")
    layers = run.layer_kbps()
    kbps = opts.bandwidth_kbps or (
        (layers[1] + layers[2]) / 2 * 1.05 if layers and len(layers) == 3 else 0.0
    )
    if not kbps:
        return Fault("bandwidth", v.name, t0, t0, skipped="no layer rates in /api/stats yet")
    log.info("fault: viewer %s capped at %.0f kbit/s for %.1f s", v.name, kbps, opts.bandwidth_s)
    v.shaper.cap(kbps, until=time.monotonic() + opts.bandwidth_s)
    detail = {"kbps": round(kbps, 1), "layer_kbps": layers, "session": v.session}
    return Fault("bandwidth", v.name, round(t0, 3), round(t0 + opts.bandwidth_s, 3), detail)


async def publisher(run: Soak) -> Fault | None:
    if run.publisher is None:
        return None
    t0 = run.now()
    log.info("fault: the publisher vanishes and reconnects after %.1f s", run.opts.rejoin_s)
    await run.publisher.close(delete=False)
    await asyncio.sleep(run.opts.rejoin_s)
    await run.publisher.connect()
    # every viewer waits for the new publisher's first frames: a fault for all of them
    return Fault("publisher", None, round(t0, 3), round(run.now() + 2.0, 3))


GOOD_SDP_HEAD = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
MALFORMED: list[tuple[str, str, str | None, str | None]] = [
    ("POST", "/whep", SDP, "hello"),  # not SDP
    ("POST", "/whep", SDP, GOOD_SDP_HEAD),  # SDP with no m= lines
    ("POST", "/whep", "text/plain", GOOD_SDP_HEAD),  # wrong content type
    ("POST", "/whep", "application/json", '{"sdp": 1}'),
    ("POST", "/whep", SDP, "v=0\r\n" + "a=x\r\n" * ((1 << 20) // 5)),  # oversize
    ("POST", "/whep?codec=av1", SDP, GOOD_SDP_HEAD),
    ("POST", "/whep", SDP, "v=0\r\n\xff\xfe garbage"),
    ("DELETE", "/whep/0123456789abcdef", None, None),  # unknown session
    ("DELETE", "/whip/nope", None, None),
    ("PATCH", "/whep/nope", "application/trickle-ice-sdpfrag", "a=candidate:1"),
    ("POST", "/whip", SDP, "nonsense"),
    ("POST", "/api/mode", "application/json", "{not json"),
    ("POST", "/api/mode", "application/json", '{"mode": "warp"}'),
    ("GET", "/whep", None, None),
]


async def malformed(run: Soak) -> Fault | None:
    t0 = run.now()
    log.info("fault: a burst of %d malformed requests", len(MALFORMED) * 3)

    async def one(
        http: aiohttp.ClientSession, method: str, path: str, ctype: str | None, body: str | None
    ) -> dict[str, Any]:
        # a valid token each, so the request reaches the parsers (and its own rate limit)
        headers = run.headers(run.token(Role.ADMIN), **({"Content-Type": ctype} if ctype else {}))
        data = body.encode("utf-8", "surrogateescape") if body is not None else None
        try:
            async with http.request(method, run.base + path, data=data, headers=headers) as r:
                await r.read()
                return {"method": method, "path": path, "status": r.status}
        except Exception as e:  # noqa: BLE001 - the answer is what is judged
            return {
                "method": method,
                "path": path,
                "status": None,
                "error": f"{type(e).__name__}: {e}",
            }

    # a session of its own that closes every connection: keep-alive sockets would
    # otherwise sit in the server's fd count and read as a leak
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(force_close=True),
        timeout=aiohttp.ClientTimeout(total=10),
    ) as http:
        answers = await asyncio.gather(*(one(http, *c) for _ in range(3) for c in MALFORMED))
    for a in answers:
        a["t"] = round(t0, 3)
    run.requests += answers
    ok = all(a["status"] is not None and 400 <= a["status"] < 500 for a in answers)
    detail = {"global": False, "requests": len(answers), "all_4xx": ok}
    return Fault("malformed", None, round(t0, 3), round(run.now(), 3), detail)


async def abuse(run: Soak) -> Fault | None:
    if run.authority is None and not run.opts.token:
        return Fault("abuse", None, 0.0, 0.0, skipped="the server is open (no auth to abuse)")
    t0 = run.now()
    base = run.base
    offer = GOOD_SDP_HEAD + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n"
    viewer = run.token(Role.VIEWER)  # valid, but of a role that may only watch
    forged = viewer[:-4] + ("AAAA" if not viewer.endswith("AAAA") else "BBBB")
    expired = (
        run.authority.mint(Role.ADMIN, 1, now=time.time() - 60) if run.authority else "fs1.a.b"
    )
    victim = next((v.location for v in run.present if v.location), "/whep/" + "0" * 32)
    sdp = {"Content-Type": SDP}
    big = "v=0\r\n" + "a=x\r\n" * (1 << 17)  # far over server.max_body_bytes
    cases: list[tuple[str, str, str, dict[str, str], Any]] = [
        ("no token", "POST", "/whep", sdp, offer),
        ("forged token", "POST", "/whep", run.headers(forged, **sdp), offer),
        ("expired token", "POST", "/whep", run.headers(expired, **sdp), offer),
        ("viewer publishes", "POST", "/whip", run.headers(viewer, **sdp), offer),
        ("viewer reads stats", "GET", "/api/stats", run.headers(viewer), None),
        ("viewer ends another's session", "DELETE", victim, run.headers(viewer), None),
        ("oversize body", "POST", "/whep", run.headers(run.token(Role.VIEWER), **sdp), big),
        ("chunked oversize", "POST", "/whep", run.headers(run.token(Role.VIEWER), **sdp),
         _chunks(big)),
        ("foreign preflight", "OPTIONS", "/whep",
         {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}, None),
    ]  # fmt: skip
    flood = run.token(Role.VIEWER)
    cases += [("flood", "POST", "/whep", run.headers(flood, **sdp), "v=0") for _ in range(60)]
    log.info("fault: abuse (%d requests and a body that never comes)", len(cases) + 1)
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(force_close=True),
        timeout=aiohttp.ClientTimeout(total=15),
    ) as http:

        async def one(
            label: str, method: str, path: str, headers: dict[str, str], body: Any
        ) -> dict[str, Any]:
            url = path if path.startswith("http") else base + path
            try:
                async with http.request(method, url, data=body, headers=headers) as r:
                    await r.read()
                    return {"abuse": label, "method": method, "status": r.status}
            except Exception as e:  # noqa: BLE001 - the answer is what is judged
                return {
                    "abuse": label,
                    "method": method,
                    "status": None,
                    "error": f"{type(e).__name__}: {e}",
                }

        # the slow body has a token of its own: on the flood's, the limiter may answer 429
        # before the body is waited for, and the 408 would go unproved
        slow_body = _slow_body(base, sdp, run.token(Role.VIEWER))
        answers = await asyncio.gather(*(one(*c) for c in cases), slow_body)
    for a in answers:
        a["t"] = round(t0, 3)
    run.requests += answers
    by_label: dict[str, set[Any]] = {}
    for a in answers:
        by_label.setdefault(a["abuse"], set()).add(a["status"])
    detail = {
        "requests": len(answers),
        "statuses": {k: sorted(map(str, v)) for k, v in by_label.items()},
    }
    return Fault("abuse", None, round(t0, 3), round(run.now(), 3), detail)


async def _chunks(text: str, size: int = 65536) -> AsyncIterator[bytes]:
    data = text.encode()
    for k in range(0, len(data), size):
        yield data[k : k + size]


async def _slow_body(base: str, headers: dict[str, str], token: str) -> dict[str, Any]:
    """Headers and a promise of a body that never comes (a slowloris on the body)."""
    label = {"abuse": "body never comes", "method": "POST"}
    parts = urlsplit(base)
    if parts.scheme != "http" or parts.hostname is None:
        return {**label, "status": 408, "skipped": "only over plain http"}
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 80)
    try:
        request = (
            f"POST /whep HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: {headers['Content-Type']}\r\nAuthorization: Bearer {token}\r\n"
            "Content-Length: 4000\r\n\r\nv=0\r\n"
        )
        writer.write(request.encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readline(), 60)
        status = int(head.split()[1]) if head.startswith(b"HTTP/") else None
        return {**label, "status": status}
    except (TimeoutError, OSError, ValueError) as e:
        return {**label, "status": None, "error": f"{type(e).__name__}: {e}"}
    finally:
        writer.close()


# the faults taken in turn every fault_every_s ("leave" is the churn, on its own clock)
FAULTS: dict[str, FaultFn] = {
    "slow": slow,
    "lossy": lossy,
    "bandwidth": bandwidth,
    "malformed": malformed,
    "abuse": abuse,
    "publisher": publisher,
}
