import os
import warnings
from pathlib import Path

import pytest

LONG_MARKS = ("soak", "train", "interop", "browser", "slow")  # pyproject's markers, > 5 s each
# unmarked files whose tests took 30 s to 6 min each in a loaded -n 3 run (mypy over both
# packages; every zoo architecture mutated; serve's TLS and network-address starts)
LONG_FILES = (
    "tests/test_types.py",
    "tests/infer/test_fuzz.py",
    "tests/stream/test_serve_security.py",
)


# Test files whose tests share a module- or session-scoped fixture of ours (an exported zoo,
# compiled models, a browser, a server): under `pytest -n N` (pytest-xdist) each group runs on
# one worker, so the fixture is built once, not once per worker that draws one of its tests.
# The group is the file itself unless named. A file missing here still passes, only slower;
# its workers warn (see _shared_fixture).
SHARED_FIXTURE_FILES = {
    "tests/infer/test_models.py": "",
    "tests/infer/test_export_web_browser.py": "",
    "tests/infer/test_temporal.py": "",
    "tests/infer/test_spandrel.py": "",
    "tests/infer/tools/test_bench_plots.py": "",
    "tests/stream/test_process.py": "",
}
# shared, but cheaper to build again than to hold the file's other tests on one worker (the
# zoo's files: zoo_onnx exports each architecture when a worker's test first asks for it)
UNGROUPED_FILES = {
    "tests/infer/test_conv_variants.py",
    "tests/infer/test_zoo.py",
    "tests/infer/test_fuzz.py",
    "tests/stream/test_zoo_pipeline.py",
}


def _shared_fixture(item: pytest.Item) -> str | None:
    """The name of a fixture of ours that `item` shares with other tests (module or session
    scope, not autouse), or None."""
    info = getattr(item, "_fixtureinfo", None)
    for name in info.names_closure if info else ():
        for fd in info.name2fixturedefs.get(name, ()):
            ours = fd.baseid.startswith("tests") and not getattr(fd, "_autouse", False)
            if ours and fd.scope in ("module", "session"):
                return name
    return None


@pytest.hookimpl(optionalhook=True)  # without pytest-xdist it is never called
def pytest_xdist_make_scheduler(config, log):
    """`-n N` (xdist's default `--dist load`): tests one by one to whichever worker is free,
    except SHARED_FIXTURE_FILES' groups, each a unit (xdist's `loadgroup` marks do not reach
    the scheduler with pytest 9.2: it renamed the node id attribute xdist rewrites)."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            if path in SHARED_FIXTURE_FILES:
                return SHARED_FIXTURE_FILES[path] or path
            return nodeid

    return SharedFixtureScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    """Under xdist, the long groups first; GPU tests are skipped cleanly (with the reason)
    when no adapter exists."""
    if hasattr(config, "workerinput"):
        # an xdist worker (every worker sorts alike): the long groups are handed out first,
        # so the run does not end on one worker's soak while the others sit idle
        items.sort(
            key=lambda item: (
                not (
                    any(m in item.keywords for m in LONG_MARKS)
                    or item.nodeid.startswith(LONG_FILES)
                )
            )
        )
        unlisted = {
            item.nodeid.split("::", 1)[0]
            for item in items
            if _shared_fixture(item)
            and item.nodeid.split("::", 1)[0] not in SHARED_FIXTURE_FILES.keys() | UNGROUPED_FILES
        }
        for path in sorted(unlisted):
            warnings.warn(
                f"{path} shares a module/session fixture: list it in tests/conftest.py's "
                "SHARED_FIXTURE_FILES so one xdist worker builds it",
                stacklevel=1,
            )
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


class _ZooOnDemand(dict):
    """(name, opset) -> the exported ONNX file, exported at its first use: under xdist each
    worker exports only the architectures its tests use, so the zoo's tests need not share
    one worker (exporting them all took ~5 min of a loaded 2-core machine)."""

    def __init__(self, root: Path, opsets: set[int]) -> None:
        super().__init__()
        self.root, self.opsets = root, opsets

    def __missing__(self, key: tuple[str, int]) -> Path:
        from infer.training.zoo import ARCHS, export

        name, opset = key
        if name not in ARCHS or opset not in self.opsets:
            raise KeyError(key)
        path = self[key] = export(name, self.root / f"{name}_op{opset}.onnx", opset)
        return path


@pytest.fixture(scope="session")
def zoo_onnx(tmp_path_factory) -> dict[tuple[str, int], Path]:
    """The users' architectures (infer.training.zoo) exported at opset 17 and at the newest
    opset the exporter offers, once per session each, when a test first asks:
    (name, opset) -> path. Skips without torch."""
    pytest.importorskip("torch", reason="the zoo needs torch (the train extra)")
    from infer.training.zoo import EXPORT_OPSET, newest_opset

    return _ZooOnDemand(tmp_path_factory.mktemp("user-zoo"), {EXPORT_OPSET, newest_opset()})
