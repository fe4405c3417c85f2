"""The soak's verdict on its own health: a client whose event loop stalls fails the run and
is named as the cause, instead of its missed frames being blamed on the server."""

from __future__ import annotations

import time

from stream import settings
from stream.soak import Soak, analyse, format_verdict


def _report(lags: list[tuple[float, float]]) -> dict:
    opts = settings.load("soak")
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
