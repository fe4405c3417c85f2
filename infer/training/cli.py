"""`python -m infer train --config configs/train-upscale.toml [--steps N] [--seconds S]
[--out DIR] [--resume] [--no-deploy] [--compare A,B] [--evaluate MODEL]`: data -> train ->
export -> gate -> evaluate; with --evaluate, only the evaluation of an existing model.

Writes into the run directory (--out, else output.dir, else artifacts/train/<name>):
checkpoint.pt, <name>.onnx, report.md, <name>.png (crops), <name>.temporal.png (error over
a sequence, upscalers) and <name>.md (the model card).
When output.deploy_dir is set (the bundled-model configs set infer/models) and the gate
passes, the model, its card and its figure are copied there.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from .config import Config, ConfigError, load_config


def run_pipeline(
    cfg: Config,
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    deploy: bool = True,
) -> dict:
    """The whole pipeline; returns a summary dict. Raises DeployGateError if the gate fails."""
    import onnx
    import torch

    from . import evaluate as ev
    from .export import engine_parity, export_onnx
    from .heldout import assess
    from .models import count_flops, count_params
    from .train import train

    run_dir = Path(run_dir or cfg.run_dir())
    run_dir.mkdir(parents=True, exist_ok=True)
    say = print if progress else (lambda *a, **k: None)

    result = train(cfg, run_dir, resume=resume, progress=progress)
    onnx_path = export_onnx(result.model, run_dir / f"{cfg.name}.onnx")
    ops = sorted({n.op_type for n in onnx.load(str(onnx_path)).graph.node})
    info: dict[str, Any] = {
        "params": count_params(result.model),
        "flops": count_flops(result.model),
        "steps": result.steps,
        "seconds": result.seconds,
        "final_loss": result.final_loss,
        "ops": ops,
        "torch": torch.__version__.split("+")[0],
    }
    say(f"exported {onnx_path} ({info['params']:,} params, ops {', '.join(ops)})")

    held = assess(cfg, onnx_path, say)
    scores, temporal = held.scores, held.temporal
    parity = None
    if cfg.gate.engine:
        parity = engine_parity(onnx_path, cfg.gate.parity_size, cfg.gate.parity_tol)
        say(f"engine parity on {parity.shape}: rel err {parity.rel:.2e}")
    gate_error = held.gate_error(cfg, parity)

    speed = ev.timings(onnx_path, cfg.eval.bench_size, cfg.eval.bench_runs)
    fig, tfig = held.figures(cfg, run_dir, cfg.name)
    fig_name = fig.name if fig else None
    extra: dict[str, Any] = {
        "costs": held.costs,
        "temporal": temporal,
        "temporal_figure": tfig.name if tfig else None,
    }
    (run_dir / "report.md").write_text(
        ev.report_markdown(cfg, scores, info, parity, speed, fig_name, **extra)
    )
    (run_dir / f"{cfg.name}.md").write_text(
        ev.model_card(cfg, scores, info, parity, speed, fig_name, **extra)
    )
    summary = {
        "name": cfg.name,
        "run_dir": str(run_dir),
        "onnx": str(onnx_path),
        "params": info["params"],
        "gflops_1080p": info["flops"]["total"] / 1e9,
        "steps": result.steps,
        "train_seconds": round(result.seconds, 1),
        "final_loss": result.final_loss,
        "losses": result.losses,
        **held.summary(),
        "parity_rel": None if parity is None else parity.rel,
        "speed": speed,
        "gate": "passed" if gate_error is None else str(gate_error),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    say(f"report: {run_dir / 'report.md'}")
    if gate_error is not None:
        raise gate_error
    if deploy and cfg.output.deploy_dir:
        dest = Path(cfg.output.deploy_dir)
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(onnx_path, dest / onnx_path.name)
        shutil.copyfile(run_dir / f"{cfg.name}.md", dest / f"{cfg.name}.md")
        for f in (fig, tfig):
            if f:
                shutil.copyfile(f, dest / f.name)
        summary["deployed"] = str(dest / onnx_path.name)
        say(f"deployed {dest / onnx_path.name} with its card")
    return summary


def evaluate_only(cfg: Config, model: str, run_dir: str | Path | None = None) -> dict:
    """`--evaluate MODEL`: an existing ONNX model on the configuration's held-out data, next
    to the classic methods and eval.compare; no training, no gate to pass, nothing deployed.
    Writes report.md, the figures and summary.json into run_dir (artifacts/eval/<stem>)."""
    from . import evaluate as ev
    from .heldout import assess

    path = ev.resolve_models((model,))
    name, onnx_path = next(iter(path.items()))
    run_dir = Path(run_dir or f"artifacts/eval/{onnx_path.stem}")
    run_dir.mkdir(parents=True, exist_ok=True)
    held = assess(cfg, onnx_path)
    error = held.gate_error(cfg, None)
    verdict = "passed (engine parity not checked)" if error is None else str(error)
    fig, tfig = held.figures(cfg, run_dir, onnx_path.stem)
    figs = (fig.name if fig else None, tfig.name if tfig else None)
    text = ev.evaluation_markdown(cfg, name, held.scores, held.costs, held.temporal, figs, verdict)
    (run_dir / "report.md").write_text(text)
    summary = {"model": str(onnx_path), "run_dir": str(run_dir), **held.summary(), "gate": verdict}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"report: {run_dir / 'report.md'}")
    return summary


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m infer train",
        description="Train a small CNN, export it to ONNX, gate it on the engine and evaluate.",
    )
    p.add_argument("--config", required=True, help="training TOML, e.g. configs/train-upscale.toml")
    p.add_argument("--steps", type=int, help="override train.steps")
    p.add_argument("--seconds", type=float, help="override train.seconds (wall-time budget)")
    p.add_argument("--out", help="run directory (overrides output.dir)")
    p.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    p.add_argument("--no-deploy", action="store_true", help="do not copy into output.deploy_dir")
    p.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    p.add_argument(
        "--evaluate",
        metavar="MODEL",
        help="evaluate this ONNX model (file or bundled name) on the config's held-out data "
        "instead of training (report in --out, else artifacts/eval/<stem>)",
    )
    p.add_argument("--compare", help="comma-separated models for the tables (eval.compare)")
    return p


def main(argv: list[str] | None = None) -> int:
    from .export import DeployGateError

    args = build_parser().parse_args(argv)
    overrides: dict = {}
    if args.steps is not None:
        overrides.setdefault("train", {})["steps"] = args.steps
    if args.seconds is not None:
        overrides.setdefault("train", {})["seconds"] = args.seconds
    if args.out:
        overrides.setdefault("output", {})["dir"] = args.out
    if args.compare is not None:
        overrides.setdefault("eval", {})["compare"] = [c for c in args.compare.split(",") if c]
    try:
        cfg = load_config(args.config, overrides)
    except (ConfigError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.evaluate:
        try:
            evaluate_only(cfg, args.evaluate, args.out)
        except FileNotFoundError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 0
    try:
        summary = run_pipeline(
            cfg, resume=args.resume, progress=not args.quiet, deploy=not args.no_deploy
        )
    except DeployGateError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except ConfigError as e:  # found while running: model.init missing or not deepenable
        print(f"error: {e}", file=sys.stderr)
        return 2
    psnr = ", ".join(f"{k} {v:.2f}" for k, v in summary["psnr"].items())
    print(
        f"{cfg.name}: PSNR {psnr} dB (gain {summary['gain_db']:+.2f} dB); "
        f"{summary['params']:,} params, {summary['gflops_1080p']:.1f} GFLOP/1080p; "
        f"{summary['steps']} steps in {summary['train_seconds']:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
