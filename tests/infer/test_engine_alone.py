"""The engine is useful on its own: `import infer` and running a model need none of the
service, plotting, image or training libraries (pyproject's core dependencies are the engine's
only). Run in a child process where importing any of them fails."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BLOCKED = [
    "av", "aiortc", "aioice", "aiohttp", "prometheus_client", "pydantic", "tomli_w",
    "matplotlib", "torch", "PIL", "tqdm", "onnxruntime", "stream",
]  # fmt: skip

SCRIPT = textwrap.dedent(
    """
    import importlib.abc, sys

    BLOCKED = set(sys.argv[1].split(","))

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"blocked for this test: {name}", name=name)
            return None

    sys.meta_path.insert(0, Block())

    import numpy as np
    import infer

    model = infer.load("upscale.onnx")
    x = np.random.default_rng(0).random((1, 3, 19, 23), dtype=np.float32)
    y = model.run(x)
    assert y.shape == (1, 3, 38, 46), y.shape
    loaded = sorted({m.split(".")[0] for m in sys.modules} & BLOCKED)
    assert not loaded, loaded
    print("engine alone: ok", y.shape)
    """
)


@pytest.mark.gpu
def test_the_engine_runs_a_model_without_the_service_plot_or_train_libraries():
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, ",".join(BLOCKED)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "engine alone: ok" in out.stdout


def test_the_engine_command_line_names_the_extra_a_command_needs(tmp_path):
    script = SCRIPT.split("import numpy as np")[0] + textwrap.dedent(
        """
        from infer.tools.cli import main
        raise SystemExit(main(["plot", sys.argv[2]]))
        """
    )
    result = tmp_path / "bench.json"
    result.write_text('{"kind": "engine", "rows": []}')
    out = subprocess.run(
        [sys.executable, "-c", script, ",".join(BLOCKED), str(result)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2, out.stdout + out.stderr
    assert "pip install 'framesmith[plots]'" in out.stderr
