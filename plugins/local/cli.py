"""``sfumato report [REPORT] [DIR]``: summaries of the local store, a command the local store's
plugin adds to the command line (:class:`LocalStoreCommands`, entry point ``local-store`` of
the ``sfumato.cli`` group).

The first argument names a report when it is one (see ``REPORTS``), else it is the store
directory and the default report, ``summary``, runs. Further reports register here by name
and read the store through :class:`.store.Store`. A directory that
happens to share a report's name can be given as ``./name``; a first argument that is
neither a report nor a directory, but close to a report's name, is an error with a
did-you-mean. Options may come before or after the report name and the directories.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from sfumato import hookimpl
from sfumato._errors import did_you_mean
from sfumato._loading import find_config, load_config
from sfumato.cli import CommandError, add_command

if TYPE_CHECKING:
    from .store import Store

__all__ = ["DEFAULT_DIRECTORY", "REPORTS", "LocalStoreCommands", "register"]

DEFAULT_DIRECTORY = ".sfumato"
DEFAULT_THRESHOLD = 20.0

Report = Callable[[argparse.Namespace, list[str]], int]


def _summary(args: argparse.Namespace, paths: list[str]) -> int:
    from .report import render_csv, render_text, summarize, to_dict

    store = _open(args, paths, "summary")
    if store is None:
        return 2 if len(paths) > 1 else 1
    summary = summarize(store)
    if args.csv:
        sys.stdout.write(render_csv(summary))
    elif args.json:
        print(json.dumps(to_dict(summary), indent=2))
    else:
        sys.stdout.write(render_text(summary))
    return 0


def default_directory(config: str | None) -> str:
    """The store a config writes to (its first ``local`` exporter), else ``.sfumato``."""
    if find_config(config) is None:
        return DEFAULT_DIRECTORY
    plan = load_config(config).plan
    for node in plan.exporters if plan is not None else ():
        directory = getattr(node.options, "directory", None)
        if node.name == "local" and directory:
            return str(directory)
    return DEFAULT_DIRECTORY


def _open(args: argparse.Namespace, paths: list[str], name: str) -> Store | None:
    from .store import Store

    if len(paths) > 1:
        print(f"error: report {name} takes one directory", file=sys.stderr)
        return None
    store = Store(paths[0] if paths else default_directory(args.config))
    if not store.exists():
        print(f"error: no local store at {store.directory}", file=sys.stderr)
        return None
    _opened.append(store)
    return store


_opened: list[Store] = []  # the stores a report read: what they skipped is told at the end


def _tell_skipped() -> None:
    from .report import printable

    while _opened:
        store = _opened.pop(0)
        text = store.skipped_text()
        if text:
            print(printable(f"{store.directory}: {text}"), file=sys.stderr)


def _costs(args: argparse.Namespace, paths: list[str]) -> int:
    from dataclasses import asdict

    from .costs import costs, load_prices, render_csv, render_text

    store = _open(args, paths, "costs")
    if store is None:
        return 2 if len(paths) > 1 else 1
    prices = load_prices(args.prices) if args.prices else None
    rows = costs(store.spans(), prices)
    if args.csv:
        sys.stdout.write(render_csv(rows))
    elif args.json:
        print(json.dumps([{**asdict(r), "tokens": r.tokens} for r in rows], indent=2))
    else:
        sys.stdout.write(render_text(rows, store, prices))
    return 0


def _failures(args: argparse.Namespace, paths: list[str]) -> int:
    from dataclasses import asdict

    from .failures import failures, render_text

    store = _open(args, paths, "failures")
    if store is None:
        return 2 if len(paths) > 1 else 1
    groups = failures(store.spans())
    if args.json:
        print(json.dumps([asdict(g) for g in groups], indent=2))
    else:
        sys.stdout.write(render_text(groups, str(store.directory)))
    return 0


def _compare(args: argparse.Namespace, paths: list[str]) -> int:
    from dataclasses import asdict

    from .compare import compare, render_text
    from .report import summarize

    if len(paths) != 2:
        print("error: report compare takes two directories, A and B", file=sys.stderr)
        return 2
    summaries = []
    for path in paths:
        store = _open(args, [path], "compare")
        if store is None:
            return 2
        summaries.append(summarize(store))
    threshold = DEFAULT_THRESHOLD if args.threshold is None else args.threshold
    changes = compare(summaries[0], summaries[1], threshold)
    if args.json:
        print(json.dumps([asdict(c) for c in changes], indent=2))
    else:
        sys.stdout.write(render_text(changes, paths[0], paths[1], threshold))
    return 1 if any(c.regressed for c in changes) else 0


# name -> (help line, function taking the arguments and the remaining paths)
REPORTS: dict[str, tuple[str, Report]] = {
    "summary": ("traces, spans, errors and latency by service and span name", _summary),
    "costs": ("LLM tokens and estimated cost per day, topic and model", _costs),
    "failures": ("failures by stage and error, traced back to their generation", _failures),
    "compare": ("P50/P95 change per span name from store A to B; exit 1 on a regression", _compare),
}


# The options that belong to some reports only: option -> (attribute, the reports taking it).
REPORT_OPTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "--csv": ("csv", ("summary", "costs")),
    "--prices": ("prices", ("costs",)),
    "--threshold": ("threshold", ("compare",)),
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    listing = "\n".join(f"  {name:<9} {text}" for name, (text, _) in REPORTS.items())
    p = add_command(
        sub,
        "report",
        "summarise the local store (default directory .sfumato)",
        details=f"Reports (the default is summary):\n\n{listing}\n\n"
        "Options may come before or after the report name and the directories.",
        exits={
            0: "the report was printed",
            1: "no local store at the directory; compare: a span name regressed",
            2: "bad arguments: an unknown report (with a did-you-mean), an option the "
            "report does not take, the wrong number of directories",
        },
    )
    p.add_argument(
        "target",
        nargs="*",
        metavar="[REPORT] [DIR]",
        help=f"a report name ({', '.join(REPORTS)}; default summary), then the store "
        f"directory (default {DEFAULT_DIRECTORY})",
    )
    p.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help="read the store directory from this config's local backend (default: "
        "$SFUMATO_CONFIG, else ./sfumato.toml; with none, .sfumato)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.add_argument("--csv", action="store_true", help="summary, costs: print CSV")
    p.add_argument("--prices", metavar="FILE", help="costs: a TOML price table per model")
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        metavar="PCT",
        help=f"compare: flag a P50 or P95 increase above PCT percent (default "
        f"{DEFAULT_THRESHOLD:g})",
    )
    p.set_defaults(func=run, positionals_anywhere="target")


def _report_name(target: list[str]) -> str:
    """The report the arguments name, taken off ``target``; ``summary`` when the first
    argument is a directory. CommandError for a misspelt name."""
    if not target:
        return "summary"
    first = target[0]
    if first in REPORTS:
        return target.pop(0)
    if os.path.exists(first):
        return "summary"
    hint = did_you_mean(first, REPORTS)
    if hint or len(target) > 1:
        raise CommandError(f"unknown report '{first}'{hint} (reports: {', '.join(REPORTS)})")
    return "summary"  # one argument, not a report's name: the directory, missing or not


def run(args: argparse.Namespace) -> int:
    target: list[str] = list(args.target)
    name = _report_name(target)
    for option, (attribute, reports) in REPORT_OPTIONS.items():
        if getattr(args, attribute) not in (None, False) and name not in reports:
            which = f"reports {' and '.join(reports)}" if len(reports) > 1 else reports[0]
            raise CommandError(f"{option} is for {which}, not {name}")
    if args.csv and args.json:
        raise CommandError("give --csv or --json, not both")
    _opened.clear()
    try:
        return REPORTS[name][1](args, target)
    finally:
        _tell_skipped()


class LocalStoreCommands:
    """The local store's plugin of the command line: adds ``sfumato report``."""

    @hookimpl
    def sfumato_cli_commands(
        self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]
    ) -> None:
        register(subparsers)
