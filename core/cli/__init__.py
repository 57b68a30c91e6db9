"""The ``sfumato`` command line.

Each command lives in its own module exposing ``register(subparsers)``, which adds its parser
and sets ``func`` (taking the parsed arguments, returning an exit code). Configuration errors
print one line and exit 2; nothing prints a traceback unless ``SFUMATO_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from .._errors import ConfigError

__all__ = ["main"]

# Modules under sfumato.cli, in the order ``sfumato --help`` lists them.
COMMANDS: tuple[str, ...] = (
    "validate",
    "show",
    "plugins",
    "init",
    "set",
    "report",
    "doctor",
    "demo",
    "alerts",
    "reference",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sfumato", description="Config-driven OpenTelemetry for Python services."
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"{__name__}.{name.replace('-', '_')}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from importlib.metadata import version

        print(f"sfumato {version('sfumato')}")
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code: int = args.func(args)
        return code
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if os.environ.get("SFUMATO_DEBUG") == "1":
            raise
        message = f"error: {type(exc).__name__}: {exc} (SFUMATO_DEBUG=1 shows the traceback)"
        print(message, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
