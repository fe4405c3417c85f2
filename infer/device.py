"""The GPU device, found once: a real adapter when there is one, else Mesa's lavapipe."""

from __future__ import annotations

import logging
import threading

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
_OPTIONAL_FEATURES = ("shader-f16", "timestamp-query")

_lock = threading.Lock()
_devices: dict[int | None, Device] = {}


class Device:
    """A wgpu device with the adapter's full limits, its pipeline cache and GPU worker lock."""

    def __init__(self, adapter: wgpu.GPUAdapter):
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
        self._pipelines: dict[tuple[str, str], wgpu.GPUComputePipeline] = {}
        info = adapter.info
        self.name = f"{info.get('device', '?')} ({info.get('backend_type', '?')})"
        self.is_cpu = info.get("adapter_type", "") == "CPU"
        log.info("GPU device: %s", self.name)

    def pipeline(
        self, source: str, label: str = "", entry_point: str = "main"
    ) -> wgpu.GPUComputePipeline:
        """Compile a compute pipeline once per distinct WGSL source and entry point."""
        key = (source, entry_point)
        p = self._pipelines.get(key)
        if p is None:
            module = self.device.create_shader_module(code=source, label=label)
            p = self.device.create_compute_pipeline(
                layout="auto", compute={"module": module, "entry_point": entry_point}, label=label
            )
            self._pipelines[key] = p
        return p


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
