"""What a publisher's encoded frame announces before it is decoded: size, chroma, bit depth.

aiortc hands every encoded frame a WHIP publisher sends straight to FFmpeg's decoder (in a
thread of its own), and the decoder allocates whatever the stream's headers announce: an
H.264 SPS may claim any size up to 16384x16384 macroblock-aligned, 4:2:2 or 4:4:4 chroma and
up to 14 bits. So the headers are read here, on the encoded bytes (ingest.py calls this
before the frame is queued for the decoder), and a stream we would not take is refused
before FFmpeg sees it. VP8 is always 4:2:0 at 8 bits; its key frames carry the size.

The SPS fields are read as ITU-T H.264 7.3.2.1.1 lays them out, as far as the cropping
window (everything a frame's size, chroma and depth depend on), nothing after it.
"""

from __future__ import annotations

from dataclasses import dataclass

# profile_idc values whose SPS carries chroma_format_idc and bit depths (7.3.2.1.1)
HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})
CHROMA = {0: "4:0:0", 1: "4:2:0", 2: "4:2:2", 3: "4:4:4"}
NAL_IDR, NAL_SPS = 5, 7


class BitstreamError(ValueError):
    """A header that cannot be read: the decoder would not take it either."""


@dataclass(frozen=True)
class Picture:
    """What a sequence header announces for every frame after it."""

    width: int
    height: int
    chroma: str = "4:2:0"
    bit_depth: int = 8


class _Bits:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def u(self, n: int) -> int:
        v = 0
        for _ in range(n):
            byte = self.pos >> 3
            if byte >= len(self.data):
                raise BitstreamError("SPS ends early")
            v = (v << 1) | ((self.data[byte] >> (7 - (self.pos & 7))) & 1)
            self.pos += 1
        return v

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise BitstreamError("SPS has an Exp-Golomb code over 32 bits")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def _unescape(nal: bytes) -> bytes:
    """The RBSP: emulation-prevention bytes (00 00 03) removed."""
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


def nal_units(data: bytes) -> list[bytes]:
    """The NAL units of an Annex-B access unit (aiortc's depayloader writes start codes)."""
    out = []
    starts = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        starts.append(i + 3)
        i = data.find(b"\x00\x00\x01", i + 3)
    for k, s in enumerate(starts):
        end = starts[k + 1] - 3 if k + 1 < len(starts) else len(data)
        out.append(data[s:end].rstrip(b"\x00") if k + 1 < len(starts) else data[s:end])
    return [n for n in out if n]


def parse_sps(nal: bytes) -> Picture:
    """An SPS NAL unit (header byte included): the size after cropping, chroma, depth."""
    b = _Bits(_unescape(nal[1:]))
    profile = b.u(8)
    b.u(16)  # constraint flags, level_idc
    b.ue()  # seq_parameter_set_id
    chroma_idc, depth_luma, depth_chroma = 1, 8, 8
    if profile in HIGH_PROFILES:
        chroma_idc = b.ue()
        if chroma_idc > 3:
            raise BitstreamError(f"SPS chroma_format_idc {chroma_idc}")
        if chroma_idc == 3:
            b.u(1)  # separate_colour_plane_flag
        depth_luma, depth_chroma = 8 + b.ue(), 8 + b.ue()
        b.u(1)  # qpprime_y_zero_transform_bypass_flag
        if b.u(1):  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma_idc != 3 else 12):
                if b.u(1):
                    _skip_scaling_list(b, 16 if i < 6 else 64)
    b.ue()  # log2_max_frame_num_minus4
    poc_type = b.ue()
    if poc_type == 0:
        b.ue()
    elif poc_type == 1:
        b.u(1)
        b.se()
        b.se()
        for _ in range(b.ue()):
            b.se()
    b.ue()  # max_num_ref_frames
    b.u(1)  # gaps_in_frame_num_value_allowed_flag
    mbs_w, map_units_h = b.ue() + 1, b.ue() + 1
    frame_mbs_only = b.u(1)
    if not frame_mbs_only:
        b.u(1)  # mb_adaptive_frame_field_flag
    b.u(1)  # direct_8x8_inference_flag
    width, height = 16 * mbs_w, 16 * map_units_h * (2 - frame_mbs_only)
    if b.u(1):  # frame_cropping_flag: offsets in chroma sample units (Table 6-1)
        left, right, top, bottom = b.ue(), b.ue(), b.ue(), b.ue()
        sub_w, sub_h = {1: (2, 2), 2: (2, 1)}.get(chroma_idc, (1, 1))
        unit_x, unit_y = sub_w, sub_h * (2 - frame_mbs_only)
        width -= unit_x * (left + right)
        height -= unit_y * (top + bottom)
    if width <= 0 or height <= 0:
        raise BitstreamError("SPS crops the picture away")
    return Picture(width, height, CHROMA[chroma_idc], max(depth_luma, depth_chroma))


def _skip_scaling_list(b: _Bits, size: int) -> None:
    last = nxt = 8
    for _ in range(size):
        if nxt:
            nxt = (last + b.se() + 256) % 256
        last = nxt or last


def h264_pictures(data: bytes) -> tuple[list[Picture], bool]:
    """The SPSs of an access unit, and whether it holds an IDR slice (a key frame)."""
    pictures, idr = [], False
    for nal in nal_units(data):
        kind = nal[0] & 0x1F
        if kind == NAL_SPS:
            pictures.append(parse_sps(nal))
        idr = idr or kind == NAL_IDR
    return pictures, idr


def vp8_picture(data: bytes) -> tuple[list[Picture], bool]:
    """A VP8 frame's size when it is a key frame (RFC 6386 9.1), and whether it is one."""
    if not data or data[0] & 1:
        return [], False  # an inter frame: the size of the key frame before it
    if len(data) < 10 or data[3:6] != b"\x9d\x01\x2a":
        raise BitstreamError("VP8 key frame without its start code")
    width = int.from_bytes(data[6:8], "little") & 0x3FFF
    height = int.from_bytes(data[8:10], "little") & 0x3FFF
    return [Picture(width, height)], True


def announced(codec: str, data: bytes) -> tuple[list[Picture], bool]:
    """The pictures a frame's headers announce and whether it is a key frame; codec is
    aiortc's codec name ("H264", "VP8")."""
    name = codec.upper()
    if name == "H264":
        return h264_pictures(data)
    if name == "VP8":
        return vp8_picture(data)
    raise BitstreamError(f"codec {codec} is not received (VP8 or H264)")
