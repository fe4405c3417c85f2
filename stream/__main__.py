"""`python -m stream serve|process|bench|bench-pipeline|bench-capacity|devices|soak|plot|agent`."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    commands = {
        "serve": "stream.serve:main",
        "token": "stream.auth:main",
        "process": "stream.process:main",
        "bench": "stream.tools.bench.service:main",
        "bench-pipeline": "stream.tools.bench.pipeline:main",
        "bench-capacity": "stream.tools.bench.capacity:main",
        "devices": "stream.tools.devices:main",
        "soak": "stream.tools.soak.cli:main",
        "plot": "stream.tools.plots:main",
        "agent": "stream.input.agent:main",
    }
    if not argv or argv[0] not in commands:
        print(f"usage: python -m stream {{{','.join(commands)}}} [options]   (-h for help)")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    module, func = commands[argv[0]].split(":")
    import importlib

    return int(getattr(importlib.import_module(module), func)(argv[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
