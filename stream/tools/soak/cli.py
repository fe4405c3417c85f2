"""`python -m stream soak`: hold N WHEP viewers on a server for a while, break things, judge it.

    python -m stream soak [--config configs/soak.toml] [--url URL] [--viewers N]
                          [--duration S] [--json out.json] [--plots DIR] [--browser]

Exit code 1 when a check fails, 2 when the run could not start; a JSON report always.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

from ...config import ConfigError, override
from . import settings
from .report import format_verdict, write_plots, write_report
from .runner import Soak
from .settings import FAULTS, SoakSettings
from .verdict import analyse

log = logging.getLogger("stream.soak")


async def soak(opts: SoakSettings, *, leak: bool = False) -> dict[str, Any]:
    """Run a soak and judge it. SIGINT or SIGTERM ends it early: viewers and server are
    closed and the report judges what was seen until then (an hour-long run stopped at
    minute 40 still says what it measured)."""
    run = Soak(opts, leak=leak)
    loop = asyncio.get_running_loop()

    def stop(name: str) -> None:
        log.warning("%s: ending the soak early, report follows", name)
        run.stopped_by = name
        run.stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(sig, stop, sig.name)
    started = time.time()
    try:
        await run.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    return analyse(run, started)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m stream soak",
        description="Hold WHEP viewers on a server for a while, inject faults, and judge "
        "latency, frame rate, drops and resource growth against thresholds. "
        "Exit code 1 when a check fails; a JSON report always.",
    )
    ap.add_argument("--config", help="TOML config (see configs/soak.toml)")
    ap.add_argument("--url", help="a running server (default: start one on a free port)")
    ap.add_argument(
        "--token-file",
        help="a file holding an admin token for the server at --url (a token on the command "
        "line shows in the process list; default: the config's token, or $FRAMESMITH_TOKEN)",
    )
    ap.add_argument("--serve-config", help="serve config of the server started here")
    ap.add_argument("--viewers", type=int, help="WHEP viewers held at once")
    ap.add_argument("--duration", type=float, help="seconds")
    ap.add_argument("--json", help="report path (default: soak.report in the config)")
    ap.add_argument("--plots", help="folder for the latency plots")
    ap.add_argument("--faults", help=f"comma-separated: {','.join(FAULTS)} (empty: none)")
    ap.add_argument(
        "--browser",
        action="store_true",
        default=None,
        help="add one headless Chromium viewer (playwright, /usr/bin/chromium)",
    )
    ap.add_argument(
        "--leak-viewer-pcs",
        action="store_true",
        help="start the server with its test hook that leaks the peer connection "
        "of every viewer that leaves (shows that the leak check can fail)",
    )
    ap.add_argument("--log-level", default="INFO")
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("aiortc", "aioice", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    faults = None if args.faults is None else [f.strip() for f in args.faults.split(",")]
    try:
        token = os.environ.get("FRAMESMITH_TOKEN") or None
        if args.token_file:
            try:
                token = Path(args.token_file).read_text().strip()
            except OSError as e:
                raise ConfigError(f"--token-file {args.token_file!r}: {e.strerror}") from None
        opts = override(
            settings.load(args.config),
            {
                "url": args.url,
                "token": token,
                "serve_config": args.serve_config,
                "viewers": args.viewers,
                "duration_s": args.duration,
                "report": args.json,
                "plots": args.plots,
                "browser": args.browser,
                "faults": None if faults is None else [f for f in faults if f],
            },
            "soak",
        )
    except ConfigError as e:
        print(f"error: {e}")
        return 2
    if args.leak_viewer_pcs and opts.url:
        print("error: --leak-viewer-pcs needs a server started here (no --url)")
        return 2
    report = asyncio.run(soak(opts, leak=args.leak_viewer_pcs))
    path = Path(opts.report)
    write_report(report, path)
    print(format_verdict(report))
    print(f"report: {path}")
    if opts.plots:
        for p in write_plots(report, path, Path(opts.plots)):
            print(f"plot: {p}")
    if report.get("error") and not report["frames"]:
        return 2
    return 0 if report["passed"] else 1
