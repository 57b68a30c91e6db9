"""``sfumato validate [FILE]``: exit 0 when ``configure()`` would accept the config, 2 with one
line per problem when it would not.

It does what ``configure()`` does short of starting anything: validates every table, loads each
plugin the config names, builds the sampler tree and imports each exporter's modules.
"""

from __future__ import annotations

import argparse
from typing import Any

from .._loading import LoadedConfig, find_config
from ._help import add_command
from ._output import load_or_report, print_json

__all__ = ["CONFIG_HELP", "register"]

CONFIG_HELP = "TOML file (default: $SFUMATO_CONFIG, else ./sfumato.toml when it exists)"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(
        sub,
        "validate",
        "check a config file and the plugins it names, as configure() would",
        details="Validates every table, loads each plugin the config names, builds the "
        "sampler tree and imports each exporter's modules, starting nothing. A file without "
        "[telemetry] is valid: telemetry is disabled.",
        exits={0: "the config is valid", 2: "the config is invalid (one line per problem)"},
    )
    p.add_argument("file", nargs="?", default=None, help=CONFIG_HELP)
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.set_defaults(func=run)


def describe_source(file: str | None) -> str:
    """What the settings were read from, for the first line of ``validate`` and ``doctor``."""
    found = find_config(file)
    if found is None:
        return "no config file ($SFUMATO_CONFIG unset, no ./sfumato.toml): environment and defaults"
    return str(found)


def run(args: argparse.Namespace) -> int:
    where = describe_source(args.file)
    loaded = load_or_report(args.file, where, args.json)
    if loaded is None:
        return 2
    settings = loaded.settings
    if args.json:
        print_json({"source": where, "valid": True, **summary(loaded)})
        return 0
    if not settings.enabled:
        reason = settings.source_of("enabled")
        if "no [telemetry] table" in reason:
            print(f"{where}: no [telemetry] table: telemetry is disabled")
        else:
            print(f"{where}: valid; telemetry is disabled (enabled = false, from {reason})")
        return 0
    info = summary(loaded)
    signals = ", ".join(info["signals"]) or "none"
    print(f"{where}: valid: backend {settings.backend!r}, signals: {signals}")
    for notice in info["notes"]:
        print(f"note: {notice}")
    return 0


def summary(loaded: LoadedConfig) -> dict[str, Any]:
    """What a valid config turns on: backend, signals, exporters, sampler, notes."""
    settings, plan = loaded.settings, loaded.plan
    if not settings.enabled or plan is None:
        return {"enabled": False, "reason": settings.source_of("enabled")}
    return {
        "enabled": True,
        "backend": settings.backend,
        "signals": sorted(plan.signals),
        "exporters": [
            {"name": node.name, "signals": sorted(node.signals)} for node in plan.exporters
        ],
        "sampler": plan.sampler.describe(),
        "notes": list(plan.notices),
    }
