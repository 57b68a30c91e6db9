"""``sfumato alerts --format prometheus [FILE] [-o OUT]``: the ``[[telemetry.http.health]]``
rules of a config as a Prometheus alerting-rules file (``promtool check rules`` accepts it).

The kind, unit and bucket boundaries of a rule's metric come from the command-line plugins
that know it (``sfumato_metric_instruments``: Botticelli's, for its metrics).

``-o OUT`` is written atomically; an OUT that cannot be written is one line and exit 2."""

from __future__ import annotations

import argparse
import sys

from .._loading import load_settings
from ..alerts import histogram_boundaries, render_prometheus
from ._extensions import instruments
from ._files import write_output
from ._help import add_command, plural

__all__ = ["register", "run"]


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.file)
    rules = settings.http.health
    if not rules:
        where = settings.path or "the configuration"
        print(f"error: no [[telemetry.http.health]] rules in {where}", file=sys.stderr)
        return 1
    known = instruments()
    for rule in rules:
        bounds = histogram_boundaries(rule.metric, known)
        if rule.kind == "max" and bounds is not None and rule.threshold not in bounds:
            print(
                f"warning: {rule.name}: {rule.threshold} is not a bucket boundary of "
                f"{rule.metric}; Prometheus cannot see observations above it exactly",
                file=sys.stderr,
            )
    text = render_prometheus(rules, group=f"sfumato-{settings.service_name}", instruments=known)
    if args.output in (None, "-"):
        sys.stdout.write(text)
        return 0
    write_output(args.output, text)
    print(f"wrote {plural(len(rules), 'alerting rule')} to {args.output}", file=sys.stderr)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(
        sub,
        "alerts",
        "render the health rules as Prometheus alerting rules",
        details="Renders the [[telemetry.http.health]] rules of FILE (default: the "
        "discovered config) as a Prometheus alerting-rules file that promtool check rules "
        "accepts.",
        exits={
            0: "the rules were printed or written",
            1: "FILE has no [[telemetry.http.health]] rules",
            2: "the config is invalid, or OUT cannot be written",
        },
    )
    p.add_argument("file", nargs="?", metavar="FILE", help="a TOML file with [telemetry]")
    p.add_argument("--format", choices=["prometheus"], default="prometheus", help="output format")
    p.add_argument("-o", "--output", metavar="OUT", help="write here instead of stdout")
    p.set_defaults(func=run)
