"""``sfumato reference``: the configuration reference, generated from the settings models.

``--output FILE`` writes it (docs/configuration.md in sfumato's repository); ``--check FILE``
exits 1 when FILE differs from what would be written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "reference", help="print the configuration reference (every key, default, variable)"
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument("-o", "--output", default=None, help="write it to this file")
    group.add_argument(
        "--check", metavar="FILE", default=None, help="exit 1 when FILE is not up to date"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .._reference import REGENERATE, render

    text = render()
    if args.check is not None:
        path = Path(args.check)
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            print(f"{path} is out of date; regenerate it with: {REGENERATE}", file=sys.stderr)
            return 1
        print(f"{path} is up to date")
        return 0
    if args.output is not None:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
        return 0
    sys.stdout.write(text)
    return 0
