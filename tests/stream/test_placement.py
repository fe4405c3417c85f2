"""Viewer placement (stream/placement.py) against a real server and a real aiortc viewer: a
"placement" message switches the session's track, without renegotiation, to the frames
before the model (160x90 here, the model's output being 320x180) and back; while the only
viewer is viewer-placed the model pipeline does no work (its frame and submit counts in
/api/stats stand still); the server serves the model's browser bundle for the source's size
to the viewer role only, and its runtime and shader to anyone."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

import infer

from .rtc import bearer, nearest_upscaler, recv_frames, small_config, start_server, whep, with_auth

pytestmark = [pytest.mark.gpu, pytest.mark.slow]


def _model_cfg(**over):
    return small_config(
        **{"model.mode": "model", "model.web_kernels": ["tiled"], "source.fps": 15.0, **over}
    )


async def _until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.1)


async def _sizes(track, n: int, want: tuple[int, int], timeout: float) -> list[tuple[int, int]]:
    """Frames until `n` in a row have size `want` (the switch's first ones may be the old)."""
    seen: list[tuple[int, int]] = []
    deadline = time.monotonic() + timeout
    while sum(1 for s in seen[-n:] if s == want) < n or len(seen) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"wanted {n} frames of {want}, saw {seen[-20:]}")
        frames = await recv_frames(track, 1, left)
        seen += [(f.width, f.height) for f in frames]
    return seen


def _answers(viewer) -> list[dict]:
    return [m for m in map(json.loads, viewer.messages) if m.get("type") == "placement"]


@pytest.mark.timeout(240)
async def test_a_viewer_placed_session_gets_the_frames_before_the_model_and_costs_no_model_work():
    srv = await start_server(_model_cfg(), infer.load(nearest_upscaler()), "nearest_x2")
    svc = srv.service
    try:
        async with aiohttp.ClientSession() as http:
            v = await whep(http, srv.url, datachannel=True)
            track = v.tracks[0]
            # the model serves (after it is made ready: stream/preparing.py)
            await _until(lambda: svc.running_mode() == "model", 150, "the model never served")
            await _sizes(track, 5, (320, 180), 60)
            hello = next(m for m in map(json.loads, v.messages) if m["type"] == "hello")
            assert hello["placement"] == "server" and hello["bundle"] == "model/160x90/"

            v.channel.send(json.dumps({"type": "placement", "placement": "viewer", "reason": "t"}))
            seen = await _sizes(track, 8, (160, 90), 30)
            assert (320, 180) in seen  # the same track, no new negotiation: it changed size
            assert _answers(v)[-1] == {"type": "placement", "placement": "viewer"}
            # in flight when it switched: at most the pipeline's slots; then nothing more
            await asyncio.sleep(1.0)
            before = svc.stats()["pipelines"]["model"]
            await _sizes(track, 15, (160, 90), 30)  # a second of frames at 15 fps
            after = svc.stats()
            model = after["pipelines"]["model"]
            assert model["frames_in"] == before["frames_in"], (before, model)
            assert model["frames_out"] == before["frames_out"], (before, model)
            place = after["placement"]
            assert place["viewer_placed"] == 1 and place["frames_tapped"] >= 15, place
            (session,) = after["sessions"]
            assert session["tracks"][0]["stream"] == "lowres"
            assert place["sessions"][session["id"]]["placement"] == "viewer"
            # the frame messages say where it is upscaled
            frames = [m for m in map(json.loads, v.messages[-10:]) if m.get("type") == "frame"]
            assert frames and frames[-1]["mode"] == "viewer"

            # and back to the server: the model works again for this viewer
            v.channel.send(json.dumps({"type": "placement", "placement": "server"}))
            await _sizes(track, 8, (320, 180), 30)
            again = svc.stats()["pipelines"]["model"]
            assert again["frames_out"] > model["frames_out"] + 5
            assert svc.stats()["placement"]["viewer_placed"] == 0
            # a placement the server does not know is refused, and changes nothing
            v.channel.send(json.dumps({"type": "placement", "placement": "moon"}))
            await _until(lambda: "refused" in _answers(v)[-1], 10, "no refusal")
            assert _answers(v)[-1]["placement"] == "server"
            await v.close(http, srv.url)
    finally:
        await srv.close()


@pytest.mark.timeout(120)
async def test_the_bundle_is_served_for_the_source_size_to_viewers_only(tmp_path):
    from stream.auth import Role

    cfg, authority = with_auth(_model_cfg(**{"model.mode": "bilinear"}), tmp_path)
    srv = await start_server(cfg, infer.load(nearest_upscaler()), "nearest_x2")
    viewer = authority.mint(Role.VIEWER, 600)
    publisher = authority.mint(Role.PUBLISHER, 600)
    base = srv.url + "/model/160x90/"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "manifest.json") as r:
                assert r.status == 401
            async with http.get(base + "manifest.json", headers=bearer(publisher)) as r:
                assert r.status == 403
            async with http.get(base + "manifest.json", headers=bearer(viewer)) as r:
                assert r.status == 200, await r.text()
                manifest = await r.json()
            assert manifest["model"] == "nearest_x2"
            plan = manifest["builds"][0]["plans"][0]
            assert plan["inputs"][0]["shape"] == [1, 3, 90, 160]
            kernel = plan["steps"][0]["shader"]
            async with http.get(base + kernel, headers=bearer(viewer)) as r:
                assert r.status == 200 and "@compute" in await r.text()
            async with http.get(base + "weights.bin", headers=bearer(viewer)) as r:
                assert r.status == 200 and len(await r.read()) > 0
            # another size is not exported on demand; nothing outside the bundle is served
            for path in ("/model/640x360/manifest.json", "/model/160x90/index.js",
                         "/model/160x90/kernels/nope.wgsl", "/model/x.js"):  # fmt: skip
                async with http.get(srv.url + path, headers=bearer(viewer)) as r:
                    assert r.status == 404, path
            assert srv.service.stats()["placement"]["exports"] == 1  # made once, kept
            # the runtime and the canvas's shader hold no model: public
            async with http.get(srv.url + "/model/runtime.js") as r:
                assert r.status == 200 and "export async function loadBundle" in await r.text()
            async with http.get(srv.url + "/model/present.wgsl") as r:
                assert r.status == 200 and "@fragment" in await r.text()
    finally:
        await srv.close()
