"""VP8 temporal layers, per-viewer link estimates and the bitrate policy, on real libvpx and
recorded RTCP figures (deterministic; the end-to-end run is test_layers_e2e.py)."""

from __future__ import annotations

import asyncio
from fractions import Fraction

import av
import numpy as np
import pytest
from aiortc.codecs.vpx import VpxPayloadDescriptor
from aiortc.rtp import RTCP_RTPFB_NACK, RtcpReceiverInfo, RtcpRrPacket, RtcpRtpfbPacket

from stream.bitrate import BitratePolicy, percentile
from stream.config import BandwidthConfig
from stream.encode import PacketTrack, SharedEncoder, layer_of
from stream.temporal import Layer
from stream.tools.soak.shaper import LinkShaper
from stream.webrtc.layers import LayerSelector, SelectorSettings, Vp8LayerPacker
from stream.webrtc.link import EstimateBounds, LinkEstimate, ViewerLink


def _frames(n: int, w: int = 192, h: int = 108):
    """A scrolling gradient with noise: every frame differs, so every layer costs bits."""
    rng = np.random.default_rng(1)
    ramp = np.tile((np.arange(w) * 5 % 256).astype(np.uint8), (h, 1))[..., None].repeat(3, 2)
    for i in range(n):
        img = np.roll(ramp, i * 3, 1) ^ rng.integers(0, 24, (h, w, 3)).astype(np.uint8)
        f = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        f.pts, f.time_base = i * 3000, Fraction(1, 90000)
        yield f


def _encode(keys: set[int], rate_at: dict[int, int] | None = None) -> list[av.Packet]:
    """Frames through the shared encoder's own code (encoder thread side), layered."""
    enc = SharedEncoder("vp8", bitrate=800_000, layers=True)
    out = []
    for i, f in enumerate(_frames(48)):
        if rate_at and i in rate_at:
            enc.set_bitrate(rate_at[i])
        out += enc._encode(f, i in keys)
    return out


def _decode(packets, keep) -> dict[int, np.ndarray]:
    dec = av.CodecContext.create("vp8", "r")
    out = {}
    for i, p in enumerate(packets):
        if keep(layer_of(p)):
            for frame in dec.decode(av.Packet(bytes(p))):
                out[i] = frame.to_ndarray(format="yuv420p")
    return out


def test_each_layer_subset_decodes_to_the_same_pictures_as_the_whole_stream():
    # forced keyframes reset the pattern (FFmpeg's current_temporal_idx), a bitrate change
    # reopens libvpx (a keyframe too)
    packets = _encode(keys={0, 17}, rate_at={30: 400_000})
    layers = [layer_of(p) for p in packets]
    assert all(isinstance(x, Layer) for x in layers)
    assert [x.tid for x in layers[:8]] == [0, 2, 1, 2, 0, 2, 1, 2]
    assert layers[17].key and layers[30].key and layers[31].tid == 2
    full = _decode(packets, lambda x: True)
    assert len(full) == len(packets)
    for top in (0, 1):
        sub = _decode(packets, lambda x, top=top: x.key or x.tid <= top)
        assert len(sub) < len(full)
        for i, picture in sub.items():
            np.testing.assert_array_equal(picture, full[i], err_msg=f"layers <= {top}, frame {i}")


def test_a_mislabelled_layer_breaks_the_subset():
    """The check above can fail: with the pattern off by one frame, dropping "TL2" drops
    frames others reference, and the pictures differ."""
    packets = _encode(keys={0})
    shifted = [layer_of(packets[i - 1]) if i else layer_of(packets[0]) for i in range(48)]
    full = _decode(packets, lambda x: True)
    dec = av.CodecContext.create("vp8", "r")
    same = True
    for i, p in enumerate(packets):
        x = shifted[i]
        if x.key or x.tid == 0:
            for frame in dec.decode(av.Packet(bytes(p))):
                same &= np.array_equal(frame.to_ndarray(format="yuv420p"), full[i])
    assert not same


def test_the_packer_writes_tid_sync_and_tl0picidx():
    packets = _encode(keys={0})[:9]
    packer = Vp8LayerPacker()
    seen = []
    for p in packets:
        payloads, _ = packer.pack(p)
        data = b""
        for k, payload in enumerate(payloads):
            d, body = VpxPayloadDescriptor.parse(payload)
            assert d.partition_start == (k == 0)
            data += body
            seen.append((d.picture_id, d.tl0picidx, d.tid))
        assert data == bytes(p)
    firsts = []
    for pid, tl0, tid in seen:
        if not firsts or firsts[-1][0] != pid:
            firsts.append((pid, tl0, tid))
    pids = [f[0] for f in firsts]
    assert pids == [(pids[0] + k) % 32768 for k in range(len(pids))]  # no gaps
    assert [f[2] for f in firsts] == [(0, 1), (2, 1), (1, 1), (2, 0), (0, 0), (2, 1), (1, 1)] + [
        (2, 0),
        (0, 0),
    ]
    assert [f[1] for f in firsts] == [1, 1, 1, 1, 2, 2, 2, 2, 3]


def test_the_selector_steps_down_at_once_and_up_only_at_a_sync_frame_after_the_hold():
    sel = LayerSelector(SelectorSettings(hold_s=2.0, max_hold_s=6.0, failed_within_s=4.0))
    assert sel.current == sel.target == 2
    sel.decide(fits=0, quiet_s=0.0, now=10.0)
    assert sel.current == sel.target == 0
    assert not sel.forward(Layer(1, True)) and sel.forward(Layer(0, False))
    assert not sel.decide(fits=0, quiet_s=1.0, now=11.0)  # inside the hold
    assert sel.decide(fits=0, quiet_s=2.5, now=12.5)  # the probe
    assert sel.target == 1 and sel.current == 0
    assert not sel.forward(Layer(2, True))  # not the next layer
    assert sel.forward(Layer(1, True)) and sel.current == 1  # a TL1 sync frame
    # the step up failed soon: back down, and the hold doubles
    sel.decide(fits=0, quiet_s=0.0, now=13.5)
    assert sel.target == sel.current == 0 and sel.hold == 4.0
    assert not sel.decide(fits=0, quiet_s=3.0, now=16.5)
    assert sel.decide(fits=0, quiet_s=9.0, now=22.0)
    assert sel.forward(Layer(2, False, key=True)) and sel.current == 1  # a keyframe resyncs


def test_the_hold_is_capped_and_relaxes():
    sel = LayerSelector(SelectorSettings(hold_s=2.0, max_hold_s=6.0, failed_within_s=4.0))
    t = 0.0
    for _ in range(5):
        sel.decide(fits=1, quiet_s=0.0, now=t)
        t += sel.hold
        assert sel.decide(fits=1, quiet_s=sel.hold, now=t)
        t += 1.0
    assert sel.hold == 6.0
    sel.decide(fits=1, quiet_s=0.0, now=t)
    assert sel.decide(fits=1, quiet_s=100, now=t + 31) and sel.hold == 2.0


def test_the_estimate_follows_loss_remb_and_what_was_sent():
    e = LinkEstimate(EstimateBounds(2_000_000, 300_000, 2_500_000))
    e.report(0.5, sent_bps=2_000_000, now=0.0)  # heavy loss: down by half the loss
    assert e.rate == pytest.approx(1_500_000)
    e.report(0.05, sent_bps=1_500_000, now=1.0)  # between 2% and 10%: hold
    assert e.rate == pytest.approx(1_500_000) and e.last_loss == 1.0
    e.report(0.0, sent_bps=600_000, now=2.0)  # no loss: +8% a second, not above 1.5x sent
    assert e.rate == pytest.approx(1_500_000)  # 1.5 x 600k = 900k < rate: never cut either
    e.rate = 700_000
    e.report(0.0, sent_bps=600_000, now=3.0)
    assert e.rate == pytest.approx(756_000)
    e.report(0.0, sent_bps=600_000, now=6.0)
    assert e.rate == pytest.approx(900_000)  # capped at 1.5x sent
    # a REMB over what is sent says nothing (a receiver's estimate stays under 1.5x that)
    e.remb(800_000, sent_bps=600_000, now=6.5)
    assert e.rate == pytest.approx(900_000) and e.last_loss == 1.0
    e.remb(450_000, sent_bps=600_000, now=7.0)  # under 85% of it, but no loss: a busy receiver
    assert e.rate == pytest.approx(900_000)
    e.report(0.05, sent_bps=600_000, now=7.5)  # loss (holds the rate) ...
    e.remb(450_000, sent_bps=600_000, now=8.0)  # ... and a low REMB: down to it
    assert e.rate == 450_000 and e.last_loss == 7.5
    assert e.fresh_remb(9.0) == 450_000 and e.fresh_remb(14.0) is None
    e.rate = 900_000
    e.report(1.0, sent_bps=0.0, now=13.0)
    assert e.rate == 450_000
    e.report(1.0, sent_bps=0.0, now=14.0)  # mostly from before that decrease took effect
    assert e.rate == 450_000
    e.report(1.0, sent_bps=0.0, now=15.0)
    assert e.rate == 300_000  # the floor


def _rr(ssrc: int, lost: float) -> RtcpRrPacket:
    info = RtcpReceiverInfo(
        ssrc=ssrc,
        fraction_lost=int(lost * 256),
        packets_lost=0,
        highest_sequence=0,
        jitter=900,
        lsr=0,
        dlsr=0,
    )
    return RtcpRrPacket(ssrc=1, reports=[info])


def test_a_viewer_link_reads_its_own_reports_and_picks_layers_from_the_encoder_rates():
    link = ViewerLink(EstimateBounds(1_000_000, 100_000, 1_000_000), layered=True)
    rates = [400_000.0, 600_000.0, 1_000_000.0]
    for k in range(10):
        link.on_sent(12_500, now=k * 0.1)
    link.on_rtcp(_rr(ssrc=99, lost=0.9), ssrc=7, rtt_s=0.05, now=1.0)  # another sender's
    assert link.estimate.reports == 0
    link.on_rtcp(_rr(ssrc=7, lost=0.6), ssrc=7, rtt_s=0.05, now=1.0)
    assert link.estimate.rtt_ms == 50.0 and link.estimate.jitter_ms == 10.0
    link.tick(rates, now=1.0)  # 1 Mbit/s x 0.7 -> only TL0 and TL1 fit
    assert link.selector.target == 1 and link.layer == 1
    state = link.state(1.0)
    assert state["layer"] == 1 and state["loss"] == pytest.approx(0.6, abs=0.01)


def test_nacks_between_reports_count_as_loss():
    """A report covers about a second; NACKs tell within a round trip."""
    link = ViewerLink(EstimateBounds(1_000_000, 100_000, 1_000_000), layered=True)
    for k in range(20):  # 20 frames of 2 packets in the last half second: 40 packets
        link.on_sent(2 * 1280, now=1.0 + k * 0.025)
    link.tick([400_000.0, 600_000.0, 1_000_000.0], now=1.5)
    assert link.estimate.rate == 1_000_000 and link.layer == 2  # no NACKs: nothing
    nack = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1, media_ssrc=7, lost=list(range(12)))
    link.on_rtcp(nack, ssrc=7, rtt_s=None, now=1.5)
    other = RtcpRtpfbPacket(fmt=RTCP_RTPFB_NACK, ssrc=1, media_ssrc=8, lost=list(range(40)))
    link.on_rtcp(other, ssrc=7, rtt_s=None, now=1.5)  # another sender's
    assert link.nack_loss(1.5) == pytest.approx(12 / 40)
    link.tick([400_000.0, 600_000.0, 1_000_000.0], now=1.5)
    assert link.estimate.rate < 1_000_000 * (1 - 0.5 * 0.3) + 1 and link.layer < 2
    assert link.state(1.5)["nacked"] == 12


def test_percentile_is_nearest_rank():
    assert percentile([1, 2], 75) == 2 and percentile([1, 2, 3, 4], 75) == 3
    assert percentile([5], 0) == 5 and percentile([3, 1, 2], 50) == 2


async def test_the_policy_follows_the_controlling_player_first_then_a_percentile_not_one_link():
    enc = SharedEncoder("vp8", bitrate=2_000_000, layers=True)
    tracks = []
    for rate in (600_000, 1_500_000, 2_000_000):
        link = ViewerLink(EstimateBounds(2_000_000, 300_000, 2_000_000), layered=True)
        link.estimate.rate, link.estimate.reports = rate, 1
        tracks.append(PacketTrack(enc, link=link))
    controller: list[str | None] = [None]
    policy = BitratePolicy(
        BandwidthConfig(percentile=50),
        encoders=lambda: {("main", "vp8"): enc},
        viewers=lambda: [(f"s{k}", t) for k, t in enumerate(tracks)],
        controller=lambda: controller[0],
    )
    policy._steer(("main", "vp8"), enc, [(f"s{k}", t.link) for k, t in enumerate(tracks)], 0.0)
    assert enc._bitrate_due == 1_500_000  # the median
    assert policy.state()["encoders"]["main/vp8"]["reason"] == "p50 of 3 viewer link(s)"
    enc.bitrate, enc._bitrate_due = 1_500_000, None
    controller[0] = "s2"
    policy._steer(("main", "vp8"), enc, [(f"s{k}", t.link) for k, t in enumerate(tracks)], 2.0)
    assert enc._bitrate_due is None  # 10 s between steps up
    policy._steer(("main", "vp8"), enc, [(f"s{k}", t.link) for k, t in enumerate(tracks)], 10.5)
    assert enc._bitrate_due == 2_000_000
    assert policy.targets[("main", "vp8")].reason == "the controlling player's link"
    enc.bitrate, enc._bitrate_due = 2_000_000, None
    controller[0] = "s0"  # a controller slower than everyone else: held at the second-lowest
    policy._steer(("main", "vp8"), enc, [(f"s{k}", t.link) for k, t in enumerate(tracks)], 15.0)
    assert enc._bitrate_due == 1_500_000
    assert "one link alone" in policy.targets[("main", "vp8")].reason
    for t in tracks:
        t.stop()
    await asyncio.sleep(0)


def test_a_track_forwards_only_its_layers_and_counts_what_it_sent():
    enc = SharedEncoder("vp8", bitrate=800_000, layers=True)
    link = ViewerLink(EstimateBounds(800_000, 100_000, 800_000), layered=True)
    track = PacketTrack(enc, maxlen=100, link=link)
    link.selector.decide(fits=0, quiet_s=0.0, now=0.0)
    packets = _encode(keys={0})[:12]
    for p in packets:
        track.push(p, None)
    assert [layer_of(p).tid for p, _ in track.queue] == [0, 0, 0]
    assert link.skipped == 9 and track.dropped == 0
    track.stop()


def test_the_shaper_queues_then_drops_over_its_rate():
    s = LinkShaper(max_delay_s=0.2, burst_bytes=0)
    s.kbps = 800  # 100 kB/s: a 1000-byte packet takes 10 ms
    delays = [s.admit(1000, now=0.0) for _ in range(25)]
    assert delays[0] == pytest.approx(0.01) and delays[19] == pytest.approx(0.2)
    assert delays[20:] == [None] * 5 and s.dropped == 5
    assert s.admit(1000, now=1.0) == pytest.approx(0.01)  # drained
    s.kbps = None
    assert s.admit(10**6, now=1.0) == 0.0
