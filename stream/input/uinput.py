"""A virtual Xbox 360 pad through /dev/uinput, written with struct and fcntl (no library).

Games that read pads themselves (SDL's evdev and joystick backends, Steam, Wine) see it as
the kernel's xpad driver shows a wired Xbox 360 controller: the same vendor and product ids,
the same buttons (BTN_A..BTN_MODE) and axes (sticks -32768..32767, triggers ABS_Z/ABS_RZ
0..255, the d-pad as ABS_HAT0X/Y -1..1), so SDL's controller database maps it without help.

The setup is the legacy interface every kernel since 2.6 takes (linux/uinput.h): UI_SET_EVBIT,
UI_SET_KEYBIT and UI_SET_ABSBIT ioctls, one `struct uinput_user_dev` written, UI_DEV_CREATE.
Each change is `struct input_event`s (linux/input.h) ending with a SYN_REPORT. Only what
changed is written; a value the kernel already has would be dropped by it anyway.

The W3C standard mapping (gamepad.py BUTTONS) goes to xpad's codes: W3C's "up" is -1 on the
y axes as in evdev, so the sticks need no flip.
"""

from __future__ import annotations

import fcntl
import os
import struct
from collections.abc import Callable
from typing import Any

# linux/input-event-codes.h
EV_SYN, EV_KEY, EV_ABS = 0x00, 0x01, 0x03
SYN_REPORT = 0
BTN_A, BTN_B, BTN_X, BTN_Y = 0x130, 0x131, 0x133, 0x134
BTN_TL, BTN_TR = 0x136, 0x137
BTN_SELECT, BTN_START, BTN_MODE, BTN_THUMBL, BTN_THUMBR = 0x13A, 0x13B, 0x13C, 0x13D, 0x13E
ABS_X, ABS_Y, ABS_Z, ABS_RX, ABS_RY, ABS_RZ = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05
ABS_HAT0X, ABS_HAT0Y = 0x10, 0x11
ABS_CNT = 0x40
BUS_USB = 0x03

# linux/uinput.h: _IOW('U', nr, int) and _IO('U', nr)
_U = ord("U")


def _ioc(direction: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (_U << 8) | nr


UI_DEV_CREATE = _ioc(0, 1, 0)
UI_DEV_DESTROY = _ioc(0, 2, 0)
UI_SET_EVBIT = _ioc(1, 100, 4)
UI_SET_KEYBIT = _ioc(1, 101, 4)
UI_SET_ABSBIT = _ioc(1, 103, 4)

# struct input_event {struct timeval time; __u16 type; __u16 code; __s32 value;}: the time
# is two longs (24 bytes on 64-bit, 16 on 32-bit); the kernel stamps the event itself
INPUT_EVENT = struct.Struct("@llHHi")
# struct uinput_user_dev {char name[80]; struct input_id {__u16 bustype, vendor, product,
# version}; __u32 ff_effects_max; __s32 absmax[64], absmin[64], absfuzz[64], absflat[64];}
USER_DEV = struct.Struct(f"@80s4HI{4 * ABS_CNT}i")

XBOX360 = (BUS_USB, 0x045E, 0x028E, 0x0110)  # Microsoft X-Box 360 pad, as xpad registers it

# standard-mapping button index -> key code (None: an axis, below)
BUTTON_CODES: tuple[int | None, ...] = (
    BTN_A, BTN_B, BTN_X, BTN_Y, BTN_TL, BTN_TR, None, None, BTN_SELECT, BTN_START,
    BTN_THUMBL, BTN_THUMBR, None, None, None, None, BTN_MODE,
)  # fmt: skip
# abs code -> (min, max, fuzz, flat), as xpad sets them
ABS_RANGES = {
    ABS_X: (-32768, 32767, 16, 128),
    ABS_Y: (-32768, 32767, 16, 128),
    ABS_RX: (-32768, 32767, 16, 128),
    ABS_RY: (-32768, 32767, 16, 128),
    ABS_Z: (0, 255, 0, 0),
    ABS_RZ: (0, 255, 0, 0),
    ABS_HAT0X: (-1, 1, 0, 0),
    ABS_HAT0Y: (-1, 1, 0, 0),
}
STICKS = (ABS_X, ABS_Y, ABS_RX, ABS_RY)  # standard-mapping axes 0..3


def input_event(etype: int, code: int, value: int) -> bytes:
    """One `struct input_event` (time zero: the kernel stamps it)."""
    return INPUT_EVENT.pack(0, 0, etype, code, value)


def user_dev(name: str, ids: tuple[int, int, int, int] = XBOX360) -> bytes:
    """The `struct uinput_user_dev` of an Xbox 360 pad."""
    absmax, absmin, fuzz, flat = ([0] * ABS_CNT for _ in range(4))
    for code, (lo, hi, fz, fl) in ABS_RANGES.items():
        absmin[code], absmax[code], fuzz[code], flat[code] = lo, hi, fz, fl
    return USER_DEV.pack(name.encode()[:79], *ids, 0, *absmax, *absmin, *fuzz, *flat)


def pad_state(buttons: tuple[float, ...], axes: tuple[float, ...]) -> dict[tuple[int, int], int]:
    """A standard-mapping state as evdev values: (type, code) -> value."""
    out: dict[tuple[int, int], int] = {}
    for code, v in zip(BUTTON_CODES, buttons, strict=True):
        if code is not None:
            out[(EV_KEY, code)] = int(v >= 0.5)
    out[(EV_ABS, ABS_Z)] = round(buttons[6] * 255)
    out[(EV_ABS, ABS_RZ)] = round(buttons[7] * 255)
    up, down, left, right = (buttons[i] >= 0.5 for i in (12, 13, 14, 15))
    out[(EV_ABS, ABS_HAT0X)] = int(right) - int(left)
    out[(EV_ABS, ABS_HAT0Y)] = int(down) - int(up)
    for code, v in zip(STICKS, axes, strict=True):
        out[(EV_ABS, code)] = max(-32768, min(32767, round(v * 32767)))
    return out


NEUTRAL = pad_state((0.0,) * 17, (0.0,) * 4)


def encode(changes: dict[tuple[int, int], int]) -> bytes:
    """The events of a state change, then SYN_REPORT (b"" when nothing changed)."""
    if not changes:
        return b""
    events = [input_event(t, c, v) for (t, c), v in sorted(changes.items())]
    return b"".join(events) + input_event(EV_SYN, SYN_REPORT, 0)


class VirtualPad:
    """One virtual pad: created on open, destroyed on close. OSError where /dev/uinput is
    missing or not writable."""

    def __init__(
        self,
        index: int,
        *,
        path: str = "/dev/uinput",
        fd: int | None = None,
        ioctl: Callable[[int, int, Any], Any] = fcntl.ioctl,
    ) -> None:
        self.index = index
        self.ioctl = ioctl
        self.fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK) if fd is None else fd
        try:
            ioctl(self.fd, UI_SET_EVBIT, EV_KEY)
            for code in BUTTON_CODES:
                if code is not None:
                    ioctl(self.fd, UI_SET_KEYBIT, code)
            ioctl(self.fd, UI_SET_EVBIT, EV_ABS)
            for code in ABS_RANGES:
                ioctl(self.fd, UI_SET_ABSBIT, code)
            os.write(self.fd, user_dev(f"framesmith pad {index} (Xbox 360)"))
            ioctl(self.fd, UI_DEV_CREATE, 0)
        except OSError:
            os.close(self.fd)
            raise
        self.state = dict(NEUTRAL)

    def update(self, buttons: tuple[float, ...], axes: tuple[float, ...]) -> None:
        new = pad_state(buttons, axes)
        self._write({k: v for k, v in new.items() if self.state.get(k) != v})

    def neutral(self) -> None:
        self._write({k: v for k, v in NEUTRAL.items() if self.state.get(k) != v})

    def _write(self, changes: dict[tuple[int, int], int]) -> None:
        data = encode(changes)
        if data:
            os.write(self.fd, data)
            self.state.update(changes)

    def close(self) -> None:
        try:
            self.ioctl(self.fd, UI_DEV_DESTROY, 0)
        finally:
            os.close(self.fd)
