"""``tempera report [REPORT] [DIR]``: summaries of the local store.

The first argument names a report when it is one (see ``REPORTS``), else it is the store
directory and the default report, ``summary``, runs. Further reports register here by name
and read the store through :class:`tempera.plugins.local.store.Store`. A directory that
happens to share a report's name can be given as ``./name``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

__all__ = ["DEFAULT_DIRECTORY", "REPORTS", "register"]

DEFAULT_DIRECTORY = ".tempera"

Report = Callable[[argparse.Namespace, list[str]], int]


def _summary(args: argparse.Namespace, paths: list[str]) -> int:
    from tempera.plugins.local.report import render_text, summarize, to_dict
    from tempera.plugins.local.store import Store

    if len(paths) > 1:
        print("error: report summary takes one directory", file=sys.stderr)
        return 2
    store = Store(paths[0] if paths else DEFAULT_DIRECTORY)
    if not store.exists():
        print(f"error: no local store at {store.directory}", file=sys.stderr)
        return 1
    summary = summarize(store)
    if args.json:
        print(json.dumps(to_dict(summary), indent=2))
    else:
        sys.stdout.write(render_text(summary))
    return 0


# name -> (help line, function taking the arguments and the remaining paths)
REPORTS: dict[str, tuple[str, Report]] = {
    "summary": ("traces, spans, errors and latency by service and span name", _summary),
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    listing = "; ".join(f"{name}: {text}" for name, (text, _) in REPORTS.items())
    p = sub.add_parser(
        "report",
        help="summarise the local store (default directory .tempera)",
        description=f"Reports on a local store. Reports: {listing}.",
    )
    p.add_argument(
        "target",
        nargs="*",
        metavar="[REPORT] [DIR]",
        help=f"a report name ({', '.join(REPORTS)}; default summary), then the store "
        f"directory (default {DEFAULT_DIRECTORY})",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    target: list[str] = list(args.target)
    name = "summary"
    if target and target[0] in REPORTS:
        name = target.pop(0)
    return REPORTS[name][1](args, target)
