"""``sfumato reference``: the configuration reference, generated from the settings models.

``--output FILE`` writes it (docs/configuration.md in sfumato's repository); ``--check FILE``
exits 1 when FILE differs from what would be written. A file that cannot be written or read
is one line and exit 2.
"""

from __future__ import annotations

import argparse
import sys

from ._files import read_input, write_output
from ._help import add_command

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(
        sub,
        "reference",
        "print the configuration reference (every key, default, variable)",
        details="The reference is generated from the settings models and the options models "
        "of sfumato's own plugins, in Markdown.",
        exits={
            0: "printed or written; --check: FILE is up to date",
            1: "--check: FILE is out of date (or missing)",
            2: "FILE cannot be written (-o) or read (--check)",
        },
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument("-o", "--output", metavar="FILE", default=None, help="write it to FILE")
    group.add_argument(
        "--check", metavar="FILE", default=None, help="exit 1 when FILE is not up to date"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .._reference import REGENERATE, render

    text = render()
    if args.check is not None:
        current = read_input(args.check)
        if current != text:
            print(f"{args.check} is out of date; regenerate it with: {REGENERATE}", file=sys.stderr)
            return 1
        print(f"{args.check} is up to date")
        return 0
    if args.output is not None:
        write_output(args.output, text)
        print(f"wrote {args.output}")
        return 0
    sys.stdout.write(text)
    return 0
