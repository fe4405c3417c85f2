"""Push URLs: what each kind needs, and that no secret of one reaches a log, /api/stats, an
error or a metric label (no server needed)."""

from __future__ import annotations

import pytest

from stream import config as config_mod
from stream.sinks import SinkKind, TargetError, parse, redact
from stream.sinks.base import Backoff, SinkFigures, SinkState, describe
from stream.sinks.push import PushSinks, read_token
from stream.sinks.queue import Chunk, ChunkQueue
from stream.sinks.sdp import describe as sdp_of


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rtmp://live.twitch.tv/app/live_123_SECRETKEY", "rtmp://live.twitch.tv/app/***"),
        ("rtmp://a.rtmp.youtube.com/live2/abcd-efgh-SECRET", "rtmp://a.rtmp.youtube.com/live2/***"),
        ("rtmps://user:SECRET@host:443/app/k", "rtmps://***@host:443/app/***"),
        ("srt://h:9000?passphrase=SECRETSECRET&streamid=x", "srt://h:9000?***"),
        ("whip+https://ingest.example/whip", "whip+https://ingest.example/whip"),
        ("whip+https://c.example/0a1bSECRET/webRTC/publish", "whip+https://c.example/***/***"),
        ("rtp://[::1]:5004", "rtp://[::1]:5004"),
    ],
)
def test_redact_keeps_host_and_app_only(url, shown):
    assert redact(url) == shown
    assert "SECRET" not in redact(url)


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("rtmp://h/live/k", SinkKind.RTMP),
        ("srt://h:9000?latency=200", SinkKind.SRT),
        ("rtp://127.0.0.1:5004", SinkKind.RTP),
        ("whip+http://127.0.0.1:8080/whip", SinkKind.WHIP),
    ],
)
def test_parse_kinds(url, kind):
    t = parse(url, 3)
    assert t.kind is kind and t.name == "3"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://h/x", "unknown scheme"),
        ("rtmp:///live/k", "no host"),
        ("rtmp://h", "needs an application"),
        ("srt://h", "needs a port"),
        ("srt://h:1?passphrase=SECRETSECRET&nope=1", "unknown SRT option 'nope'"),
        ("rtp://h:5004/SECRET", "host:port only"),
        ("rtp://h:99999", "port is not a number"),
        ("not a url", "must be a URL"),
    ],
)
def test_bad_targets_say_why_without_the_secret(url, why):
    with pytest.raises(TargetError, match=why) as e:
        parse(url)
    assert "SECRET" not in str(e.value)


def test_config_names_the_bad_url_by_index_redacted(tmp_path):
    p = tmp_path / "serve.toml"
    p.write_text('[push]\nurls = ["rtmp://h/live/ok", "srt://h/SECRET?passphrase=SECRETSECRET"]\n')
    with pytest.raises(config_mod.ConfigError) as e:
        config_mod.load(p)
    assert str(e.value).startswith("push.urls: [1] srt://h/***?***: srt:// needs a port")
    assert "SECRET" not in str(e.value)
    p.write_text('[push]\nwhip_token = "t"\nwhip_token_file = "f"\n')
    with pytest.raises(config_mod.ConfigError, match="push.whip_token: give whip_token or"):
        config_mod.load(p)


def test_command_line_push_and_token_file_override(tmp_path):
    cfg = config_mod.load(None, {"push.urls": ["rtp://127.0.0.1:5004"], "push.codec": "vp8"})
    assert cfg.push.urls == ["rtp://127.0.0.1:5004"] and cfg.push.codec == "vp8"


def test_whip_token_file_is_read_and_checked(tmp_path):
    token = tmp_path / "token"
    token.write_text("abc.def\n")
    settings = config_mod.PushConfig(urls=["whip+http://h:1/whip"], whip_token_file=str(token))
    assert read_token(settings) == "abc.def"
    token.write_text("")
    with pytest.raises(ValueError, match="is empty"):
        PushSinks(settings, config_mod.ServerConfig())
    missing = config_mod.PushConfig(urls=["whip+http://h:1/whip"], whip_token_file="/nope/x")
    with pytest.raises(ValueError, match="cannot read /nope/x"):
        PushSinks(missing, config_mod.ServerConfig())


def test_env_vars_expand_at_start_and_stay_hidden(monkeypatch):
    monkeypatch.setenv("FS_TEST_KEY", "SECRETKEY")
    t = parse("rtmp://h/live/$FS_TEST_KEY")
    assert t.resolved() == "rtmp://h/live/SECRETKEY" and t.unresolved_vars() == []
    err = OSError(5, "Input/output error", "rtmp://h/live/SECRETKEY")
    assert "SECRET" not in describe(err, t)
    assert parse("rtmp://h/live/$FS_TEST_UNSET_VAR").unresolved_vars() == ["FS_TEST_UNSET_VAR"]
    whip = parse("whip+https://h/SECRET/x")
    assert "SECRET" not in describe(ValueError("bad URL https://h/SECRET/x"), whip)


async def test_a_sink_that_fails_to_stop_is_logged_without_its_url(caplog):
    settings = config_mod.load(None, {"push.urls": ["rtmp://h/live/SECRETKEY"]})
    sinks = PushSinks(settings.push, settings.server)

    class Stuck:
        target = sinks.targets[0]

        async def stop(self) -> None:
            raise RuntimeError("rtmp://h/live/SECRETKEY: Broken pipe")

    sinks.sinks = [Stuck()]  # type: ignore[list-item]
    with caplog.at_level("ERROR", logger="stream.sinks.push"):
        await sinks.stop()
    (line,) = [r.getMessage() for r in caplog.records]
    assert "did not stop cleanly" in line and "SECRET" not in line, line


def test_backoff_doubles_to_its_cap_and_resets_after_a_long_live():
    b = Backoff(4.0)
    assert [b.delay(0) for _ in range(5)] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert b.delay(60.0) == 0.5


def test_figures_count_reconnects_and_log_each_change(caplog):
    f = SinkFigures(parse("rtmp://h/live/SECRETKEY"), "h264")
    with caplog.at_level("INFO", logger="stream.sinks.base"):
        f.set_state(SinkState.CONNECTING)
        f.set_state(SinkState.LIVE)
        f.set_state(SinkState.RETRYING, "OSError: Broken pipe", 0.5)
        f.set_state(SinkState.CONNECTING)
        f.set_state(SinkState.CONNECTING)  # no change: no line
    assert f.reconnects == 1
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4 and "retrying in 0.5 s" in lines[2] and "Broken pipe" in lines[2]
    assert not any("SECRET" in line for line in lines)
    assert f.stats()["target"] == "rtmp://h/live/***"


def test_queue_drops_to_the_next_keyframe_when_full():
    q = ChunkQueue(4)
    assert not q.put(Chunk(b"p", 0)) and q.dropped == 1  # waits for a keyframe
    assert q.put(Chunk(b"k", 1, key=True))
    for i in range(3):
        assert q.put(Chunk(b"p", 2 + i))
    assert not q.put(Chunk(b"p", 9))  # full: the four queued and this one are lost
    assert q.need_keyframe and len(q) == 0 and q.dropped == 6 and q.overflows == 1
    assert q.put(Chunk(b"k", 10, key=True)) and q.get(0) == Chunk(b"k", 10, key=True)
    q.close()
    assert not q.put(Chunk(b"k", 11, key=True)) and q.get(0.01) is None


def test_audio_ahead_of_the_first_keyframe_is_kept_for_it():
    q = ChunkQueue(8)
    for ts in (0, 10, 20, 30):  # demuxed before the processed picture arrives
        assert not q.put(Chunk(b"a", ts, audio=True))
    assert q.dropped == 0  # audio waiting for the picture is not a drop
    assert q.put(Chunk(b"k", 15, key=True))
    assert [(c.ts, c.audio) for c in (q.get(0), q.get(0), q.get(0))] == [
        (15, False),
        (20, True),
        (30, True),
    ]
    assert q.get(0) is None


def test_sdp_describes_the_rtp_push():
    text = sdp_of("127.0.0.1", 5004, "h264", ssrc=1234)
    assert "m=video 5004 RTP/AVP 96" in text and "a=rtpmap:96 H264/90000" in text
    assert "packetization-mode=1" in text and "a=ssrc:1234" in text
    assert "c=IN IP6 ::1" in sdp_of("::1", 5004, "vp8") and "VP8/90000" in sdp_of("::1", 1, "vp8")


def test_sdp_file_never_follows_a_planted_symlink(tmp_path):
    """A local user who can write the SDP folder plants push-0.sdp -> a file of ours: the
    write replaces the link with a private file and leaves the target alone."""
    import os
    import stat

    from stream.sinks import sdp
    from stream.sinks.mux import default_sdp_dir

    victim = tmp_path / "victim"
    victim.write_text("precious")
    folder = tmp_path / "sdp"
    folder.mkdir()
    (folder / "push-0.sdp").symlink_to(victim)
    path = sdp.write(folder, 0, sdp_of("127.0.0.1", 5004, "vp8"))
    assert victim.read_text() == "precious"
    assert not path.is_symlink() and "m=video 5004" in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in folder.iterdir()] == ["push-0.sdp"]  # no temporary left
    # the default folder is private and not named after the pid (which another user can guess)
    default = default_sdp_dir()
    assert str(os.getpid()) not in default.name and default.owner() == victim.owner()
    assert stat.S_IMODE(default.stat().st_mode) == 0o700


def test_serve_push_flags_reach_the_config_and_a_bad_one_stops_the_start(capsys, tmp_path):
    from stream import serve

    token = tmp_path / "t"
    token.write_text("tok")
    rc = serve.main(["--push", "rtmp://h/live/SECRETKEY", "--push", "srt://h",
                     "--push-token-file", str(token)])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 2 and "push.urls: [1] srt://h: srt:// needs a port" in out
    assert "SECRET" not in out
    rc = serve.main(["--push", "whip+http://127.0.0.1:9/whip", "--push-token-file", "/nope"])
    assert rc == 2 and "push.whip_token_file: cannot read /nope" in capsys.readouterr().out
