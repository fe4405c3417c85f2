"""Where a viewer's picture is upscaled: on the server's GPU, or in the viewer's browser.

A server-placed viewer gets the model's output ("main" stream). A viewer-placed one gets the
frames before the model (the "lowres" stream: the source's frames, encoded as they are) and
its page runs the same model, exported for the browser (infer.export_webgpu: the same
compiler, the same kernels), drawing into a WebGPU canvas (stream/static/render.js). Its
track switches encoder in place (PacketTrack.switch: the next packet is a keyframe of the
other size), so no renegotiation. The model pipeline runs only while some encoder of the
"main" stream has a subscriber (Service._run_source), so a session placed in its viewer
costs the server no GPU model work: /api/stats shows the pipelines' frame counts standing
still while only viewer-placed sessions watch.

`[model] placement`: "server" and "viewer" are the default each viewer starts from; "auto"
lets the page decide: it measures the bundle's time per frame against the frame interval
and asks for the viewer placement only when it keeps up (and back when it stops keeping
up). Every page may ask for either placement at any time (a "placement" message, any role:
it changes what that session receives, nothing else); a server without a model keeps every
viewer on the server.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import json
import logging
import time
from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING, Any

from aiohttp import web

import infer

if TYPE_CHECKING:
    import av

    from .config import ModelConfig
    from .encode import SharedEncoder
    from .sources import FrameMeta
    from .webrtc.sessions import Session

log = logging.getLogger(__name__)

SERVER = "server"
VIEWER = "viewer"
PLACEMENTS = (SERVER, VIEWER)
LOWRES = "lowres"  # the encoders' stream of the frames before the model
MAX_BUNDLES = 2  # bundles kept (one per source size); an export takes seconds of CPU
MAX_SIDE = 4096  # a bundle is made only for the source's own size, at most this big
# what a bundle's folder holds: its fixed files, and its kernels (kernels/<name>.wgsl)
BUNDLE_FILES = {"manifest.json": "application/json", "weights.bin": "application/octet-stream"}


@dataclasses.dataclass
class Choice:
    """One viewer's placement, and what its page last said about keeping up."""

    placement: str
    switches: int = 0
    since: float = dataclasses.field(default_factory=time.time)
    reason: str = ""
    model_ms: float | None = None  # the page's median model time per frame
    frame_ms: float | None = None  # the frame interval it compared that with


class Placement:
    """Every viewer's placement, the low-resolution tap, and the model's browser bundles."""

    def __init__(
        self,
        cfg: ModelConfig,
        model: infer.Model | None,
        model_name: str,
        encoder: Callable[[str, str], SharedEncoder],
        encoders: Callable[[], dict[tuple[str, str], SharedEncoder]],
        source_size: Callable[[], tuple[int, int]],
        session: Callable[[str], Session | None],
    ) -> None:
        self.default = cfg.placement
        self.kernels = list(cfg.web_kernels)
        self.model = model
        self.model_name = model_name or "model"
        self._encoder = encoder
        self._encoders = encoders
        self.source_size = source_size  # the frames before the model: what a bundle takes
        self._session = session
        self.choices: dict[str, Choice] = {}
        self.frames_tapped = 0  # source frames handed to the lowres encoders
        self.exports = 0
        self.export_s: list[float] = []
        self._bundles: collections.OrderedDict[tuple[int, int], infer.WebBundle] = (
            collections.OrderedDict()
        )
        self._exporting: dict[tuple[int, int], asyncio.Future[infer.WebBundle]] = {}

    # -- what the page is told ---------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """The hello's part: the configured placement, and where the bundle of the frames
        before the model lies (None: no model, every viewer stays on the server)."""
        bundle = None
        size = self.source_size()
        if self.model is not None and all(size):
            bundle = f"model/{size[0]}x{size[1]}/"  # the page's room's (page-relative)
        return {"placement": self.default, "bundle": bundle}

    # -- sessions ----------------------------------------------------------------------------

    def choose(self, sid: str, data: dict[str, Any]) -> dict[str, Any]:
        """A page's "placement" message: switch its main track's encoder to the frames
        before the model (viewer) or the model's output (server). Returns the answer."""
        wanted = data.get("placement")
        session = self._session(sid)
        if session is None:
            return self._answer(Choice(SERVER), "no such session")
        choice = self.choices.setdefault(sid, Choice(SERVER))
        if wanted not in PLACEMENTS:
            return self._answer(choice, f"placement must be one of {list(PLACEMENTS)}")
        if wanted == VIEWER and self.model is None:
            return self._answer(choice, "the server runs no model: nothing to place")
        choice.model_ms = _ms(data.get("model_ms"))
        choice.frame_ms = _ms(data.get("frame_ms"))
        reason = data.get("reason")
        choice.reason = reason[:64] if isinstance(reason, str) else ""
        if session.tracks and wanted != choice.placement:
            stream = LOWRES if wanted == VIEWER else "main"
            session.tracks[0].switch(self._encoder(stream, session.codec))
            choice.placement = str(wanted)
            choice.switches += 1
            choice.since = time.time()
            log.info("viewer %s: placement %s (%s)", session.id, wanted, choice.reason or "asked")
        return self._answer(choice)

    def _answer(self, choice: Choice, refused: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {"type": "placement", "placement": choice.placement}
        if refused:
            out["refused"] = refused
        return out

    def forget(self, session: str) -> None:
        self.choices.pop(session, None)

    # -- the frames before the model -------------------------------------------------------

    def tap(self, frame: av.VideoFrame, meta: FrameMeta | None) -> None:
        """A source frame, before any pipeline: to the lowres encoders of the viewer-placed
        sessions (none subscribed: nothing is done)."""
        targets = [e for (s, _), e in self._encoders().items() if s == LOWRES and e.subscribers]
        if not targets:
            return
        self.frames_tapped += 1
        own = None
        if meta is not None:  # its own copy: the main pipeline fills in the shared one
            own = dataclasses.replace(meta, stages=dict(meta.stages), mode=VIEWER, scale=1.0)
            own.t_processed = time.time()
        for enc in targets:
            enc.submit(frame, own)

    # -- the bundle ----------------------------------------------------------------------------

    async def bundle(self, size: tuple[int, int]) -> infer.WebBundle:
        """The model exported for frames of `size` (made once, in a thread, then kept)."""
        if self.model is None:
            raise LookupError("no model")
        done = self._bundles.get(size)
        if done is not None:
            self._bundles.move_to_end(size)
            return done
        pending = self._exporting.get(size)
        if pending is None:
            pending = asyncio.ensure_future(asyncio.to_thread(self._export, size))
            self._exporting[size] = pending
            pending.add_done_callback(lambda _: self._exporting.pop(size, None))
        made = await asyncio.shield(pending)
        self._bundles[size] = made
        while len(self._bundles) > MAX_BUNDLES:
            self._bundles.popitem(last=False)
        return made

    def _export(self, size: tuple[int, int]) -> infer.WebBundle:
        assert self.model is not None
        t0 = time.perf_counter()
        shape = (1, 3, size[1], size[0])
        targets = [infer.Target.browser(subgroups=True), infer.Target()]
        made = infer.export_webgpu(
            self.model, shape, targets, kernels=self.kernels, name=self.model_name
        )
        self.exports += 1
        self.export_s.append(round(time.perf_counter() - t0, 2))
        log.info("browser bundle of %s at %dx%d made in %.1f s", self.model_name, *size,
                 self.export_s[-1])  # fmt: skip
        return made

    async def file(self, size: tuple[int, int], name: str) -> tuple[bytes, str]:
        """One file of the bundle for `size`: (body, content type); LookupError: none."""
        if not (0 < size[0] <= MAX_SIDE and 0 < size[1] <= MAX_SIDE):
            raise LookupError("size")
        if name not in BUNDLE_FILES and not (
            name.startswith("kernels/") and name.endswith(".wgsl")
        ):
            raise LookupError(name)
        made = await self.bundle(size)
        if name == "manifest.json":
            return json.dumps(made.manifest).encode(), BUNDLE_FILES[name]
        if name == "weights.bin":
            return made.weights, BUNDLE_FILES[name]
        source = made.shaders.get(name)
        if source is None:
            raise LookupError(name)
        return source.encode(), "text/plain; charset=utf-8"

    # -- HTTP (stream/http.py routes) -----------------------------------------------------------

    async def respond(self, request: web.Request) -> web.Response:
        """GET /model/{size}/{file} (viewer role): a file of the bundle for frames of that
        size; only the source's own size is exported (a caller cannot make the server
        compile a bundle per size it names)."""
        size_text = request.match_info["size"]
        w, _, h = size_text.partition("x")
        size = (int(w), int(h)) if w.isdigit() and h.isdigit() else (0, 0)
        if size != self.source_size():
            raise web.HTTPNotFound(text=f"no bundle for {size_text[:16]!r}: the frames are "
                                   f"{'x'.join(map(str, self.source_size()))}")  # fmt: skip
        try:
            name = request.match_info.get("file") or f"kernels/{request.match_info['kernel']}"
            body, content_type = await self.file(size, name)
        except LookupError:
            raise web.HTTPNotFound(text="no such file in the bundle") from None
        except infer.ModelError as e:  # an op the browser export lacks: the page says why
            raise web.HTTPConflict(text=f"this model has no browser bundle: {e}"[:300]) from None
        return web.Response(
            body=body, content_type=content_type.partition(";")[0],
            headers={"Cache-Control": "private, max-age=3600"},
        )  # fmt: skip

    # -- figures -------------------------------------------------------------------------------

    def of(self, session: str) -> str:
        choice = self.choices.get(session)
        return choice.placement if choice is not None else SERVER

    def stats(self) -> dict[str, Any]:
        return {
            "default": self.default,
            "sessions": {sid: dataclasses.asdict(c) for sid, c in self.choices.items()},
            "viewer_placed": sum(c.placement == VIEWER for c in self.choices.values()),
            "frames_tapped": self.frames_tapped,
            "bundles": [f"{w}x{h}" for w, h in self._bundles],
            "exports": self.exports,
            "export_s": self.export_s[-4:],
        }


async def page_file(request: web.Request) -> web.Response:
    """GET /model/runtime.js and /model/present.wgsl (public: code, no model in them): the
    bundle's runtime (infer/web/runtime.js) and the canvas's shader (shaders/web/)."""
    name = request.match_info["file"]
    if name == "runtime.js":
        text = resources.files("infer").joinpath("web", "runtime.js").read_text("utf-8")
        return web.Response(text=text, content_type="text/javascript")
    if name != "present.wgsl":
        raise web.HTTPNotFound(text="no such file")
    text = resources.files("shaders").joinpath("web", "present.wgsl").read_text("utf-8")
    return web.Response(text=text, content_type="text/plain")


def _ms(v: object) -> float | None:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v < 1e6:
        return round(float(v), 2)
    return None
