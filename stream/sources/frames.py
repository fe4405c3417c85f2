"""Small helpers between av.VideoFrame planes and numpy arrays."""

from __future__ import annotations

import av
import numpy as np


def frame_from_planes(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> av.VideoFrame:
    """A yuv420p frame from its three planes (any size, odd included)."""
    h, w = y.shape
    frame = av.VideoFrame(w, h, "yuv420p")
    for plane, data in zip(frame.planes, (y, u, v), strict=True):
        rows = np.zeros((plane.height, plane.line_size), np.uint8)
        rows[:, : data.shape[1]] = data
        fill_plane(plane, rows)
    return frame


def planes_of(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Y, U, V planes of a yuv420p frame as (height, width) uint8 arrays."""
    if frame.format.name != "yuv420p":
        frame = frame.reformat(format="yuv420p")
    out = []
    for plane in frame.planes:
        rows = plane_rows(plane)
        out.append(rows[:, : plane.width].copy())
    return out[0], out[1], out[2]


def plane_rows(plane: av.video.plane.VideoPlane) -> np.ndarray:
    """A plane's bytes as (height, line_size) uint8 rows, without a copy."""
    return np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)


def fill_plane(plane: av.video.plane.VideoPlane, data: np.ndarray) -> None:
    """Copy `data` (the plane's whole buffer: line_size-wide rows) into the plane."""
    plane.update(data)  # type: ignore[arg-type]  # PyAV's stub says bytes; any buffer works
