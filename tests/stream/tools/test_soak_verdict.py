"""The soak's verdict on its own health: a client whose event loop stalls fails the run and
is named as the cause, instead of its missed frames being blamed on the server."""

from __future__ import annotations

import time

import pytest

from stream.tools.soak import Soak, analyse, format_verdict, settings


def _report(lags: list[tuple[float, float]]) -> dict:
    opts = settings.load()
    run = Soak(opts)
    run.t0 = time.time() - 60.0
    run.lags = lags
    return analyse(run, run.t0)


def _lag_check(report: dict) -> dict:
    return next(c for c in report["checks"] if c["name"] == "client_lag")


def test_a_stalled_soak_client_fails_and_is_named():
    report = _report([(5.0, 3.0), (30.0, 1.6), (31.0, 0.3), (40.0, 0.06)])
    check = _lag_check(report)
    # the 3 s stall in warm-up is not judged; the 1.6 s one after it is
    assert check["value"] == 1.6 and not check["ok"]
    assert "soak client" in check["detail"]
    assert report["summary"]["client_lag_over_0_25_s"] == 2
    assert "client_lag" in report["verdict"]["failed"]
    assert "client lag max 1.60 s" in format_verdict(report)


def test_a_responsive_soak_client_passes_the_lag_check():
    check = _lag_check(_report([(20.0, 0.2)]))
    assert check["ok"] and check["value"] == 0.2


def _marked_frame(n: int, height: int = 180, width: int = 320):
    import av
    import numpy as np

    from stream.sources import marker

    yuv = np.full((height * 3 // 2, width), 128, np.uint8)
    marker.draw(yuv[:height], n)
    return av.VideoFrame.from_ndarray(yuv, format="yuv420p")


def _message(n: int, t_src: float) -> str:
    import json

    return json.dumps({"type": "frame", "n": n, "t_src": t_src, "t_sent": t_src + 5.0})


def test_a_viewer_joining_after_the_counter_wrapped_still_measures_latency():
    from stream.tools.soak.viewer import Viewer

    run = Soak(settings.load())
    run.t0 = time.time()
    run._hint[180] = None  # no source height known: the reader finds the marker itself
    v = Viewer(run, "late")
    now_ms = time.time() * 1000
    base = 70_000  # past 2**16: the marker carries 70000 - 65536
    v.on_message(_message(base - 1, now_ms - 100))  # the newest message before the first frame
    for k in range(4):
        n = base + k
        if k % 2:  # the server's message first, or the frame first: both orders happen
            v.on_message(_message(n, now_ms - 40))
            v.on_frame(_marked_frame(n), time.time(), run.now())
        else:
            v.on_frame(_marked_frame(n), time.time(), run.now())
            v.on_message(_message(n, now_ms - 40))
    rows = run.frames
    assert [r.n for r in rows] == [base, base + 1, base + 2, base + 3]
    assert all(r.latency_ms is not None for r in rows)
    assert sum(r.missed for r in rows) == 0 and not any(r.resync for r in rows)


def test_a_corrupt_marker_that_passes_its_check_bits_counts_no_drops():
    """After a loss a viewer decodes broken frames until the next keyframe; one such marker
    in 64 passes its check bits with a random number. It is a misread, not 5000 drops, and
    the frames after it count as they are."""
    from stream.tools.soak.viewer import Viewer

    run = Soak(settings.load())
    run.t0 = time.time()
    run._hint[180] = None
    v = Viewer(run, "lossy")
    now_ms = time.time() * 1000
    base = 71_700
    for k, shown in enumerate([base, base + 1, base + 2 + 4_945, base + 2 - 3_000, base + 3]):
        v.on_message(_message(base + k, now_ms - 40))
        v.on_frame(_marked_frame(shown), time.time(), run.now())
    rows = run.frames
    assert [r.n for r in rows] == [base, base + 1, None, None, base + 3]
    assert [r.missed for r in rows] == [0, 0, 0, 0, 1]
    assert v.misread == 2 and v.summary()["misread"] == 2


def test_soak_reads_its_token_from_a_file_or_the_environment(tmp_path, monkeypatch, capsys):
    """No token on the command line (the process list shows it): --token-file or
    $FRAMESMITH_TOKEN; an unreadable file is an error naming the flag."""
    from stream.tools.soak import cli

    class Started(Exception):
        pass

    def started(opts, leak=False):
        raise Started(opts.token)

    monkeypatch.setattr(cli, "soak", started)
    token = tmp_path / "token"
    token.write_text("ADMIN-TOKEN\n")
    with pytest.raises(Started, match="^ADMIN-TOKEN$"):
        cli.main(["--url", "http://127.0.0.1:1", "--token-file", str(token)])
    monkeypatch.setenv("FRAMESMITH_TOKEN", "ENV-TOKEN")
    with pytest.raises(Started, match="^ENV-TOKEN$"):
        cli.main(["--url", "http://127.0.0.1:1"])
    assert cli.main(["--url", "http://127.0.0.1:1", "--token-file", str(tmp_path / "no")]) == 2
    assert "--token-file" in capsys.readouterr().out
