"""The GPU device, found once: a real adapter when there is one, else Mesa's lavapipe."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

import wgpu

from .errors import ModelError

log = logging.getLogger(__name__)

_LIMIT_KEYS = (
    "max-buffer-size",
    "max-storage-buffer-binding-size",
    "max-uniform-buffer-binding-size",
    "max-compute-workgroup-storage-size",
    "max-compute-invocations-per-workgroup",
    "max-compute-workgroup-size-x",
    "max-compute-workgroup-size-y",
    "max-storage-buffers-per-shader-stage",
    "max-uniform-buffers-per-shader-stage",
)
_OPTIONAL_FEATURES = ("shader-f16", "timestamp-query", "subgroup")

MAX_PIPELINES = 512  # compiled compute pipelines kept per device

_lock = threading.Lock()
_devices: dict[int | None, Device] = {}


class Device:
    """A wgpu device with the adapter's full limits, its pipeline cache and GPU worker lock."""

    def __init__(self, adapter: wgpu.GPUAdapter) -> None:
        self.adapter = adapter
        limits = {k: adapter.limits[k] for k in _LIMIT_KEYS if k in adapter.limits}
        features = [f for f in _OPTIONAL_FEATURES if f in adapter.features]
        self.device = adapter.request_device_sync(
            required_limits=limits, required_features=features, label="framesmith"
        )
        self.limits: dict[str, int] = dict(self.device.limits)
        self.features = set(self.device.features)
        self.queue = self.device.queue
        self.lock = threading.RLock()  # one submitter at a time per device
        self._cache_lock = threading.Lock()
        # compiled pipelines by (source, entry point), least recently used dropped beyond
        # MAX_PIPELINES: a source that keeps changing its frame size compiles kernels with new
        # constants each time, and must not grow this without bound
        self._pipelines: OrderedDict[tuple[str, str], wgpu.GPUComputePipeline] = OrderedDict()
        info = adapter.info
        self.name = f"{info.get('device', '?')} ({info.get('backend_type', '?')})"
        self.is_cpu = info.get("adapter_type", "") == "CPU"
        # kernels that share weights across a subgroup's lanes need to know how many there
        # are; a builder sees it with the limits (0: no subgroup operations)
        self.limits["subgroup-size"] = self._subgroup_size()
        self._side: Device | None = None
        log.info("GPU device: %s", self.name)

    @property
    def compiles_at_first_dispatch(self) -> bool:
        """Whether a new kernel is compiled when first run, on the queue, rather than when its
        pipeline is made: Mesa's lavapipe (llvmpipe makes its machine code at the first
        dispatch; 7-20 s for a model's kernels at a new size, during which nothing else on
        the queue runs). GPU drivers compile when the pipeline is made."""
        return self.is_cpu

    def side(self) -> Device:
        """A second device on the same adapter, with a queue of its own: for running new
        kernels once where that compiles them (`compiles_at_first_dispatch`) without holding
        up this device's queue. Made on first use."""
        with self._cache_lock:
            if self._side is None:
                self._side = Device(self.adapter)
            return self._side

    def _subgroup_size(self) -> int:
        """The subgroup size a 1-D compute workgroup runs with, read back from the device."""
        if "subgroup" not in self.features:
            return 0
        src = (
            "@group(0) @binding(0) var<storage, read_write> out: array<u32>;\n"
            "@compute @workgroup_size(64, 1, 1)\n"
            "fn main(@builtin(local_invocation_index) i: u32,"
            " @builtin(subgroup_size) n: u32) { out[i] = n; }\n"
        )
        try:
            module = self.device.create_shader_module(code=src, label="subgroup size")
            p = self.device.create_compute_pipeline(
                layout="auto", compute={"module": module, "entry_point": "main"}
            )
            usage = wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC
            buf = self.device.create_buffer(size=256, usage=usage)
            entries = [{"binding": 0, "resource": {"buffer": buf}}]
            layout = p.get_bind_group_layout(0)
            group = self.device.create_bind_group(layout=layout, entries=entries)
            enc = self.device.create_command_encoder()
            cp = enc.begin_compute_pass()
            cp.set_pipeline(p)
            cp.set_bind_group(0, group)
            cp.dispatch_workgroups(1, 1, 1)
            cp.end()
            self.queue.submit([enc.finish()])
            return min(memoryview(self.queue.read_buffer(buf)).cast("I"))
        except wgpu.GPUError as e:  # the kernels that need subgroups are then not offered
            log.warning("subgroup size not readable (%s): subgroup kernels off", e)
            return 0

    def pipeline(
        self, source: str, label: str = "", entry_point: str = "main"
    ) -> wgpu.GPUComputePipeline:
        """Compile a compute pipeline once per distinct WGSL source and entry point."""
        key = (source, entry_point)
        with self._cache_lock:
            p = self._pipelines.get(key)
            if p is not None:
                self._pipelines.move_to_end(key)
                return p
        module = self.device.create_shader_module(code=source, label=label)
        p = self.device.create_compute_pipeline(
            layout="auto", compute={"module": module, "entry_point": entry_point}, label=label
        )
        with self._cache_lock:
            self._pipelines[key] = p
            while len(self._pipelines) > MAX_PIPELINES:
                self._pipelines.popitem(last=False)
        return p

    def has_pipeline(self, source: str, entry_point: str = "main") -> bool:
        """Whether this WGSL is compiled already (then `pipeline` costs nothing)."""
        with self._cache_lock:
            return (source, entry_point) in self._pipelines

    @property
    def cached_pipelines(self) -> int:
        return len(self._pipelines)


def time_dispatch(
    device: Device,
    pipeline: wgpu.GPUComputePipeline,
    group: wgpu.GPUBindGroup,
    grid: tuple[int, int, int],
    wait_buffer: wgpu.GPUBuffer,
    repeats: int,
) -> float:
    """Best wall time in seconds of one dispatch submitted alone and waited for.

    Timestamp queries are not trusted for this: on lavapipe they read wrong once a pass has
    used a storage texture. Reading 4 bytes of `wait_buffer` back is the wait.
    """
    best = float("inf")
    for _ in range(repeats):
        enc = device.device.create_command_encoder()
        cp = enc.begin_compute_pass()
        cp.set_pipeline(pipeline)
        cp.set_bind_group(0, group)
        cp.dispatch_workgroups(*grid)
        cp.end()
        t0 = time.perf_counter()
        device.queue.submit([enc.finish()])
        device.queue.read_buffer(wait_buffer, 0, 4)
        best = min(best, time.perf_counter() - t0)
    return best


def list_adapters() -> list[wgpu.GPUAdapter]:
    return list(wgpu.gpu.enumerate_adapters_sync())


def get_device(adapter: int | None = None) -> Device:
    """The shared device (`adapter` indexes `list_adapters()`; None picks the best one)."""
    with _lock:
        dev = _devices.get(adapter)
        if dev is None:
            if adapter is None:
                a = wgpu.gpu.request_adapter_sync(power_preference="high-performance")
            else:
                adapters = list_adapters()
                if not 0 <= adapter < len(adapters):
                    raise ModelError(f"adapter {adapter} does not exist ({len(adapters)} found)")
                a = adapters[adapter]
            if a is None:
                raise ModelError(
                    "no GPU adapter found: install a Vulkan driver (on Debian, "
                    "`apt-get install mesa-vulkan-drivers` gives the CPU 'llvmpipe' adapter)"
                )
            dev = _devices[adapter] = Device(a)
        return dev
