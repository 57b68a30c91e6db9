"""``sfumato doctor [FILE]``: check a config against the world it will run in.

Validates the config and resolves its plugins (an invalid config exits 2, like ``validate``),
then looks for what would lose telemetry at run time: endpoints that do not accept a TCP
connection, signals the backend cannot take, a Prometheus port already taken. Prints one
line per check and exits 1 when anything was found, 0 when all is clean.
"""

from __future__ import annotations

import argparse
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .._errors import ConfigError
from .._loading import load_settings
from ..settings import SIGNALS, Settings, scrub_url_anywhere

__all__ = ["Check", "checks", "register"]


@dataclass(frozen=True)
class Check:
    ok: bool
    message: str


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "doctor",
        help="check a config, its plugins and that its endpoints are reachable",
        description="Exit 0 when clean, 1 on any finding, 2 when the config is invalid.",
    )
    p.add_argument("file", nargs="?", default=None, help="TOML file (default: $SFUMATO_CONFIG)")
    p.add_argument(
        "--timeout",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="how long to wait for each TCP connection (default: 2)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.file)
    results = checks(settings, timeout=args.timeout)
    for check in results:
        # An endpoint's user:password (basic auth in the URL) is never printed.
        print(f"{'ok  ' if check.ok else 'FAIL'}  {scrub_url_anywhere(check.message)}")
    findings = sum(not c.ok for c in results)
    if findings:
        print(f"{findings} finding{'s' if findings != 1 else ''}")
        return 1
    print("no findings")
    return 0


def checks(settings: Settings, timeout: float = 2.0) -> list[Check]:
    """Every check, in order: config, signals, then one per distinct endpoint."""
    if not settings.enabled:
        return [Check(True, f"telemetry is disabled ({settings.source_of('enabled')})")]
    plan = settings._plan
    results = [Check(True, f"config valid: backend {settings.backend!r}, plugins resolved")]

    wanted = ["traces"]
    wanted += ["metrics"] if settings.metrics.enabled else []
    wanted += ["logs"] if settings.logs.enabled else []
    takes = frozenset(getattr(plan.backend, "signals", SIGNALS))
    sent = {s for node in plan.exporters for s in node.signals}
    for signal in wanted:
        if signal in sent or (settings.backend == "none" and signal in takes):
            continue
        why = (
            f"backend {settings.backend!r} cannot take {signal}"
            if signal not in takes
            else f"no exporter carries {signal}"
        )
        hint = "add one under [[telemetry.exporters]]"
        if signal != "traces":
            hint += f" or set {signal}.enabled = false"
        results.append(Check(False, f"{why}: {signal} are not exported ({hint})"))

    seen: set[tuple[str, str, int]] = set()
    for node in plan.exporters:
        for kind, host, port, label in _targets(node, settings, results):
            if (kind, host, port) in seen:
                continue
            seen.add((kind, host, port))
            if kind == "connect":
                results.append(_connect(host, port, label, timeout))
            else:
                results.append(_bindable(host, port, label))
    return results


def _targets(
    node: Any, settings: Settings, results: list[Check]
) -> list[tuple[str, str, int, str]]:
    """(connect|bind, host, port, label) for an exporter; a rule it breaks becomes a finding."""
    from sfumato.plugins.exporters import OtlpGrpcExporter, OtlpHttpExporter
    from sfumato.plugins.otlp_endpoints import (
        DEFAULT_GRPC,
        DEFAULT_HTTP,
        grpc_target,
        http_signal_url,
    )
    from sfumato.plugins.prometheus import PrometheusExporter

    options = node.options
    label = f"{node.name} ({', '.join(s for s in SIGNALS if s in node.signals)})"
    try:
        if isinstance(node.plugin, OtlpGrpcExporter):
            endpoint = options.endpoint or settings.otlp_endpoint or DEFAULT_GRPC
            insecure = options.insecure if options.insecure is not None else settings.insecure
            target, plaintext = grpc_target(endpoint, insecure)
            parts = urlsplit(f"//{target}")
            return [
                (
                    "connect",
                    parts.hostname or "",
                    parts.port or (80 if plaintext else 443),
                    f"{label} {endpoint}",
                )
            ]
        if isinstance(node.plugin, OtlpHttpExporter):
            endpoint = options.endpoint or settings.otlp_endpoint or DEFAULT_HTTP
            parts = urlsplit(http_signal_url(endpoint, "traces"))
            port = parts.port or (443 if parts.scheme == "https" else 80)
            return [("connect", parts.hostname or "", port, f"{label} {endpoint}")]
        if isinstance(node.plugin, PrometheusExporter):
            return [("bind", options.host, options.port, f"{label} endpoint")]
    except ConfigError as exc:
        results.append(Check(False, f"{label}: {exc.message}"))
        return []
    # A third-party exporter with an ``endpoint`` URL option is checked the same way.
    endpoint = getattr(options, "endpoint", None)
    if isinstance(endpoint, str) and "://" in endpoint:
        parts = urlsplit(endpoint)
        if parts.hostname:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            return [("connect", parts.hostname, port, f"{label} {endpoint}")]
    return []


def _connect(host: str, port: int, label: str, timeout: float) -> Check:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return Check(True, f"{label}: {host}:{port} accepts connections")
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        return Check(False, f"{label}: cannot connect to {host}:{port}: {reason}")


def _bindable(host: str, port: int, label: str) -> Check:
    if port == 0:
        return Check(True, f"{label}: picks a free port at start")
    bind_host = host.strip("[]") or "0.0.0.0"
    family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((bind_host, port))
    except OSError as exc:
        return Check(False, f"{label}: cannot listen on {host}:{port}: {exc.strerror or exc}")
    return Check(True, f"{label}: {host}:{port} is free to listen on")
