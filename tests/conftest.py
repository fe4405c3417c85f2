import os
from pathlib import Path

import pytest


def pytest_collection_modifyitems(config, items):
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


@pytest.fixture(autouse=True, scope="session")
def kernel_choice_in_tmp(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Conv kernel choice (infer.kernel_choice) writes its cache in this session's tmp folder,
    never the user's, and picks by rule unless a test asks for measuring (kernels="measure"):
    timing candidates compiles every variant, which would slow every test that loads a model
    and make which kernel runs depend on the machine's load."""
    os.environ["FRAMESMITH_KERNEL_CACHE"] = str(tmp_path_factory.mktemp("kernel-cache"))
    os.environ.setdefault("FRAMESMITH_KERNELS", "rules")


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    """Where a test leaves screenshots and reports: its tmp_path, unless FRAMESMITH_ARTIFACTS
    names a folder to keep them in (how docs/figures were made)."""
    keep = os.environ.get("FRAMESMITH_ARTIFACTS")
    if not keep:
        return tmp_path
    path = Path(keep)
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def zoo_onnx(tmp_path_factory) -> dict[tuple[str, int], Path]:
    """The users' architectures (infer.training.zoo) exported once per session at opset 17 and
    at the newest opset the exporter offers: (name, opset) -> path. Skips without torch."""
    pytest.importorskip("torch", reason="the zoo needs torch (the train extra)")
    from infer.training.zoo import ARCHS, EXPORT_OPSET, export, newest_opset

    root = tmp_path_factory.mktemp("user-zoo")
    return {
        (name, opset): export(name, root / f"{name}_op{opset}.onnx", opset)
        for opset in sorted({EXPORT_OPSET, newest_opset()})
        for name in ARCHS
    }
