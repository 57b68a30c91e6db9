"""``sfumato show [FILE]``: the merged settings, where each value came from, and the plan.

Secrets (headers, any ``SecretStr`` of a plugin's options, keys named like tokens or
passwords, passwords inside URLs) are printed as ``***``.
"""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

from pydantic import BaseModel, SecretStr

from .._loading import load_config
from .._reload import sampler_version
from .._resolve import Plan
from .._validation import is_secret_key
from ..settings import SIGNALS, Settings
from ._help import add_command
from .validate import CONFIG_HELP

__all__ = ["redacted_settings", "register"]

REDACTED = "***"
_URL_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]+@")
_INDEX = re.compile(r"\[\d+\].*")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(
        sub,
        "show",
        "print the merged settings with the source of each value, and the plan",
        details="Each value comes with where it came from: default, file, env:VARIABLE or "
        "argument; then the sampler tree, the exporters per signal and the batch settings. "
        "Secrets are printed as ***.",
        exits={0: "printed", 2: "the config is invalid (one line per problem)"},
    )
    p.add_argument("file", nargs="?", default=None, help=CONFIG_HELP)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _URL_USERINFO.sub(rf"\g<1>{REDACTED}@", value)
    return value


def _secret_paths(value: Any, prefix: str, out: set[str]) -> None:
    """Dotted paths whose declared type is SecretStr in a validated options model."""
    if isinstance(value, SecretStr):
        out.add(prefix)
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _secret_paths(getattr(value, name), f"{prefix}.{name}", out)
    elif isinstance(value, dict):
        for key, item in value.items():
            _secret_paths(item, f"{prefix}.{key}", out)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _secret_paths(item, f"{prefix}[{i}]", out)


def _flatten(
    value: Any, prefix: str, out: dict[str, Any], secret: bool, secret_paths: set[str]
) -> None:
    secret = secret or prefix in secret_paths
    if isinstance(value, SecretStr):
        out[prefix] = REDACTED
    elif isinstance(value, BaseModel):
        fields = {name: getattr(value, name) for name in type(value).model_fields}
        fields.update(value.model_extra or {})
        for name, item in fields.items():
            _flatten(item, f"{prefix}.{name}", out, secret or is_secret_key(name), secret_paths)
    elif isinstance(value, dict) and value:
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}", out, secret or is_secret_key(key), secret_paths)
    elif isinstance(value, list) and any(isinstance(v, (dict, BaseModel)) for v in value):
        for i, item in enumerate(value):
            _flatten(item, f"{prefix}[{i}]", out, secret, secret_paths)
    elif secret and value not in (None, {}, []):
        out[prefix] = REDACTED
    else:
        out[prefix] = [_scrub(v) for v in value] if isinstance(value, list) else _scrub(value)


def redacted_settings(settings: Settings, plan: Plan | None) -> dict[str, tuple[Any, str]]:
    """Every leaf of the settings as ``dotted key -> (value, source)``, secrets redacted
    (with ``plan``, also the values its plugins declare secret)."""
    secret_paths: set[str] = set()
    if plan is not None:
        _secret_paths(plan.backend_options, "backend_options", secret_paths)
        for node in plan.exporters:
            if node.key.startswith("telemetry.exporters["):
                _secret_paths(node.options, node.key.removeprefix("telemetry."), secret_paths)
    flat: dict[str, Any] = {}
    for name in type(settings).model_fields:
        _flatten(getattr(settings, name), name, flat, is_secret_key(name), secret_paths)
    # A value substituted from ${VAR} shows as written in the file, not as the variable's value.
    for key, text in settings._templates.items():
        if key in flat and settings.source_of(_INDEX.sub("", key)) == "file":
            flat[key] = text
    return {key: (value, settings.source_of(_INDEX.sub("", key))) for key, value in flat.items()}


def _sampler_tree(node: Any) -> dict[str, Any]:
    options = {
        k: v
        for k, v in node.options.model_dump(mode="json").items()
        if not (isinstance(v, dict) and "type" in v)
    }
    return {
        "type": node.name,
        "options": options,
        "children": [_sampler_tree(child) for child in node.children],
    }


def _exporters_by_signal(plan: Plan | None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {signal: [] for signal in SIGNALS}
    for node in plan.exporters if plan is not None else []:
        for signal in SIGNALS:
            if signal in node.signals:
                out[signal].append(node.label)
    return out


def _render(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def run(args: argparse.Namespace) -> int:
    loaded = load_config(args.file)
    settings, plan = loaded.settings, loaded.plan
    values = redacted_settings(settings, plan)
    batch = {
        "batch_size": settings.batch_size,
        "batch_timeout_ms": settings.batch_timeout_ms,
        "max_queue_size": settings.max_queue_size,
        "on_full": settings.on_full,
    }
    if settings.on_full == "block":
        batch["block_ms"] = settings.block_ms
    exporters = _exporters_by_signal(plan)
    if args.json:
        document = {
            "file": settings.path,
            "enabled": settings.enabled,
            "settings": {k: {"value": v, "source": s} for k, (v, s) in values.items()},
            "sampler": _sampler_tree(plan.sampler) if plan is not None else None,
            "sampler_version": sampler_version(settings) if plan is not None else None,
            "exporters": exporters if plan is not None else None,
            "batch": batch,
            "instrumentations": (
                [
                    {"name": i.name, "package": i.package, "version": i.version}
                    for i in plan.instrumentations
                ]
                if plan is not None
                else []
            ),
            "notices": list(plan.notices) if plan is not None else [],
        }
        print(json.dumps(document, indent=2, default=str, ensure_ascii=False))
        return 0
    print(f"# config: {settings.path or 'environment and defaults'}")
    width = max(len(f"{k} = {_render(v)}") for k, (v, _) in values.items())
    for key, (value, source) in values.items():
        line = f"{key} = {_render(value)}"
        print(f"{line.ljust(width)}  # {source}")
    print()
    if plan is None:
        print("# telemetry is disabled: no sampler, no exporters")
        return 0
    print(f"# sampler (version {sampler_version(settings)})")
    for line in plan.sampler.describe():
        print(f"  {line}")
    print("# exporters")
    for signal, names in exporters.items():
        print(f"  {signal}: {', '.join(names) if names else '(off)'}")
    print("# batch")
    print("  " + " ".join(f"{k}={v}" for k, v in batch.items()))
    if plan.instrumentations:
        print("# instrumentations")
        for instrumentation in plan.instrumentations:
            print(f"  {instrumentation.describe()}")
    for notice in plan.notices:
        print(f"# note: {notice}")
    return 0
