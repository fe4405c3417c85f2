"""X11 screen capture through MIT-SHM (XShmGetImage), called with ctypes.

Why this and not PyAV's x11grab (both measured on this machine, /work/scratch/x11/REPORT.md):
at 640x360@30 both cost about 5 % of a core (the BGRA -> yuv420p conversion dominates), but
XShm is a little faster per frame (1.70 against 2.04 ms mean, 2.48 against 4.81 ms p95), follows
a display that changes size (x11grab keeps delivering the old corner, or fails with EACCES on
every frame after a shrink), and reports a lost X server as an error (x11grab with
draw_mouse=0 silently repeats the last frame forever). python-xlib has no MIT-SHM, hence ctypes.

Two libX11 behaviours a server process cannot live with are turned into exceptions:
- the default error handler exit()s on any protocol error (a BadMatch after the root
  shrank), so a handler records the error and the call site raises XCaptureError;
- a lost connection exit()s the process ("XIO: fatal IO error"), reproduced here; libX11 >=
  1.7's XSetIOErrorExitHandler lets the handler return, and the next call raises XServerLost.
A ctypes callback cannot raise, so the handlers set flags that every call checks.

The frame: the shm segment is wrapped without a copy (`VideoFrame.from_numpy_buffer`) and one
long-lived VideoReformatter writes the only copy, straight into yuv420p (PyAV caches its
SwsContext on the source frame, so `frame.reformat` would build a new one per capture: 0.55 ms
a frame at 360p). No cursor is drawn: the viewer page draws the player's own.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from typing import Any

import av
import numpy as np
from av.video.reformatter import VideoReformatter

ZPIXMAP = 2
ALL_PLANES = 0xFFFFFFFFFFFFFFFF
CONFIGURE_NOTIFY = 22
STRUCTURE_NOTIFY_MASK = 1 << 17
IPC_PRIVATE = 0
IPC_CREAT = 0o1000
IPC_RMID = 0


class XServerLost(ConnectionError):
    """The X server went away (or was never there): reconnect later."""


class XCaptureError(RuntimeError):
    """A capture request failed while the server lives (e.g. right after a resize)."""


class XImage(ctypes.Structure):
    _fields_ = [
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
        ("xoffset", ctypes.c_int),
        ("format", ctypes.c_int),
        ("data", ctypes.c_void_p),
        ("byte_order", ctypes.c_int),
        ("bitmap_unit", ctypes.c_int),
        ("bitmap_bit_order", ctypes.c_int),
        ("bitmap_pad", ctypes.c_int),
        ("depth", ctypes.c_int),
        ("bytes_per_line", ctypes.c_int),
        ("bits_per_pixel", ctypes.c_int),
        ("red_mask", ctypes.c_ulong),
        ("green_mask", ctypes.c_ulong),
        ("blue_mask", ctypes.c_ulong),
        ("obdata", ctypes.c_void_p),
        ("f", ctypes.c_void_p * 6),
    ]


class XShmSegmentInfo(ctypes.Structure):
    _fields_ = [
        ("shmseg", ctypes.c_ulong),
        ("shmid", ctypes.c_int),
        ("shmaddr", ctypes.c_void_p),
        ("readOnly", ctypes.c_int),
    ]


class XErrorEvent(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("display", ctypes.c_void_p),
        ("resourceid", ctypes.c_ulong),
        ("serial", ctypes.c_ulong),
        ("error_code", ctypes.c_ubyte),
        ("request_code", ctypes.c_ubyte),
        ("minor_code", ctypes.c_ubyte),
    ]


class XConfigureEvent(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("serial", ctypes.c_ulong),
        ("send_event", ctypes.c_int),
        ("display", ctypes.c_void_p),
        ("event", ctypes.c_ulong),
        ("window", ctypes.c_ulong),
        ("x", ctypes.c_int),
        ("y", ctypes.c_int),
        ("width", ctypes.c_int),
        ("height", ctypes.c_int),
        ("border_width", ctypes.c_int),
        ("above", ctypes.c_ulong),
        ("override_redirect", ctypes.c_int),
    ]


class XEvent(ctypes.Union):
    _fields_ = [
        ("type", ctypes.c_int),
        ("xconfigure", XConfigureEvent),
        ("pad", ctypes.c_long * 24),
    ]


_ERROR_HANDLER = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(XErrorEvent))
_IO_ERROR_HANDLER = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)
_IO_EXIT_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)

# Xlib's handlers are per process, not per display: errors are filed by Display pointer
_errors: dict[int, tuple[int, int, int]] = {}
_dead: set[int] = set()


@_ERROR_HANDLER
def _on_error(dpy: int | None, ev: Any) -> int:
    e = ev.contents
    _errors[dpy or 0] = (e.error_code, e.request_code, e.minor_code)
    return 0


@_IO_ERROR_HANDLER
def _on_io_error(dpy: int | None) -> int:
    _dead.add(dpy or 0)
    return 0


@_IO_EXIT_HANDLER
def _on_io_exit(dpy: int | None, _data: int | None) -> None:
    _dead.add(dpy or 0)  # returning (instead of exit()) is what the exit handler allows


class _Lib:
    """libX11, libXext and libc's SysV shm calls, loaded on first use with their types."""

    _loaded: _Lib | None = None

    def __init__(self) -> None:
        x11 = ctypes.CDLL(ctypes.util.find_library("X11") or "libX11.so.6")
        xext = ctypes.CDLL(ctypes.util.find_library("Xext") or "libXext.so.6")
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        p, vp, ul, i, ui = (
            ctypes.POINTER,
            ctypes.c_void_p,
            ctypes.c_ulong,
            ctypes.c_int,
            ctypes.c_uint,
        )
        img = p(XImage)
        self.open = _fn(x11, "XOpenDisplay", vp, ctypes.c_char_p)
        self.close = _fn(x11, "XCloseDisplay", i, vp)
        self.default_screen = _fn(x11, "XDefaultScreen", i, vp)
        self.root_window = _fn(x11, "XRootWindow", ul, vp, i)
        self.default_visual = _fn(x11, "XDefaultVisual", vp, vp, i)
        self.default_depth = _fn(x11, "XDefaultDepth", i, vp, i)
        self.sync = _fn(x11, "XSync", i, vp, i)
        self.destroy_image = _fn(x11, "XDestroyImage", i, img)
        self.get_image = _fn(x11, "XGetImage", img, vp, ul, i, i, ui, ui, ul, i)
        self.get_geometry = _fn(
            x11, "XGetGeometry", i, vp, ul, p(ul), p(i), p(i), p(ui), p(ui), p(ui), p(ui)
        )
        self.select_input = _fn(x11, "XSelectInput", i, vp, ul, ctypes.c_long)
        self.check_typed_window_event = _fn(x11, "XCheckTypedWindowEvent", i, vp, ul, i, p(XEvent))
        self.set_error_handler = _fn(x11, "XSetErrorHandler", vp, _ERROR_HANDLER)
        self.set_io_error_handler = _fn(x11, "XSetIOErrorHandler", vp, _IO_ERROR_HANDLER)
        self.set_io_exit_handler = None
        if hasattr(x11, "XSetIOErrorExitHandler"):  # libX11 >= 1.7 (bookworm: 1.8.4)
            self.set_io_exit_handler = _fn(
                x11, "XSetIOErrorExitHandler", None, vp, _IO_EXIT_HANDLER, vp
            )
        self.shm_query = _fn(xext, "XShmQueryExtension", i, vp)
        self.shm_create_image = _fn(
            xext, "XShmCreateImage", img, vp, vp, ui, i, vp, p(XShmSegmentInfo), ui, ui
        )
        self.shm_attach = _fn(xext, "XShmAttach", i, vp, p(XShmSegmentInfo))
        self.shm_detach = _fn(xext, "XShmDetach", i, vp, p(XShmSegmentInfo))
        self.shm_get_image = _fn(xext, "XShmGetImage", i, vp, ul, img, i, i, ul)
        self.shmget = _fn(libc, "shmget", i, i, ctypes.c_size_t, i)
        self.shmat = _fn(libc, "shmat", vp, i, vp, i)
        self.shmdt = _fn(libc, "shmdt", i, vp)
        self.shmctl = _fn(libc, "shmctl", i, i, i, vp)
        self.set_error_handler(_on_error)
        self.set_io_error_handler(_on_io_error)

    @classmethod
    def get(cls) -> _Lib:
        if cls._loaded is None:
            try:
                cls._loaded = cls()
            except OSError as e:
                raise XServerLost(
                    f"cannot load libX11/libXext ({e}): apt-get install libx11-6 libxext6"
                ) from None
        return cls._loaded


def _fn(lib: ctypes.CDLL, name: str, restype: Any, *argtypes: Any) -> Any:
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


class XShmCapture:
    """Grabs of one X display's root window as yuv420p frames (not thread-safe: one thread
    at a time). Raises XServerLost when the server is gone, XCaptureError for a failed grab."""

    def __init__(self, display: str | None = None, *, use_shm: bool = True) -> None:
        self.lib = _Lib.get()
        if self.lib.set_io_exit_handler is None:
            raise XServerLost(
                "libX11 older than 1.7 (no XSetIOErrorExitHandler): a lost X server would end "
                "this process; upgrade libx11-6"
            )
        self.display_name = display or os.environ.get("DISPLAY", "")
        if not self.display_name:
            raise XServerLost("no X display given and $DISPLAY is not set")
        self.dpy = self.lib.open(self.display_name.encode())
        if not self.dpy:
            raise XServerLost(f"cannot open X display {self.display_name}")
        self.lib.set_io_exit_handler(self.dpy, _on_io_exit, None)
        screen = self.lib.default_screen(self.dpy)
        self.root = self.lib.root_window(self.dpy, screen)
        self.visual = self.lib.default_visual(self.dpy, screen)
        self.depth = self.lib.default_depth(self.dpy, screen)
        # MIT-SHM needs the server in our IPC namespace (a container without --ipc=host has
        # not): then plain XGetImage, one more copy through the socket (~1.3x at 360p)
        self.use_shm = bool(use_shm and self.lib.shm_query(self.dpy))
        self.lib.select_input(self.dpy, self.root, STRUCTURE_NOTIFY_MASK)
        self.width = self.height = 0
        self.resizes = 0
        self._img: Any = None
        self._shm: XShmSegmentInfo | None = None
        self._pixels: np.ndarray | None = None
        self._reformatter = VideoReformatter()
        self._setup(*self._root_size())

    # -- the X side ------------------------------------------------------------------------

    def _check(self, what: str) -> None:
        key = self.dpy or 0
        if key in _dead:
            raise XServerLost(f"X server {self.display_name} went away ({what})")
        err = _errors.pop(key, None)
        if err is not None:
            code, request, minor = err
            raise XCaptureError(f"X error {code} on request {request}.{minor} ({what})")

    def _root_size(self) -> tuple[int, int]:
        r, b, d = ctypes.c_ulong(), ctypes.c_uint(), ctypes.c_uint()
        x, y, w, h = ctypes.c_int(), ctypes.c_int(), ctypes.c_uint(), ctypes.c_uint()
        ok = self.lib.get_geometry(
            self.dpy, self.root, *(ctypes.byref(v) for v in (r, x, y, w, h, b, d))
        )
        self._check("XGetGeometry")
        if not ok:
            raise XCaptureError("XGetGeometry failed")
        return w.value, h.value

    def _free(self) -> None:
        if self._img is None:
            return
        if self._shm is not None:
            if self.dpy and self.dpy not in _dead:
                self.lib.shm_detach(self.dpy, ctypes.byref(self._shm))
                self.lib.sync(self.dpy, 0)
            self.lib.shmdt(self._shm.shmaddr)
            self._img.contents.data = None
            self._shm = None
        self.lib.destroy_image(self._img)
        self._img, self._pixels = None, None

    def _setup(self, width: int, height: int) -> None:
        """Images for a root of this size (even sides: yuv420p halves them)."""
        self._free()
        self.width, self.height = width & ~1, height & ~1
        if self.use_shm and not self._attach(self.width, self.height):
            self.use_shm = False

    def _attach(self, w: int, h: int) -> bool:
        lib = self.lib
        info = XShmSegmentInfo()
        img = lib.shm_create_image(
            self.dpy, self.visual, self.depth, ZPIXMAP, None, ctypes.byref(info), w, h
        )
        if not img:
            raise XCaptureError("XShmCreateImage failed")
        if img.contents.bits_per_pixel != 32:
            lib.destroy_image(img)
            raise XCaptureError(f"{img.contents.bits_per_pixel} bits per pixel: need a 24/32-bit")
        bpl = img.contents.bytes_per_line
        size = bpl * h
        info.shmid = lib.shmget(IPC_PRIVATE, size, IPC_CREAT | 0o600)
        if info.shmid < 0:
            lib.destroy_image(img)
            raise XCaptureError(f"shmget failed: {os.strerror(ctypes.get_errno())}")
        addr = lib.shmat(info.shmid, None, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            lib.shmctl(info.shmid, IPC_RMID, None)
            lib.destroy_image(img)
            raise XCaptureError(f"shmat failed: {os.strerror(ctypes.get_errno())}")
        info.shmaddr, info.readOnly = addr, 0
        img.contents.data = addr
        lib.shm_attach(self.dpy, ctypes.byref(info))
        lib.sync(self.dpy, 0)
        lib.shmctl(info.shmid, IPC_RMID, None)  # freed when both sides detach: never leaked
        try:
            self._check("XShmAttach")
        except XCaptureError:  # BadAccess: the server cannot see our segment
            lib.shmdt(addr)
            img.contents.data = None
            lib.destroy_image(img)
            return False
        self._img, self._shm = img, info
        buf = (ctypes.c_ubyte * size).from_address(addr)
        self._pixels = np.ndarray((h, bpl // 4, 4), np.uint8, buffer=buf)[:, :w, :]
        return True

    def _poll_resize(self) -> bool:
        """A root ConfigureNotify (a RandR size change) re-creates the image."""
        ev = XEvent()
        new = None
        while self.lib.check_typed_window_event(
            self.dpy, self.root, CONFIGURE_NOTIFY, ctypes.byref(ev)
        ):
            new = (ev.xconfigure.width, ev.xconfigure.height)
        self._check("event poll")
        if new is None or (new[0] & ~1, new[1] & ~1) == (self.width, self.height):
            return False
        self.resizes += 1
        self._setup(*new)
        return True

    # -- public ------------------------------------------------------------------------------

    def grab(self) -> np.ndarray:
        """The root window as (h, w, 4) BGRX uint8: a view of the shm segment, valid until the
        next grab."""
        self._poll_resize()
        if self.use_shm and self._img is not None and self._pixels is not None:
            ok = self.lib.shm_get_image(self.dpy, self.root, self._img, 0, 0, ALL_PLANES)
            try:
                self._check("XShmGetImage")
            except XCaptureError:  # BadMatch: the root shrank before its ConfigureNotify came
                self.resizes += 1
                self._setup(*self._root_size())
                raise
            if not ok:
                raise XCaptureError("XShmGetImage failed")
            return self._pixels
        img = self.lib.get_image(
            self.dpy, self.root, 0, 0, self.width, self.height, ALL_PLANES, ZPIXMAP
        )
        if not img:
            self._check("XGetImage")
            self._setup(*self._root_size())
            raise XCaptureError("XGetImage failed (the display changed size?)")
        try:
            c = img.contents
            data = ctypes.string_at(c.data, c.bytes_per_line * c.height)
            rows = np.frombuffer(data, np.uint8).reshape(c.height, c.bytes_per_line // 4, 4)
            return rows[:, : c.width]
        finally:
            self.lib.destroy_image(img)

    def grab_frame(self) -> av.VideoFrame:
        """The root window as a yuv420p frame (swscale writes the only copy)."""
        pixels = self.grab()
        try:
            src = av.VideoFrame.from_numpy_buffer(pixels, format="bgra")
        except ValueError:  # XGetImage rows of another stride
            src = av.VideoFrame.from_ndarray(np.ascontiguousarray(pixels), format="bgra")
        return self._reformatter.reformat(src, format="yuv420p", threads=1)

    def close(self) -> None:
        try:
            self._free()
        finally:
            if self.dpy:
                if self.dpy not in _dead:
                    self.lib.close(self.dpy)
                # after an IO error XCloseDisplay would touch the dead socket: the Display
                # struct (a few kB) is left behind on purpose
                self.dpy = None
