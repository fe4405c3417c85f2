"""One room: one source, its pipelines and shared encoders, adaptation, viewers and players.

source ──▶ tee ──▶ FramePipeline (model)    ──▶ SharedEncoder per codec ──▶ every viewer
                └─▶ FramePipeline (bilinear) ──▶ SharedEncoder per codec ──▶ compare tracks

GPU work and encoding run once per frame whatever the number of viewers; the compare
pipeline and each encoder only run while someone is watching them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

import av
from aiortc.mediastreams import MediaStreamTrack

import infer

from .adaptation import Adaptation
from .audio import GameAudio
from .auth import RIGHTS, Right
from .bitrate import BitratePolicy
from .config import Config
from .encode import PacketTrack, SharedEncoder
from .feed import Feed
from .input import (
    AgentHub,
    CallbackSink,
    ClickToPhoton,
    InputControl,
    InputEvent,
    InputOutcome,
)
from .input.clipboard import ClipboardShare
from .input.gamepad import GamepadSink
from .metrics import Metrics
from .pipeline import FramePipeline, FrameTiming
from .placement import Placement
from .preparing import CHEAP, ModelSwitch
from .sinks import PushSinks
from .sources import Source, SourceState, WebRTCSource, X11Source, open_source
from .webrtc import SessionKind, Sessions, SignallingError
from .webrtc.ingest import IngestLimits

if TYPE_CHECKING:
    from .input.xtest import XTestInjector

# a room logs under the service's name: operators' log filters predate rooms
log = logging.getLogger("stream.service")
# /healthz names the source by kind and size only: an x11 source's display string or a
# file's path is for admins
PUBLIC_SOURCE_KEYS = ("kind", "state", "width", "height", "fps", "frames")


class Room:
    """Source, pipelines, encoders, sessions and player control of one room: a process
    (stream/service.py) holds one or many, each with its own config (source, model, audio)."""

    def __init__(
        self,
        cfg: Config,
        model: infer.Model | None = None,
        model_name: str = "",
        extra_models: dict[str, infer.Model] | None = None,
        name: str = "default",
    ) -> None:
        self.name = name
        self.config = cfg
        self.model = model
        self.model_name = model_name if model is not None else ""
        # mode name -> model: "model" is the main one, "model:<name>" the extra ones
        self.models: dict[str, infer.Model] = {"model": model} if model is not None else {}
        for name, m in (extra_models or {}).items():
            self.models[f"model:{name}"] = m
        self.started = time.time()
        self.source: Source = open_source(
            cfg.source.uri,
            width=cfg.source.width,
            height=cfg.source.height,
            fps=cfg.source.fps,
            loop=cfg.source.loop,
            marker=cfg.source.marker,
            max_size=(cfg.source.max_width, cfg.source.max_height),
            on_change=cfg.source.on_change,
        )
        self.modes = [*self.models, "bilinear", "bicubic", "planar", "edge", "bypass"]
        mode = cfg.model.mode
        if mode == "model" and model is None:
            mode = "bilinear"
        self.mode: str = mode  # the mode chosen (config, or an admin's /api/mode)
        self.adapt = Adaptation(cfg.adapt, cfg.source.fps)
        # a model is made ready (its kernels timed and warmed on a side device) while another
        # mode serves: at start a cheap one, on a switch the one before (stream/preparing.py)
        self._switch = ModelSwitch(
            lambda m: self._pipes.get(m), lambda: self.sessions.viewers, 1000.0 / cfg.source.fps
        )
        self._pipes: dict[str, FramePipeline] = {}
        self.encoders: dict[tuple[str, str], SharedEncoder] = {}
        self.metrics = Metrics(self._live)
        self.sessions = Sessions(self, cfg.server, cfg.encoder, cfg.bandwidth)
        self.placement = Placement(  # where each viewer's picture is upscaled (issue 29)
            cfg.model, model, self.model_name, self.encoder, lambda: self.encoders,
            lambda: (self.source.width, self.source.height), self.sessions.by_id.get,
        )  # fmt: skip
        self.bitrate = BitratePolicy(
            cfg.bandwidth,
            encoders=lambda: self.encoders,
            viewers=lambda: [(s.id, t) for s in self.sessions.viewers for t in s.tracks],
            controller=lambda: self.input.controller,
        )
        if isinstance(self.source, WebRTCSource):
            self.source.on_reject = self._reject_publisher
        # -- player input (issue 14, stream/input): who may drive, where events go ---------
        self.input = InputControl(
            mode=cfg.input.control,
            auto_take=cfg.input.auto_take,
            may_control=lambda session: self.can_control(session),  # the auth hook, late-bound
            notify=self._notify_session,
        )
        self.agents = AgentHub(cfg.input.control)  # GET /api/input: remote game hosts
        self.injector: XTestInjector | None = None
        if isinstance(self.source, X11Source):
            from .input.policy import InputPolicy
            from .input.xtest import XTestInjector  # python-xlib, only for X displays

            self.injector = XTestInjector(
                self.source.display,
                keymap=cfg.input.keymap,
                policy=InputPolicy.from_config(cfg.input),  # issue 25: what a player reaches
            )
        self.pads = GamepadSink.for_display(self.injector, cfg.input)  # issue 26: pads, keys
        # issue 26: [input] clipboard; X copies go to the players in control
        self.clipboard = ClipboardShare.for_display(self.injector, cfg.input, self.input.tell)
        self.input.sinks += [
            CallbackSink(self.source.on_input),  # the test scene's cursor
            self.agents,
            *([self.pads] if self.pads is not None else []),
            *([self.clipboard] if self.clipboard is not None else []),
        ]
        self.click_to_photon = ClickToPhoton()
        self.input_events = 0
        self.reports: dict[str, dict[str, Any]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self._main_task: asyncio.Task[None] | None = None
        self._main_feed = Feed()
        self._compare_feed = Feed()
        self._last_dropped: dict[str, int] = {}
        self._rate_checked: set[str] = set()
        self.device = ""
        # push sinks (stream/sinks/): checked now (a bad token file stops the start), run
        # from start() on the main stream's shared encoders
        self.push = PushSinks(cfg.push, cfg.server)
        # issue 26: the game's sound to the viewers (a ValueError when [audio] cannot go
        # with this source)
        self.audio = GameAudio.for_source(cfg.audio, self.source, cfg.source.fps)

    # -- pipelines ---------------------------------------------------------------------------

    def pipeline(self, mode: str) -> FramePipeline:
        pipe = self._pipes.get(mode)
        if pipe is None:
            m = self.config.model
            if mode in self.models:
                pipe = FramePipeline(
                    self.models[mode], mode="model", slots=m.slots, max_plans=m.plans
                )
            else:
                pipe = FramePipeline(
                    mode=mode,
                    scale=m.scale,
                    slots=m.slots,
                    adapter=self.config.server.adapter_index,
                    max_plans=m.plans,
                )
            self._pipes[mode] = pipe
            self.device = pipe.device.name
        return pipe

    def encoder(self, stream: str, codec: str) -> SharedEncoder:
        key = (stream, codec)
        enc = self.encoders.get(key)
        if enc is None:
            if stream == "compare" and not self.config.model.compare:
                raise SignallingError(400, "compare stream disabled (model.compare = false)")
            e = self.config.encoder
            gpu = (
                bool(self.device)
                and "cpu" not in self.device.lower()
                and ("llvmpipe" not in self.device.lower())
            )
            enc = SharedEncoder(
                codec,
                bitrate=e.bitrate,
                max_fps=e.max_fps,
                keyframe_interval_s=e.keyframe_interval_s,
                min_keyframe_interval_s=e.min_keyframe_interval_s,
                hardware=e.hardware,
                gpu=gpu,
                name=stream,
                rtp_clock=e.rtp_clock,
                layers=self.config.bandwidth.enabled and self.config.bandwidth.layers,
            )
            self.encoders[key] = enc
        return enc

    async def start(self) -> None:
        if self.clipboard is not None:
            self.clipboard.start()  # X copies reach the players through this loop
        if self.mode in self.models:  # no black page: a cheap mode serves until it is ready
            self._switch.begin(self.mode, self.model_name, self.pipeline(self.mode), CHEAP)
        self.pipeline(self.running_mode())  # find the device and compile early
        self._tasks.append(asyncio.ensure_future(self._run_source()))
        self._main_task = asyncio.ensure_future(self._run_pipeline("main", self._main_feed))
        self.bitrate.start()
        if self.config.model.compare:
            self._tasks.append(
                asyncio.ensure_future(self._run_pipeline("compare", self._compare_feed))
            )
        # the game's sound (AAC, encoded once) when there is any, else a file's own audio
        pushed = self.audio.push_feed() or self.source.audio
        self.push.start(lambda codec: self.encoder("main", codec), pushed)
        self.audio.start()
        log.info(
            "serving %s through %s (%s) on %s",
            self.source.kind,
            self.mode,
            self.model_name or "no model",
            self.device,
        )

    async def _run_source(self) -> None:
        try:
            async for frame in self.source.frames():
                self.metrics.frames_in.inc()
                # the GPU works only while someone watches (after a short warm-up that
                # compiles the pipeline for this frame size)
                main = self._pipes.get(self.running_mode())
                self._main_feed.wanted = (main is None or main.stats.frames_out < 3) or any(
                    e.subscribers for (s, _), e in self.encoders.items() if s == "main"
                )
                self._main_feed.put(frame)
                self.placement.tap(frame, self.source.meta(frame.pts))  # viewer-placed
                self._compare_feed.wanted = any(
                    e.subscribers for (s, _), e in self.encoders.items() if s == "compare"
                )
                self._compare_feed.put(frame)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.exception("source %s failed", self.source.kind)
            self.source.fail(f"{type(e).__name__}: {e}", SourceState.FAILED)

    async def _run_pipeline(self, stream: str, feed: Feed) -> None:
        while True:
            mode = self.running_mode() if stream == "main" else "bilinear"
            pipe = self.pipeline(mode)
            if stream == "main":
                self.adapt.apply_scale(pipe)
            label = f"{stream}:{mode}"
            frames = pipe.frames(feed, live=True)
            try:
                async for out in frames:
                    self._after_pipeline(stream, label, pipe, out)
                    if stream == "main" and self.running_mode() != mode:
                        break  # mode switched (by a user or the adaptation): the other pipeline
                else:
                    return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s pipeline (%s) failed on a frame; continuing", stream, mode)
                await asyncio.sleep(0.5)
            finally:
                await frames.aclose()

    def _check_rate(self, label: str, pipe: FramePipeline, out: av.VideoFrame) -> None:
        """Say once per mode, after warm-up, when the GPU cannot keep up with the source:
        viewers then get the GPU's rate (newest frame wins), which should not surprise."""
        if label in self._rate_checked or pipe.stats.frames_out < 5:
            return
        self._rate_checked.add(label)
        recent = pipe.stats.timings(last=4)
        per_frame = sorted(t.upload_ms + (t.t_done - t.t_submitted) * 1000 for t in recent)
        ms = per_frame[len(per_frame) // 2]
        fps = self.source.fps or self.config.source.fps
        if ms > 0 and 1000 / ms < 0.9 * fps:
            log.warning(
                "%s takes %.0f ms per frame (%dx%d out) on %s: about %.1f fps against the "
                "source's %g, so viewers get %.1f fps (the newest frame wins); a smaller "
                "source (--width/--height), a lighter model or --mode bilinear keeps up",
                label, ms, out.width, out.height, self.device, 1000 / ms, fps, 1000 / ms,
            )  # fmt: skip
        else:
            log.info("%s takes %.0f ms per frame: keeps up with %g fps", label, ms, fps)

    def _after_pipeline(
        self, stream: str, label: str, pipe: FramePipeline, out: av.VideoFrame
    ) -> None:
        meta = self.source.meta(out.pts)
        timing: FrameTiming | None = pipe.stats.timing_of(out.pts)
        self.metrics.record_frame(label, timing)
        dropped = pipe.stats.dropped
        delta = dropped - self._last_dropped.get(label, 0)
        if delta > 0:
            self.metrics.frames_dropped.labels(label).inc(delta)
        self._last_dropped[label] = dropped
        if stream == "main" and timing is not None:
            self._check_rate(label, pipe, out)
            model_pipe = self._pipes.get(self.mode)
            if not self._switch.observe(timing, pipe):  # else a model is being prepared
                self.adapt.observe(timing, pipe, self.mode, time.monotonic(), model_pipe)
        if meta is not None and stream == "main":
            if timing is not None:
                meta.stages.update(
                    {
                        "wait": timing.wait_ms,
                        "upload": timing.upload_ms,
                        "submit": timing.submit_ms,
                        "readback": timing.readback_ms,
                        "pipeline": timing.total_ms,
                    }
                )
                if timing.gpu_ms is not None:
                    meta.stages["gpu"] = timing.gpu_ms
            meta.scale = pipe.input_scale if pipe.mode == "model" else 1.0
            meta.mode = pipe.mode
            meta.t_processed = time.time()
            meta.stages["source_to_processed"] = (meta.t_processed - meta.t_src) * 1000
        for (s, _codec), enc in self.encoders.items():
            if s == stream:
                # a compare frame gets its own meta so timings of the main one stay intact
                enc.submit(out, meta if stream == "main" else None)

    def set_mode(self, mode: str) -> None:
        if mode not in self.modes:
            raise SignallingError(400, f"mode must be one of {self.modes}, not {mode!r}")
        if mode != self.mode:
            log.info("mode: %s -> %s", self.mode, mode)
            before = self.running_mode()
            size = self._pipes[before].last_size if before in self._pipes else None
            self.mode = mode
            self._switch.cancel()
            if mode in self.models:
                # the frames keep the mode that runs until the model is ready for them: its
                # first compile at this size (and on a new machine, timing its kernels) took
                # 5-16 s on lavapipe with no frame meanwhile
                pipe = self.pipeline(mode)
                pipe.last_size = size or pipe.last_size
                self.adapt.apply_scale(pipe)
                name = self.model_name if mode == "model" else mode.partition(":")[2]
                self._switch.begin(mode, name, pipe, before)
            for (s, _), enc in self.encoders.items():
                if s == "main":
                    enc.request_keyframe(urgent=True)

    def running_mode(self) -> str:
        """The main stream's mode now: the one serving while the chosen model is made ready
        (stream/preparing.py), else the adaptation's for the chosen mode."""
        serving = self._switch.serving()
        return serving if serving is not None else self.adapt.running_mode(self.mode)

    # -- input and reports -------------------------------------------------------------------

    # -- the sessions' host (stream.webrtc.SessionHost) -------------------------------------

    def can_control(self, session: str) -> bool:
        """May this session drive the game: a viewer whose token has the player (or admin)
        role (an open server's viewers all do; publishers never)."""
        s = self.sessions.by_id.get(session)
        return s is not None and s.kind is SessionKind.WHEP and Right.PLAY in RIGHTS[s.role]

    def on_input(self, event: InputEvent, session: str = "") -> InputOutcome:
        self.input_events += 1
        if event.kind == "gamepad" and self.config.input.gamepad == "off":
            return InputOutcome(False, 'gamepads are off here ([input] gamepad = "off")')
        if event.kind != "mousemove":
            log.debug("input from %s: %s", session, event)
        return self.input.submit(session, event)  # injected only where can_control says so

    def on_control(self, session: str, take: bool | None) -> dict[str, Any]:
        return self.input.state(session) if take is None else self.input.take(session, take)

    def on_click_to_photon(self, session: str, sample: dict[str, Any]) -> None:
        self.click_to_photon.add(sample)

    def session_closed(self, session: str, kind: SessionKind) -> None:
        """Forget what was kept for a session, and release the keys it held."""
        self.reports.pop(session, None)
        self.input.session_closed(session)
        self.placement.forget(session)

    def _notify_session(self, session: str, message: dict[str, Any]) -> None:
        s = self.sessions.by_id.get(session)
        if s is not None:
            s.control.send(message)

    def on_report(self, session: str, report: dict[str, Any]) -> None:
        self.reports[session] = report

    def on_placement(self, session: str, data: dict[str, Any]) -> dict[str, Any]:
        return self.placement.choose(session, data)  # upscale in its page or here

    def on_session(self, kind: SessionKind) -> None:
        self.metrics.sessions.labels(str(kind)).inc()

    def _reject_publisher(self, session: str, reason: str) -> None:
        """This publisher's stream was refused (too big, not 4:2:0 8-bit): end its session."""
        log.warning("publisher %s dropped: %s", session, reason)
        task = asyncio.ensure_future(self.sessions.close(session, reason=reason))
        self._background.add(task)  # held until done (the loop keeps only weak references)
        task.add_done_callback(self._background.discard)

    def publisher_refusal(self) -> str | None:
        if isinstance(self.source, WebRTCSource):
            return None
        return (
            f"the source is {self.source.kind!r}; start the server with --source webrtc to "
            "accept WHIP publishers"
        )

    def publisher_track(self, session: str, track: MediaStreamTrack) -> None:
        if isinstance(self.source, WebRTCSource):
            self.source.set_track(track, session)

    def audio_track(self, video: PacketTrack | None) -> MediaStreamTrack | None:
        """A viewer's game-sound track, held in sync with `video` (None: no audio)."""
        return self.audio.track(video)

    def publisher_left(self, session: str) -> None:
        if isinstance(self.source, WebRTCSource):
            self.source.drop_publisher(session)

    def publisher_limits(self) -> IngestLimits:
        return IngestLimits(self.config.source.max_width, self.config.source.max_height)

    def publisher_refused(self, session: str, reason: str) -> None:
        self._reject_publisher(session, reason)

    # -- figures -----------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source.kind,
            "mode": self.mode,
            "modes": self.modes,
            "model": self.model_name,
            "compare": self.config.model.compare,
            "gamepad": self.config.input.gamepad != "off",  # the page reads pads (players)
            "clipboard": self.clipboard is not None,  # the page sends its pastes
            "preparing": self._switch.public(),  # a model being made ready, how far
            **self.placement.describe(),  # where the picture is upscaled, the bundle
        }

    def summary(self) -> dict[str, Any]:
        """One line of GET /api/rooms: what an operator places viewers and rooms by."""
        fps = [e.stats()["fps"] for (s, _), e in self.encoders.items() if s == "main"]
        return {
            "name": self.name,
            "source": self.source.kind,
            "state": str(self.source.state),
            "mode": self.mode,
            "running_mode": self.running_mode(),
            "viewers": self.sessions.connected_viewers(),
            "publishers": len(self.sessions.publishers),
            "fps": max(fps, default=0.0),
        }

    def _live(self) -> dict[str, Any]:
        return {
            "viewers": self.sessions.connected_viewers(),
            "publishers": len(self.sessions.publishers),
            "encoders": [e.stats() for e in self.encoders.values()],
            "viewer_dropped": self.sessions.viewer_dropped(),
            "source_state": str(self.source.state),
            "process": self.resources(),
            "push": self.push.stats(),
        }

    def health(self) -> dict[str, Any]:
        """What anyone may read (/healthz): whether it serves, and what; no session ids,
        addresses, error text, display names or GPU (those are for admins: /api/stats)."""
        info = self.source.info()
        return {
            "status": "ok" if self.source.state.healthy else "degraded",
            "model": self.model_name or None,
            "mode": self.mode,
            "source": {k: info[k] for k in PUBLIC_SOURCE_KEYS},
            "viewers": self.sessions.connected_viewers(),
            "publishers": len(self.sessions.publishers),
            "uptime_s": round(time.time() - self.started, 1),
            "audio": self.audio.health(),
            "preparing": self._switch.phase(),
        }

    def resources(self) -> dict[str, Any]:
        """What a soak watches for leaks (stream/tools/soak): this process's resident memory
        and open fds, GPU memory held in wgpu buffers and textures, peer connections still
        open, and the depth of every queue frames wait in."""
        out: dict[str, Any] = {
            "rss_bytes": None,
            "open_fds": None,
            "gpu_bytes": None,
            "threads": threading.active_count(),
        }
        with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/self/statm") as f:
            out["rss_bytes"] = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        with contextlib.suppress(OSError):
            out["open_fds"] = len(os.listdir("/proc/self/fd"))
        with contextlib.suppress(Exception):  # diagnostics are best effort
            import wgpu

            total = wgpu.diagnostics.object_counts.get_dict()["total"]
            out["gpu_bytes"] = int(total.get("resource_mem", 0))
            out["gpu_objects"] = int(total.get("count", 0))
        queued = self.sessions.queued_packets()
        out["peer_connections"] = self.sessions.open_peer_connections()
        out["peer_objects"] = self.sessions.peer_objects()
        out["viewer_queue_packets"] = sum(queued)
        out["viewer_queue_max"] = max(queued, default=0)
        out["encoder_pending"] = sum(e.pending for e in self.encoders.values())
        out["pipeline_in_flight"] = sum(
            max(0, p.stats.frames_in - p.stats.frames_out - p.stats.dropped)
            for p in self._pipes.values()
        )
        return out

    def stats(self) -> dict[str, Any]:
        return {
            **self.health(),
            "device": self.device,
            "adapt": {**self.adapt.state(self.mode), "running_mode": self.running_mode()},
            "bandwidth": self.bitrate.state(),
            "source": self.source.details(),
            "sessions_open": len(self.sessions.viewers),
            "process": self.resources(),
            "pipelines": {m: p.stats.summary() for m, p in self._pipes.items()},
            "encoders": [e.stats() for e in self.encoders.values()],
            "sessions": [s.info() for s in self.sessions.by_id.values()],
            "viewer_dropped": self.sessions.viewer_dropped(),
            "input_events": self.input_events,
            "input": {
                **self.input.stats(),
                "agents": self.agents.stats(),
                "x11_injected": getattr(self.injector, "injected", None),
                "gamepad": self.pads.stats() if self.pads is not None else None,
                "clipboard": self.clipboard.stats() if self.clipboard is not None else None,
                "x11_blocked": dict(getattr(self.injector, "blocked", {})),  # [input] policy
            },
            "click_to_photon": self.click_to_photon.summary(),
            "push": self.push.stats(),
            "audio": self.audio.stats(),
            "preparing": self._switch.state(),
            "placement": self.placement.stats(),  # per session, the frames before the model
        }

    async def stop(self) -> None:
        await self.bitrate.stop()
        await self.push.stop()
        await self.sessions.close_all()
        await self.audio.stop()
        tasks = [*self._tasks, *([self._main_task] if self._main_task else [])]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for enc in self.encoders.values():
            await enc.close()
        for pipe in self._pipes.values():
            await asyncio.to_thread(pipe.close)  # drains GPU work in flight
        # a room removed while the process serves on: its GPU buffers and encoders go with
        # the last reference (stream/service.py remove_room)
        self._pipes.clear()
        self.encoders.clear()
        await self.source.close()
        await self.agents.close()
        for closing in (self.pads, self.clipboard):  # virtual pads, the clipboard's thread
            if closing is not None:
                closing.close()
        if self.injector is not None:
            self.injector.close()  # lets go of anything still held
        log.info("stopped")
