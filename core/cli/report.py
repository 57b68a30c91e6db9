"""``sfumato report [REPORT] [DIR]``: summaries of the local store.

The first argument names a report when it is one (see ``REPORTS``), else it is the store
directory and the default report, ``summary``, runs. Further reports register here by name
and read the store through :class:`sfumato.plugins.local.store.Store`. A directory that
happens to share a report's name can be given as ``./name``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sfumato.plugins.local.store import Store

__all__ = ["DEFAULT_DIRECTORY", "REPORTS", "register"]

DEFAULT_DIRECTORY = ".sfumato"

Report = Callable[[argparse.Namespace, list[str]], int]


def _summary(args: argparse.Namespace, paths: list[str]) -> int:
    from sfumato.plugins.local.report import render_text, summarize, to_dict

    store = _open(args, paths, "summary")
    if store is None:
        return 2 if len(paths) > 1 else 1
    summary = summarize(store)
    if args.json:
        print(json.dumps(to_dict(summary), indent=2))
    else:
        sys.stdout.write(render_text(summary))
    return 0


def default_directory(config: str | None) -> str:
    """The store a config writes to (its first ``local`` exporter), else ``.sfumato``."""
    if config is None and not os.environ.get("SFUMATO_CONFIG"):
        return DEFAULT_DIRECTORY
    from sfumato import load_settings

    settings = load_settings(config)
    plan = settings._plan
    for node in plan.exporters if plan is not None else ():
        directory = getattr(node.options, "directory", None)
        if node.name == "local" and directory:
            return str(directory)
    return DEFAULT_DIRECTORY


def _open(args: argparse.Namespace, paths: list[str], name: str) -> Store | None:
    from sfumato.plugins.local.store import Store

    if len(paths) > 1:
        print(f"error: report {name} takes one directory", file=sys.stderr)
        return None
    store = Store(paths[0] if paths else default_directory(args.config))
    if not store.exists():
        print(f"error: no local store at {store.directory}", file=sys.stderr)
        return None
    return store


def _costs(args: argparse.Namespace, paths: list[str]) -> int:
    from dataclasses import asdict

    from sfumato.plugins.local.costs import costs, load_prices, render_csv, render_text

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

    from sfumato.plugins.local.failures import failures, render_text

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

    from sfumato.plugins.local.compare import compare, render_text
    from sfumato.plugins.local.report import summarize

    if len(paths) != 2:
        print("error: report compare takes two directories, A and B", file=sys.stderr)
        return 2
    summaries = []
    for path in paths:
        store = _open(args, [path], "compare")
        if store is None:
            return 2
        summaries.append(summarize(store))
    changes = compare(summaries[0], summaries[1], args.threshold)
    if args.json:
        print(json.dumps([asdict(c) for c in changes], indent=2))
    else:
        sys.stdout.write(render_text(changes, paths[0], paths[1], args.threshold))
    return 1 if any(c.regressed for c in changes) else 0


# name -> (help line, function taking the arguments and the remaining paths)
REPORTS: dict[str, tuple[str, Report]] = {
    "summary": ("traces, spans, errors and latency by service and span name", _summary),
    "costs": ("LLM tokens and estimated cost per day, topic and model", _costs),
    "failures": ("failures by stage and error, traced back to their generation", _failures),
    "compare": ("P50/P95 change per span name from store A to B; exit 1 on a regression", _compare),
}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    listing = "; ".join(f"{name}: {text}" for name, (text, _) in REPORTS.items())
    p = sub.add_parser(
        "report",
        help="summarise the local store (default directory .sfumato)",
        description=f"Reports on a local store. Reports: {listing}.",
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
        "$SFUMATO_CONFIG, else .sfumato)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.add_argument("--csv", action="store_true", help="costs: print CSV")
    p.add_argument("--prices", metavar="FILE", help="costs: a TOML price table per model")
    p.add_argument(
        "--threshold",
        type=float,
        default=20.0,
        metavar="PCT",
        help="compare: flag a P50 or P95 increase above PCT percent (default 20)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    target: list[str] = list(args.target)
    name = "summary"
    if target and target[0] in REPORTS:
        name = target.pop(0)
    return REPORTS[name][1](args, target)
