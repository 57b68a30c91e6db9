"""What every command's ``--help`` shares, and the words around counts.

A command registers its parser through :func:`add_command`: a one-line description (also the
line ``sfumato --help`` lists), optional details, and the command's exit codes, printed under
``exit status:`` at the end of its ``--help``::

    from ._help import add_command

    def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        p = add_command(
            sub,
            "validate",
            "check a config file and every plugin it names",
            exits={0: "the config is valid", 2: "the config is invalid (one line per problem)"},
            details="A file without [telemetry] is valid: telemetry is disabled.",
        )
        p.add_argument("file", nargs="?", metavar="FILE")
        p.set_defaults(func=run)

:func:`exit_status` renders the ``exit status:`` block alone, for a parser made another way
(``epilog=exit_status({...})`` with ``formatter_class=argparse.RawDescriptionHelpFormatter``).

:func:`plural` puts a count and its noun together: ``plural(1, "span")`` is ``1 span``,
``plural(2_000, "span")`` is ``2,000 spans``.
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Mapping

__all__ = ["COMMON_EXITS", "add_command", "exit_status", "plural"]

WIDTH = 79

# What main() itself returns, whatever the command: listed under ``sfumato --help``.
COMMON_EXITS: dict[int, str] = {
    1: "an unexpected error (one line; SFUMATO_DEBUG=1 shows the traceback)",
    2: "bad arguments or an invalid config",
    130: "interrupted (Ctrl-C)",
    141: "the output pipe was closed (| head): the rest of the output is dropped quietly",
}


def exit_status(exits: Mapping[int, str]) -> str:
    """``exit status:`` and one line per code, in numeric order, for a parser's epilog."""
    width = max(len(str(code)) for code in exits)
    lines = ["exit status:"]
    for code in sorted(exits):
        lead = f"  {str(code).ljust(width)}  "
        lines += textwrap.wrap(
            exits[code], WIDTH, initial_indent=lead, subsequent_indent=" " * len(lead)
        )
    return "\n".join(lines)


def _sentence(text: str) -> str:
    text = text.strip()
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _paragraph(text: str) -> str:
    lines = text.strip("\n").splitlines()
    if all(line.startswith("  ") for line in lines):
        return "\n".join(lines)
    return textwrap.fill(" ".join(text.split()), WIDTH)


def add_command(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    *,
    exits: Mapping[int, str],
    details: str | None = None,
) -> argparse.ArgumentParser:
    """Add command ``name`` to ``sub`` and return its parser.

    ``summary`` is one line, lower case, no final period (``sfumato --help`` lists it as is;
    the command's own ``--help`` shows it as a sentence). ``details``, paragraphs separated by
    blank lines, come after the options, each wrapped, except one whose lines all start with
    two spaces (a list or an example), which is kept as written; then ``exits``, each exit
    code with what it means.
    """
    epilog = [_paragraph(p) for p in (details or "").split("\n\n") if p.strip()]
    epilog.append(exit_status(exits))
    return sub.add_parser(
        name,
        help=summary,
        description=_sentence(summary),
        epilog="\n\n".join(epilog),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def plural(count: float, noun: str, plural_noun: str | None = None) -> str:
    """``count`` with thousands separators and ``noun``, or ``plural_noun`` (default
    ``noun + "s"``) unless the count is exactly one. A float count that is not whole keeps
    one decimal: ``plural(1.5, "trace")`` is ``1.5 traces``."""
    if isinstance(count, float) and not count.is_integer():
        number = f"{count:,.1f}"
    else:
        number = f"{round(count):,}"
    word = noun if count == 1 else (plural_noun or noun + "s")
    return f"{number} {word}"
