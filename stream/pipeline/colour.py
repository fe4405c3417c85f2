"""Y'CbCr <-> R'G'B' colour: the matrix and range a frame says it uses, as shader constants."""

from __future__ import annotations

from dataclasses import dataclass

import av

# av.video.reformatter.Colorspace / ColorRange values as PyAV reports them on frames
_BT709 = {1}
_BT601 = {5, 6}  # BT470BG, SMPTE170M
_FULL_RANGE = 2  # JPEG


@dataclass(frozen=True)
class Colour:
    matrix: str  # "bt709" | "bt601"
    full_range: bool

    @property
    def kr_kb(self) -> tuple[float, float]:
        return (0.2126, 0.0722) if self.matrix == "bt709" else (0.299, 0.114)

    def shader_vars(self) -> dict:
        kr, kb = self.kr_kb
        if self.full_range:
            y_offset, y_scale, c_scale = 0.0, 255.0, 255.0
        else:
            y_offset, y_scale, c_scale = 16.0, 219.0, 224.0
        return {"kr": kr, "kb": kb, "y_offset": y_offset, "y_scale": y_scale, "c_scale": c_scale}

    def apply_to(self, frame: av.VideoFrame) -> None:
        """Tag an output frame so the encoder signals the same colour as the input had."""
        frame.colorspace = 1 if self.matrix == "bt709" else 6
        frame.color_range = 2 if self.full_range else 1


def colour_of(frame: av.VideoFrame) -> Colour:
    """The frame's own metadata; unspecified means BT.709 limited for HD, BT.601 for SD."""
    cs = int(frame.colorspace or 2)
    if cs in _BT709:
        matrix = "bt709"
    elif cs in _BT601:
        matrix = "bt601"
    else:
        matrix = "bt709" if frame.height >= 720 else "bt601"
    return Colour(matrix, int(frame.color_range or 0) == _FULL_RANGE)
