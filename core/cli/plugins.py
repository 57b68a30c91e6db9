"""``sfumato plugins``: every installed plugin, its distribution and version, and every
installed instrumentation (``[telemetry.instrumentations]`` names them).

Listing imports nothing; ``--check`` imports each enabled plugin and marks the ones that fail.
An instrumentation is ``ready`` or ``unusable`` (the library it instruments is missing or at
a version it does not instrument: read from package metadata, nothing imported).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from .._errors import ConfigError
from .._host import Kind, PluginHost, PluginInfo
from .._instrumentations import GROUP, conflict_of, installed
from .._loading import find_config, load_settings
from ._help import add_command

__all__ = ["register"]

KINDS: tuple[Kind, ...] = ("backend", "exporter", "sampler", "hooks", "cli")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(
        sub,
        "plugins",
        "list installed plugins (kind, name, distribution, version)",
        details="Listing imports nothing; --check imports each enabled plugin and marks the "
        "ones that fail as broken, with the error.",
        exits={
            0: "listed (with --check: every enabled plugin imports)",
            1: "--check: a plugin is broken",
            2: "the config given with -c is invalid",
        },
    )
    p.add_argument(
        "-c",
        "--config",
        default=None,
        help="TOML file whose [telemetry.plugins] disable list applies (default: "
        "$SFUMATO_CONFIG, else ./sfumato.toml when it exists)",
    )
    p.add_argument("--check", action="store_true", help="import each plugin; mark broken ones")
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(func=run)


def _disabled(config: str | None) -> list[str]:
    """The disable list: the config's, or SFUMATO_DISABLE_PLUGINS when set (env wins)."""
    if find_config(config) is not None:
        return list(load_settings(config, resolve_plugins=False).plugins.disable)
    raw = os.environ.get("SFUMATO_DISABLE_PLUGINS", "")
    return [item.strip() for item in raw.split(",") if item.strip()]


def _row(info: PluginInfo, host: PluginHost, check: bool) -> dict[str, Any]:
    row: dict[str, Any] = {
        "kind": info.kind,
        "name": info.name,
        "distribution": info.distribution,
        "version": info.version,
        "group": info.group,
        "value": info.value,
        "status": "disabled" if info.disabled else "ok" if check else "not imported",
        "error": None,
    }
    if check and not info.disabled:
        try:
            host.load(info.kind, info.name, f"{info.kind}:{info.name}")
        except ConfigError as exc:
            row["status"] = "broken"
            row["error"] = exc.message
    return row


def _instrumentation_rows() -> list[dict[str, Any]]:
    rows = []
    for name, ep in sorted(installed().items()):
        dist = getattr(ep, "dist", None)
        problem = conflict_of(ep)
        rows.append(
            {
                "kind": "instrumentation",
                "name": name,
                "distribution": dist.metadata["Name"] if dist is not None else "?",
                "version": dist.version if dist is not None else "?",
                "group": GROUP,
                "value": ep.value,
                "status": "unusable" if problem else "ready",
                "error": problem,
            }
        )
    return rows


def run(args: argparse.Namespace) -> int:
    host = PluginHost(disabled=_disabled(args.config))
    rows = [_row(info, host, args.check) for kind in KINDS for info in host.discover(kind)]
    rows += _instrumentation_rows()
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        headers = ("KIND", "NAME", "DISTRIBUTION", "VERSION", "GROUP", "STATUS")
        table = [
            (r["kind"], r["name"], r["distribution"], r["version"], r["group"], r["status"])
            for r in rows
        ]
        widths = [max(len(str(c)) for c in column) for column in zip(headers, *table, strict=False)]
        for cells in (headers, *table):
            print("  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
        for r in rows:
            if r["error"]:
                print(f"{r['status']}: {r['kind']} {r['name']}: {r['error']}")
    broken = any(r["status"] == "broken" for r in rows)
    return 1 if broken else 0
