"""rtp:// into Janus's streaming plugin (Debian's janus), which serves WebRTC viewers: two
aiortc viewers through Janus's HTTP API get the processed stream, encoded once by us."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from ..rtc import recv_frames, small_config, start_server
from .servers import Janus, janus_request, janus_viewer

pytestmark = [pytest.mark.gpu, pytest.mark.slow]
OUT = (320, 180)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("codec", ["vp8", "h264"])
async def test_janus_fans_out_an_rtp_push(tmp_path, codec):
    janus = Janus.start(tmp_path, codec)
    cfg = small_config(
        **{
            "push.urls": [f"rtp://127.0.0.1:{janus.rtp_port}"],
            "push.codec": codec,
            "push.sdp_dir": str(tmp_path / "sdp"),
        }
    )
    srv = await start_server(cfg)
    peers = []
    try:
        sdp = (tmp_path / "sdp" / "push-0.sdp").read_text()
        assert f"m=video {janus.rtp_port} RTP/AVP 96" in sdp
        async with aiohttp.ClientSession() as http:
            await _mountpoints_need_their_secrets(http, janus)
            for _ in range(2):
                peers.append(await janus_viewer(http, janus.api))
            got = await asyncio.gather(*(recv_frames(track, 20, 40) for _, track in peers))
        for frames in got:
            assert len(frames) == 20, janus.log()
            assert {(f.width, f.height) for f in frames[-10:]} == {OUT}
        stats = srv.service.push.stats()[0]
        encoders = [e.stats() for e in srv.service.encoders.values()]
    finally:
        for pc, _ in peers:
            await pc.close()
        await srv.close()
        janus.stop()
    assert stats["state"] == "live" and stats["sdp"].endswith("push-0.sdp")
    assert [(e["stream"], e["codec"]) for e in encoders] == [("main", codec)]


async def _mountpoints_need_their_secrets(http: aiohttp.ClientSession, janus: Janus) -> None:
    """As docker/compose.janus.yaml ships it: any client may watch, but creating a mountpoint
    (an open RTP port that relays to anyone) needs the admin key, and editing or destroying
    framesmith's needs its secret; with them the same requests pass."""
    create = {"request": "create", "type": "rtp", "id": 77, "media": [
        {"type": "video", "mid": "v", "port": 0, "pt": 96, "codec": "vp8"}]}  # fmt: skip
    refused = await janus_request(http, janus.api, create)
    assert "admin_key" in refused.get("error", ""), refused  # missing
    refused = await janus_request(http, janus.api, {**create, "admin_key": "guess"})
    assert "unauthorized" in refused.get("error", "").lower(), refused
    for secret in (None, "wrong"):
        body = {"request": "destroy", "id": 1, **({"secret": secret} if secret else {})}
        refused = await janus_request(http, janus.api, body)
        assert refused.get("error_code") in (453, 457), refused  # missing / unauthorized
    listed = await janus_request(http, janus.api, {"request": "list"})
    assert [m["id"] for m in listed["list"]] == [1]  # still there
    made = await janus_request(http, janus.api, {**create, "admin_key": janus.admin_key})
    assert made.get("streaming") == "created", made
    gone = await janus_request(http, janus.api, {"request": "destroy", "id": 77})
    assert gone.get("streaming") == "destroyed", gone
