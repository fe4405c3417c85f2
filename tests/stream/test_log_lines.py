"""Log lines a client or a URL cannot forge or fill with secrets: a path with an encoded
newline and terminal escapes is logged escaped (a real server over real HTTP), and a file
source's URL is logged without its user:password, query token or RTMP stream key, also in
the error of a source that cannot be opened."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator
from typing import Any, cast

import aiohttp
import pytest

from stream.sources.file import FileSource, redact

from .rtc import small_config, start_server, with_auth


@pytest.mark.gpu
@pytest.mark.timeout(60)
async def test_a_client_cannot_forge_a_log_line(tmp_path, caplog):
    cfg, _ = with_auth(small_config(), tmp_path)
    srv = await start_server(cfg)
    forged = "x%0a2026-01-01 00:00:00 INFO stream.auth: admin granted%1b[2J%e2%80%a8"
    try:
        with caplog.at_level(logging.INFO, logger="stream.guard"):
            async with (
                aiohttp.ClientSession() as http,
                http.delete(srv.url + "/whep/" + forged) as r,  # no token: 401
            ):
                assert r.status == 401
    finally:
        await srv.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "stream.guard"]
    (line,) = [m for m in lines if "-> 401" in m]
    assert "\\n2026-01-01" in line and "\\x1b[2J" in line and "\\u2028" in line, line
    assert all(c.isprintable() for c in line), line


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("rtmp://u:SECRET@h:1935/live/SECRETKEY", "rtmp://***@h:1935/live/***"),
        ("srt://h:9000?passphrase=SECRETSECRET&streamid=x", "srt://h:9000?***"),
        ("rtsp://[::1]:8554/cam?token=SECRET", "rtsp://[::1]:8554/cam?***"),
        ("clip.mp4", "clip.mp4"),
    ],
)
def test_source_urls_are_redacted(uri, shown):
    assert redact(uri) == shown


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "uri",
    [
        "rtmp://user:SECRETPASS@127.0.0.1:1/live/SECRETKEY",  # live: logged, retried
        "http://user:SECRETPASS@127.0.0.1:1/clip.mp4?token=SECRETTOKEN",  # not live: raised
    ],
)
async def test_a_source_that_cannot_open_logs_and_raises_without_credentials(uri, caplog):
    source = FileSource(uri)
    frames = cast(AsyncGenerator[Any, None], source.frames())
    raised = ""
    with caplog.at_level(logging.WARNING, logger="stream.sources.file"):
        try:
            await asyncio.wait_for(anext(frames), 3)
        except TimeoutError:
            pass
        except ValueError as e:  # the exception a service logs with its traceback
            raised = str(e)
            assert e.__suppress_context__ and "127.0.0.1:1" in raised
        finally:
            with contextlib.suppress(Exception):
                await frames.aclose()
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert logged or raised
    for text in (logged, raised, source.error, str(source.details())):
        assert "SECRET" not in text, text
