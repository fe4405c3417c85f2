"""Kernel choice by measurement, cached on disk per device and driver.

When a Model specialises a conv whose variants compete (infer.ops.conv: direct, Winograd,
tiled), `MeasuringChooser` times each candidate built on its own, on this device, at this
shape, and keeps the fastest; the winner is written to a JSON file per device and driver so
the next load (or process) builds only the winner. Burn/cubecl autotune the same way; a
rule cannot know that a weight load costs a per-lane gather on lavapipe (what made the
"fewer FMAs" Winograd variants barely faster there) or what a given GPU's register file holds.

Where the cache lives: $FRAMESMITH_KERNEL_CACHE, else the user's cache folder
($XDG_CACHE_HOME or ~/.cache on Linux, ~/Library/Caches on macOS, %LOCALAPPDATA% on
Windows) / framesmith / kernels. What it does: `infer.load(..., kernels=...)`, else
$FRAMESMITH_KERNELS: "measure" (default), "cached" (never time: the cached choice of the conv's
size class, else of its nearest measured size class, else the rule), "rules" (no timing: the
ops' rules), or a variant name ("winograd4", ...) forced wherever it applies (the rule
elsewhere).

Not timing while frames run: a caller that compiles a new size while its own work is on the
device (a service stepping its input scale, `Model.prepare(..., measure=False)`) gets the
"cached" behaviour. Timing then would hold the device's queue for seconds (on lavapipe a
160x90 stream stalled 6-10 s a frame while a new size class was measured) and the frames'
work would skew the times.

Budget: convs under MIN_FLOPS are not timed (the measurement would cost more than any
choice could save; the rule picks); a large map is timed on a crop of whole rows of about
65536 output pixels (infer.ops.conv_site.trial_site); a candidate more than SLOW times
behind the best after one run is not run again; and one conv's candidates stop being
timed once BUDGET_S of compiling and running has been spent (the best so far wins).
Timing: candidates alternate, best of REPEATS runs each. On a CPU adapter (lavapipe) the
clock is this process's CPU time: on the shared 2-core machine this was written on, wall
times of the same kernel varied 2x between runs while process CPU time stayed within ~10%,
and lavapipe's threads are this process's threads.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .compile import Program
from .device import Device
from .errors import ModelError
from .graph import Graph
from .ops.choice import Choice, Trial
from .ops.conv import VARIANT_NAMES
from .runtime import ConstantStore, Executable

log = logging.getLogger(__name__)

ENV_CACHE = "FRAMESMITH_KERNEL_CACHE"
ENV_MODE = "FRAMESMITH_KERNELS"
MODES = ("measure", "cached", "rules")
MIN_FLOPS = 20e6
# per conv; the candidates are tried in the chain's order (infer.ops.conv.VARIANTS), the
# likely winners first. On lavapipe with a cold shader cache, compiling is most of it: ESPCN's
# three convs at 640x360 took 115 s to measure with 30 s, all six candidates of the 3x3s.
BUDGET_S = 12.0
REPEATS = 3
SLOW = 2.0  # a candidate this many times slower than the best after one run is not re-run
CACHE_VERSION = 1


def user_cache_dir() -> Path:
    """framesmith's folder in the platform's per-user cache location."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "framesmith"


def cache_dir() -> Path:
    """Where measured choices are kept: $FRAMESMITH_KERNEL_CACHE or <user cache>/kernels."""
    env = os.environ.get(ENV_CACHE)
    return Path(env) if env else user_cache_dir() / "kernels"


def resolve_mode(kernels: str | None) -> str:
    """The kernel-choice mode: the argument, else $FRAMESMITH_KERNELS, else "measure"."""
    mode = kernels or os.environ.get(ENV_MODE) or "measure"
    if mode not in MODES and mode not in VARIANT_NAMES:
        raise ModelError(
            f"kernels={mode!r}: use one of {', '.join(MODES)} or a conv variant "
            f"({', '.join(VARIANT_NAMES)})"
        )
    return mode


def device_signature(device: Device) -> dict[str, str]:
    """What a measurement is valid for: the adapter and its driver."""
    info = device.adapter.info
    return {
        "vendor": str(info.get("vendor", "")),
        "device": str(info.get("device", "")),
        "driver": str(info.get("description", "")),
        "backend": str(info.get("backend_type", "")),
    }


def _slug(sig: dict[str, str]) -> str:
    text = "-".join(v for v in (sig["device"], sig["driver"], sig["backend"]) if v)
    return re.sub(r"[^A-Za-z0-9.]+", "_", text).strip("_")[:120] or "device"


class KernelCache:
    """The measured winners for one device and driver: {key: {"kernel", "ms", "at"}} in a JSON
    file, written atomically and merged with what another process may have written since."""

    def __init__(self, folder: Path, signature: dict[str, str]) -> None:
        self.path = Path(folder) / f"kernels-{_slug(signature)}.json"
        self.signature = signature
        self._lock = threading.Lock()
        self._entries = self._read()

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as e:
            log.warning("kernel cache %s unreadable (%s): measuring again", self.path, e)
            return {}
        if data.get("version") != CACHE_VERSION or data.get("signature") != self.signature:
            return {}
        entries = data.get("choices", {})
        return entries if isinstance(entries, dict) else {}

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            entry = self._entries.get(key)
            return dict(entry) if isinstance(entry, dict) else None

    def nearest(self, key: str, candidates: list[str]) -> tuple[str, dict[str, Any]] | None:
        """The entry for `key`, else for the same op in the nearest size class measured
        (infer.ops.conv_site.ConvSite.key: "out<=4096px", "out>65536px"), whose kernel is
        one of `candidates`; with the key it was measured under."""
        with self._lock:
            entries = dict(self._entries)
        usable = {
            k: e
            for k, e in entries.items()
            if isinstance(e, dict) and e.get("kernel") in candidates
        }
        if key in usable:
            return key, dict(usable[key])
        base, pixels = _size_class(key)
        near = []
        for k in usable:
            other_base, other = _size_class(k)
            if pixels and other and other_base == base:
                near.append((abs(math.log(other / pixels)), k))
        if not near:
            return None
        k = min(near)[1]
        return k, dict(usable[k])

    def put(self, key: str, entry: dict[str, Any]) -> None:
        with self._lock:
            merged = {**self._read(), **self._entries, key: entry}
            self._entries = merged
            data = {"version": CACHE_VERSION, "signature": self.signature, "choices": merged}
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
                with os.fdopen(fd, "w") as f:
                    json.dump(data, f, indent=1, sort_keys=True)
                os.replace(tmp, self.path)
            except OSError as e:  # a read-only cache folder costs a re-measure, nothing more
                log.warning("kernel cache %s not written: %s", self.path, e)


_SIZE_CLASS = re.compile(r" out(<=|>)(\d+)px")


def _size_class(key: str) -> tuple[str, int]:
    """A key without its output size class, and the class's pixels (a map over the largest
    class counts as 4 times its bound; 0: a key with no class)."""
    m = _SIZE_CLASS.search(key)
    if m is None:
        return key, 0
    pixels = int(m[2]) * (4 if m[1] == ">" else 1)
    return key[: m.start()] + key[m.end() :], pixels


_caches: dict[tuple[str, str], KernelCache] = {}
_caches_lock = threading.Lock()


def kernel_cache(device: Device, folder: Path | None = None) -> KernelCache:
    """The cache for this device in `folder` (default `cache_dir()`), one object per file."""
    sig = device_signature(device)
    folder = Path(folder) if folder is not None else cache_dir()
    key = (str(folder.resolve()), _slug(sig))
    with _caches_lock:
        cache = _caches.get(key)
        if cache is None:
            cache = _caches[key] = KernelCache(folder, sig)
        return cache


class TrialRunner:
    """One candidate bound to GPU buffers, timed as a whole (all its dispatches, one pass)."""

    def __init__(self, device: Device, trial: Trial) -> None:
        inputs = sorted({b.ref for d in trial.dispatches for b in d.bindings if b.kind == "in"})
        outputs = sorted({b.ref for d in trial.dispatches for b in d.bindings if b.kind == "out"})
        graph = Graph(nodes=[], inputs=[], outputs=outputs, constants={}, opset=0)
        program = Program(
            graph, trial.values, trial.dispatches, trial.consts, inputs, trial.precision
        )
        self.device = device
        self.exe = Executable(device, program, ConstantStore(device))
        rng = np.random.default_rng(0)
        self.exe.upload({n: rng.standard_normal(trial.values[n].shape) for n in inputs})
        self.wait_on = self.exe.tensor_buffer(outputs[0])

    def run(self) -> None:
        enc = self.device.device.create_command_encoder()
        self.exe.encode(enc)
        self.device.queue.submit([enc.finish()])
        self.device.queue.read_buffer(self.wait_on, 0, 4)


class MeasuringChooser:
    """An `infer.ops.choice.Chooser` that times candidates on `device` (see module doc)."""

    def __init__(
        self,
        device: Device,
        mode: str = "measure",
        cache: KernelCache | None = None,
        *,
        min_flops: float | None = None,
        budget_s: float | None = None,
        repeats: int = REPEATS,
    ) -> None:
        self.device = device
        self.mode = mode
        self.cache = cache
        self.min_flops = MIN_FLOPS if min_flops is None else min_flops
        self.budget_s = BUDGET_S if budget_s is None else budget_s
        self.repeats = repeats
        self.clock: Callable[[], float] = time.process_time if device.is_cpu else time.perf_counter

    def __call__(
        self, key: str, candidates: list[str], rule: str, trial: Callable[[str], Trial]
    ) -> Choice:
        if self.mode == "rules":
            return Choice(rule, "rule", candidates, key)
        if self.mode == "cached":
            near = self.cache.nearest(key, candidates) if self.cache else None
            if near is None:
                return Choice(rule, "rule", candidates, key)
            found, entry = near
            how = "cached" if found == key else "nearest"
            if how == "nearest":
                log.info("%s: %s, as measured for %s (not timed now)", key, entry["kernel"], found)
            return Choice(entry["kernel"], how, candidates, key, entry.get("ms", {}))
        if self.mode != "measure":  # a forced variant, where it applies
            if self.mode in candidates:
                return Choice(self.mode, "forced", candidates, key)
            return Choice(rule, "rule", candidates, key)
        cached = self.cache.get(key) if self.cache else None
        # a choice made among other candidates (a variant added since, or another engine
        # version's) is made again
        if cached and cached.get("candidates") == candidates:
            return Choice(cached["kernel"], "cached", candidates, key, cached.get("ms", {}))
        first = trial(rule)
        if sum(d.flops for d in first.dispatches) < self.min_flops:
            return Choice(rule, "rule", candidates, key)
        t0 = time.perf_counter()
        ms = self.measure({rule: first}, [c for c in candidates if c != rule], trial)
        best = min(ms, key=lambda k: ms[k])
        if self.cache is not None:
            entry = {"kernel": best, "ms": ms, "candidates": candidates}
            self.cache.put(key, entry | {"at": time.strftime("%Y-%m-%d")})
        spent = time.perf_counter() - t0
        where = f"cached in {self.cache.path}" if self.cache else "not cached"
        log.log(
            logging.WARNING if spent > 10 else logging.INFO,
            "%s: %s, chosen by timing %s in %.1f s (once per device and driver; %s)",
            key,
            best,
            ", ".join(f"{k} {v:.2f} ms" for k, v in ms.items()),
            spent,
            where,
        )
        return Choice(best, "measured", candidates, key, ms)

    def on(self, device: Device) -> MeasuringChooser:
        """This chooser timing on another device of the same adapter (Device.side: trials
        there do not hold up the queue a service's frames use), writing the same cache."""
        return self._copy(device, self.mode)

    def untimed(self) -> MeasuringChooser:
        """This chooser, never timing: "measure" becomes "cached" (see the module doc)."""
        return self._copy(self.device, "cached") if self.mode == "measure" else self

    def _copy(self, device: Device, mode: str) -> MeasuringChooser:
        return MeasuringChooser(
            device,
            mode,
            self.cache,
            min_flops=self.min_flops,
            budget_s=self.budget_s,
            repeats=self.repeats,
        )

    def measure(
        self, built: dict[str, Trial], others: list[str], trial: Callable[[str], Trial]
    ) -> dict[str, float]:
        """Best time in ms of each candidate; the rule's is always measured, the others
        until the budget is spent (compile and first run included)."""
        start = time.perf_counter()
        runners: dict[str, TrialRunner] = {}
        with self.device.lock:
            for name in [*built, *others]:
                if runners and time.perf_counter() - start > self.budget_s:
                    log.info("kernel choice budget spent: %s not measured", name)
                    continue
                runner = TrialRunner(self.device, built.get(name) or trial(name))
                runner.run()  # compiles, and warms caches
                runners[name] = runner
            best = {name: float("inf") for name in runners}
            for _ in range(self.repeats):
                leader = min(best.values())
                for name, runner in runners.items():
                    if best[name] > SLOW * leader:
                        continue  # clearly behind after a run: no more of its time spent
                    t0 = self.clock()
                    runner.run()
                    best[name] = min(best[name], (self.clock() - t0) * 1000)
        return best


def chooser_for(device: Device, kernels: str | None = None) -> MeasuringChooser:
    """The chooser a Model uses: `kernels` (or $FRAMESMITH_KERNELS) resolved, with the
    device's cache in `cache_dir()`."""
    mode = resolve_mode(kernels)
    cache = kernel_cache(device) if mode in ("measure", "cached") else None
    return MeasuringChooser(device, mode, cache)
