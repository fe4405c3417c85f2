import pytest


def pytest_collection_modifyitems(config, items):  # noqa: ANN001
    """GPU tests are skipped cleanly (with the reason) when no adapter exists."""
    try:
        import wgpu

        ok = wgpu.gpu.request_adapter_sync(power_preference="high-performance") is not None
    except Exception:  # noqa: BLE001 - any failure to find a driver means no GPU
        ok = False
    if ok:
        return
    skip = pytest.mark.skip(reason="no GPU adapter (apt-get install mesa-vulkan-drivers)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
