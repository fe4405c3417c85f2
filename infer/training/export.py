"""Export to ONNX (opset 17, dynamic height and width) and the deploy gate.

The gate passes a model only if
1. the engine (`infer.load`) and onnxruntime agree on a random odd-sized input:
   max |engine - ort| / max |ort| <= gate.parity_tol (1e-4 by default),
2. on the held-out frames it beats the baseline (PIL bicubic for upscalers, the noisy input
   for denoisers) by at least gate.min_gain_db of mean PSNR,
3. it beats every method in gate.beat (e.g. the edge-adaptive scaler) on held-out PSNR and
   on the held-out sequences' warping error (temporal.py),
4. its flicker on still pixels is at most gate.max_flicker_vs_bicubic times bicubic's (a
   CNN's wider window lets motion next to a still HUD reach it: measured 1.8x for a model
   trained without the temporal term; no CNN we trained got below bicubic), and
5. it beats every model in eval.compare (e.g. the default, for the hq model) by at least
   gate.min_gain_over_compare_db of held-out PSNR.
A failing gate raises `DeployGateError`, naming every check that failed and by how much.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
import torch
from torch import nn

if TYPE_CHECKING:
    from .config import GateConfig

OPSET = 17
INPUT, OUTPUT = "input", "output"


class DeployGateError(RuntimeError):
    """The exported model is not fit to ship; the message says why."""


def export_onnx(model: nn.Module, path: str | Path, opset: int = OPSET) -> Path:
    """Write `model` as ONNX with a dynamic batch, height and width; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    dummy = torch.rand(1, 3, 36, 52)
    axes = {0: "batch", 2: "height", 3: "width"}
    out_axes = {0: "batch", 2: "out_height", 3: "out_width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            model,
            (dummy,),
            str(path),
            opset_version=opset,
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamic_axes={INPUT: axes, OUTPUT: out_axes},
            do_constant_folding=True,
            dynamo=False,
        )
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    return path


def ort_session(path: str | Path) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


@dataclass
class Parity:
    shape: tuple[int, ...]
    max_abs: float
    rel: float
    ok: bool
    error: str = ""  # why the engine could not run the model, if it could not


def engine_parity(
    path: str | Path, size: tuple[int, int] = (37, 53), tol: float = 1e-4, seed: int = 0
) -> Parity:
    """Compare `infer.load(path).run` with onnxruntime on a random input of `size` (h, w)."""
    import infer

    shape = (1, 3, int(size[0]), int(size[1]))
    x = np.random.default_rng(seed).random(shape, dtype=np.float32)
    ref = ort_session(path).run(None, {INPUT: x})[0]
    try:
        got = infer.load(str(path)).run(x)
    except Exception as e:  # noqa: BLE001 - reported by the gate, with the cause
        return Parity(shape, float("inf"), float("inf"), False, f"{type(e).__name__}: {e}")
    got = got if isinstance(got, np.ndarray) else next(iter(got.values()))
    if got.shape != ref.shape:
        return Parity(shape, float("inf"), float("inf"), False, f"shape {got.shape} != {ref.shape}")
    max_abs = float(np.max(np.abs(got - ref)))
    rel = max_abs / max(float(np.max(np.abs(ref))), 1e-12)
    return Parity(shape, max_abs, rel, rel <= tol)


def check_gate(
    parity: Parity | None,
    gain_db: float,
    baseline: str,
    cfg_gate: GateConfig,
    *,
    psnr: dict[str, float] | None = None,
    warp: dict[str, float] | None = None,
    flicker: dict[str, float] | None = None,
    compare: tuple[str, ...] = (),
) -> None:
    """Raise DeployGateError unless every check of the module's docstring holds. `psnr`
    (held-out frames), `warp` and `flicker` (held-out sequences) map a method to its mean;
    the model is "model"; `compare` names the models of eval.compare."""
    problems = []
    if parity is not None and not parity.ok:
        if parity.error:
            problems.append(f"the engine could not run the model on {parity.shape}: {parity.error}")
        else:
            problems.append(
                f"engine vs onnxruntime relative error {parity.rel:.2e} on {parity.shape} "
                f"exceeds {cfg_gate.parity_tol:.0e} (max abs {parity.max_abs:.2e})"
            )
    if not gain_db >= cfg_gate.min_gain_db:
        problems.append(
            f"PSNR gain over {baseline} is {gain_db:+.2f} dB on the held-out frames, "
            f"below the required {cfg_gate.min_gain_db:+.2f} dB"
        )
    problems += _versus(cfg_gate, psnr or {}, warp or {}, flicker or {}, compare)
    if problems:
        raise DeployGateError("deploy gate failed: " + "; ".join(problems))


def _versus(
    cfg_gate: GateConfig,
    psnr: dict[str, float],
    warp: dict[str, float],
    flicker: dict[str, float],
    compare: tuple[str, ...],
) -> list[str]:
    problems = []
    for other in cfg_gate.beat:
        if other not in psnr:
            problems.append(f"gate.beat names {other!r}, which was not evaluated")
            continue
        if not psnr["model"] > psnr[other]:
            problems.append(
                f"held-out PSNR {psnr['model']:.2f} dB does not beat {other}'s {psnr[other]:.2f}"
            )
        if other not in warp:
            problems.append(f"no warping error measured for {other} (eval.sequences = 0?)")
        elif not warp["model"] < warp[other]:
            problems.append(
                f"warping error {warp['model']:.3f} on the held-out sequences is not below "
                f"{other}'s {warp[other]:.3f}"
            )
    limit = cfg_gate.max_flicker_vs_bicubic
    if limit > 0:
        if "bicubic" not in flicker:
            problems.append("no flicker measured for bicubic (eval.sequences = 0?)")
        elif not flicker["model"] <= limit * flicker["bicubic"]:
            problems.append(
                f"flicker {flicker['model']:.3f} on still pixels is "
                f"{flicker['model'] / flicker['bicubic']:.2f}x bicubic's, above the allowed "
                f"{limit:g}x"
            )
    for other in compare:
        gain = psnr["model"] - psnr[other]
        if not gain >= cfg_gate.min_gain_over_compare_db:
            problems.append(
                f"held-out PSNR gain over {other} is {gain:+.2f} dB, below the required "
                f"{cfg_gate.min_gain_over_compare_db:+.2f} dB"
            )
    return problems
