"""Click-to-photon's accounting (stream/input/latency.py): the page's "decode" stage in its
parts (rVFC metadata) is kept and summarised, and the p95 is explained by the stage that made
each slow press slow."""

from __future__ import annotations

from stream.input.latency import DECODE_PARTS, ClickToPhoton


def _sample(total: float, pipeline: float, decode: float) -> dict[str, float]:
    rest = total - pipeline - decode
    return {
        "total": total, "transit": rest / 2, "inject": 0.2, "to_capture": rest / 2 - 0.2,
        "capture": 0.0, "pipeline": pipeline, "encode": 0.0, "network": 0.0, "decode": decode,
        "waiting": decode - 1.5, "decoding": 0.5, "render": 1.0,
    }  # fmt: skip


def test_decode_parts_are_kept_and_the_p95_names_its_causes():
    c2p = ClickToPhoton()
    for k in range(38):  # ordinary presses: pipeline 30, decode 10
        assert c2p.add(_sample(50.0 + k / 2, 30.0, 10.0))
    assert c2p.add(_sample(150.0, 120.0, 10.0))  # a stalled pipeline
    assert c2p.add(_sample(140.0, 30.0, 100.0))  # a frame held on the page
    s = c2p.summary()
    assert s["decode_parts_p50_ms"] == {"waiting": 8.5, "decoding": 0.5, "render": 1.0}
    assert set(s["decode_parts_p50_ms"]) == set(DECODE_PARTS)
    causes = s["p95_causes"]  # p95 of 40 samples: the two slow ones
    assert causes["pipeline"]["worst_in"] == 1 and causes["decode"]["worst_in"] == 1
    assert causes["pipeline"]["mean_excess_ms"] == 45.0  # (90 + 0) / 2
    assert sum(c["worst_in"] for c in causes.values()) == 2


def test_a_page_without_rvfc_metadata_gives_no_decode_parts():
    c2p = ClickToPhoton()
    assert c2p.add({"total": 40.0, "decode": 8.0})
    assert "decode_parts_p50_ms" not in c2p.summary()
