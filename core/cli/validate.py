"""``sfumato validate [FILE]``: exit 0 when the config is valid, 2 with one error line if not."""

from __future__ import annotations

import argparse

from .._loading import load_settings

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("validate", help="check a config file and the plugins it names")
    p.add_argument("file", nargs="?", default=None, help="TOML file (default: $SFUMATO_CONFIG)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.file)
    where = args.file or "environment"
    if not settings.enabled:
        reason = settings.source_of("enabled")
        if "no [telemetry] table" in reason:
            print(f"{where}: no [telemetry] table: telemetry is disabled")
        else:
            print(f"{where}: valid; telemetry is disabled (enabled = false, from {reason})")
        return 0
    plan = settings._plan
    signals = ", ".join(sorted(plan.signals)) if plan is not None else ""
    print(f"{where}: valid: backend {settings.backend!r}, signals: {signals or 'none'}")
    for notice in plan.notices if plan is not None else []:
        print(f"note: {notice}")
    return 0
