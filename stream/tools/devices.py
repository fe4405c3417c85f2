"""`python -m stream devices`: the GPU adapters wgpu can see, by index for --adapter."""

from __future__ import annotations

import infer


def main(argv: list[str] | None = None) -> int:
    adapters = infer.list_adapters()
    if not adapters:
        print("no GPU adapters (install a Vulkan driver: apt-get install mesa-vulkan-drivers)")
        return 1
    for i, a in enumerate(adapters):
        info = a.info
        print(
            f"{i}: {info.get('device', '?')} [{info.get('adapter_type', '?')}, "
            f"{info.get('backend_type', '?')}] {info.get('description', '')}"
        )
    return 0
