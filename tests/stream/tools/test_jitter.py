"""The soak viewers' jitter buffer: a lost packet is waited for a bounded time, then the viewer
skips to the next whole frame and asks for a keyframe, instead of stalling for 512 packets."""

from __future__ import annotations

from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import RtpPacket

from stream.tools.soak.jitter import BoundedWaitJitterBuffer

PACKETS_PER_FRAME = 3


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _packets(frames: int, first_seq: int = 65530) -> list[RtpPacket]:
    """``frames`` frames of three packets each; sequence numbers wrap through 65535."""
    out = []
    for f in range(frames):
        for i in range(PACKETS_PER_FRAME):
            seq = (first_seq + f * PACKETS_PER_FRAME + i) % 65536
            p = RtpPacket(
                payload_type=96,
                sequence_number=seq,
                timestamp=3000 * f,
                marker=int(i == PACKETS_PER_FRAME - 1),
            )
            p._data = bytes([f % 256, i])
            out.append(p)
    return out


def _feed(buf, packets, clock: Clock, dt: float = 1 / 30 / PACKETS_PER_FRAME):
    """Frame numbers handed out, and how many adds asked for a keyframe."""
    frames, plis = [], 0
    for p in packets:
        clock.t += dt
        pli, frame = buf.add(p)
        plis += pli
        if frame is not None:
            # a whole frame: its packets, in order, all of one frame
            assert frame.data == b"".join(bytes([frame.data[0], i]) for i in range(3))
            frames.append(frame.data[0])
    return frames, plis


def test_without_loss_every_frame_comes_out_in_order():
    clock = Clock()
    buf = BoundedWaitJitterBuffer(max_wait_s=0.5, clock=clock)
    frames, plis = _feed(buf, _packets(40), clock)
    assert frames == list(range(39)) and plis == 0 and buf.skips == 0


def test_a_slow_source_is_not_mistaken_for_a_loss():
    clock = Clock()
    buf = BoundedWaitJitterBuffer(max_wait_s=0.5, clock=clock)
    frames, _ = _feed(buf, _packets(10), clock, dt=1.0)  # a frame every 3 s
    assert frames == list(range(9)) and buf.skips == 0


def test_a_retransmission_within_the_wait_fills_the_hole():
    clock = Clock()
    buf = BoundedWaitJitterBuffer(max_wait_s=0.5, clock=clock)
    packets = _packets(20)
    lost = packets.pop(16)  # frame 5's middle packet
    frames, _ = _feed(buf, packets[:25], clock)  # 0.28 s of packets behind the hole
    assert frames == [0, 1, 2, 3, 4]
    more, _ = _feed(buf, [lost, *packets[25:]], clock)
    assert frames + more == list(range(19)) and buf.skips == 0


def test_a_hole_never_filled_is_skipped_after_the_wait_with_a_keyframe_request():
    clock = Clock()
    buf = BoundedWaitJitterBuffer(max_wait_s=0.5, clock=clock)
    packets = _packets(60)
    del packets[16]  # frame 5's middle packet and its retransmission are both lost
    frames, plis = _feed(buf, packets, clock)
    assert buf.skips == 1 and plis == 1
    # nothing of frame 5 (half a frame) comes out; delivery resumes at a whole frame ~0.5 s
    # later, and nothing older than that is left queued behind (no lasting backlog)
    assert frames[:5] == [0, 1, 2, 3, 4] and 5 not in frames
    resumed = frames[5]
    assert 5 + 0.5 * 30 <= resumed <= 5 + 0.5 * 30 + 2
    assert frames[5:] == list(range(resumed, 59))


def test_stock_aiortc_buffer_stalls_on_the_same_hole():
    """The reason for the buffer above: aiortc's waits for 512 packets (170 frames here)."""
    buf = JitterBuffer(capacity=512, is_video=True)
    packets = _packets(60)
    del packets[16]
    frames, _ = _feed(buf, packets, Clock())
    assert frames == [0, 1, 2, 3, 4]
