"""The browser's key names in X terms: DOM `KeyboardEvent.code` -> X keysym name (US layout)
and Linux evdev code, DOM `key` values that are not characters -> keysym names, DOM mouse
buttons -> X buttons.

`code` names a physical key whatever the player's layout, so a game's WASD stays WASD: it
maps through US keysyms to a keycode of the server's keymap. On every code below Xvfb's
default keymap (evdev rules, pc105, us) gives keycode == evdev + 8 except NumpadDecimal (129,
whose level 0 is KP_Decimal; fine), checked in /work/scratch/x11 (121 codes). On a server
with another layout `keymap = "evdev"` sends evdev + 8 directly, keeping physical positions.
"""

from __future__ import annotations

# DOM code -> (X keysym name, Linux evdev KEY_* number)
DOM_CODES: dict[str, tuple[str, int]] = {
    "Escape": ("Escape", 1),
    "Backspace": ("BackSpace", 14),
    "Tab": ("Tab", 15),
    "Enter": ("Return", 28),
    "Space": ("space", 57),
    "Minus": ("minus", 12),
    "Equal": ("equal", 13),
    "BracketLeft": ("bracketleft", 26),
    "BracketRight": ("bracketright", 27),
    "Backslash": ("backslash", 43),
    "Semicolon": ("semicolon", 39),
    "Quote": ("apostrophe", 40),
    "Backquote": ("grave", 41),
    "Comma": ("comma", 51),
    "Period": ("period", 52),
    "Slash": ("slash", 53),
    "IntlBackslash": ("less", 86),
    "ShiftLeft": ("Shift_L", 42),
    "ShiftRight": ("Shift_R", 54),
    "ControlLeft": ("Control_L", 29),
    "ControlRight": ("Control_R", 97),
    "AltLeft": ("Alt_L", 56),
    "AltRight": ("Alt_R", 100),
    "MetaLeft": ("Super_L", 125),
    "MetaRight": ("Super_R", 126),
    "OSLeft": ("Super_L", 125),  # older Firefox names
    "OSRight": ("Super_R", 126),
    "ContextMenu": ("Menu", 127),
    "CapsLock": ("Caps_Lock", 58),
    "NumLock": ("Num_Lock", 69),
    "ScrollLock": ("Scroll_Lock", 70),
    "PrintScreen": ("Print", 99),
    "Pause": ("Pause", 119),
    "Insert": ("Insert", 110),
    "Delete": ("Delete", 111),
    "Home": ("Home", 102),
    "End": ("End", 107),
    "PageUp": ("Prior", 104),
    "PageDown": ("Next", 109),
    "ArrowUp": ("Up", 103),
    "ArrowDown": ("Down", 108),
    "ArrowLeft": ("Left", 105),
    "ArrowRight": ("Right", 106),
    "Numpad0": ("KP_0", 82),
    "Numpad1": ("KP_1", 79),
    "Numpad2": ("KP_2", 80),
    "Numpad3": ("KP_3", 81),
    "Numpad4": ("KP_4", 75),
    "Numpad5": ("KP_5", 76),
    "Numpad6": ("KP_6", 77),
    "Numpad7": ("KP_7", 71),
    "Numpad8": ("KP_8", 72),
    "Numpad9": ("KP_9", 73),
    "NumpadDecimal": ("KP_Decimal", 83),
    "NumpadAdd": ("KP_Add", 78),
    "NumpadSubtract": ("KP_Subtract", 74),
    "NumpadMultiply": ("KP_Multiply", 55),
    "NumpadDivide": ("KP_Divide", 98),
    "NumpadEnter": ("KP_Enter", 96),
    "NumpadEqual": ("KP_Equal", 117),
    "NumpadComma": ("KP_Separator", 121),
}
_LETTER_EVDEV = {
    **dict(zip("qwertyuiop", range(16, 26), strict=True)),
    **dict(zip("asdfghjkl", range(30, 39), strict=True)),
    **dict(zip("zxcvbnm", range(44, 51), strict=True)),
}
DOM_CODES.update({f"Key{c.upper()}": (c, ev) for c, ev in _LETTER_EVDEV.items()})
DOM_CODES.update({f"Digit{d}": (str(d), 11 if d == 0 else d + 1) for d in range(10)})
_F_EVDEV = [59, 60, 61, 62, 63, 64, 65, 66, 67, 68, 87, 88, *range(183, 195)]
DOM_CODES.update({f"F{n}": (f"F{n}", ev) for n, ev in enumerate(_F_EVDEV, start=1)})

# DOM key values that are not single characters (the fallback when `code` is unknown);
# None: known to the browser but nothing to send (a dead key's first half)
DOM_KEYS: dict[str, str | None] = {
    "Enter": "Return",
    "Escape": "Escape",
    "Backspace": "BackSpace",
    "Tab": "Tab",
    "ArrowUp": "Up",
    "ArrowDown": "Down",
    "ArrowLeft": "Left",
    "ArrowRight": "Right",
    "Shift": "Shift_L",
    "Control": "Control_L",
    "Alt": "Alt_L",
    "Meta": "Super_L",
    "AltGraph": "ISO_Level3_Shift",
    "CapsLock": "Caps_Lock",
    "Home": "Home",
    "End": "End",
    "PageUp": "Prior",
    "PageDown": "Next",
    "Insert": "Insert",
    "Delete": "Delete",
    "ContextMenu": "Menu",
    "NumLock": "Num_Lock",
    "ScrollLock": "Scroll_Lock",
    "Pause": "Pause",
    "PrintScreen": "Print",
    "Dead": None,
    **{f"F{n}": f"F{n}" for n in range(1, 25)},
}

# DOM MouseEvent.button (left, middle, right, back, forward) -> X button
DOM_BUTTONS: dict[int, int] = {0: 1, 1: 2, 2: 3, 3: 8, 4: 9}


def char_keysym(ch: str) -> int:
    """The keysym of one character: Latin-1 keysyms equal the code point, the rest are
    Unicode keysyms (0x01000000 + code point)."""
    cp = ord(ch)
    if 0x20 <= cp <= 0x7E or 0xA0 <= cp <= 0xFF:
        return cp
    return 0x01000000 + cp


def known_key(code: str, key: str) -> bool:
    """Whether an event names a key this module can map (a known `code`, or a `key` that is
    one printable character or a known name)."""
    if code in DOM_CODES:
        return True
    if len(key) == 1:
        return key.isprintable()
    return DOM_KEYS.get(key) is not None
