"""``sfumato doctor [FILE]``: check a config against the world it will run in.

Validates the config exactly as ``validate`` does (an invalid config exits 2), then looks for
what would lose telemetry at run time: endpoints that do not accept a TCP connection, a
Prometheus port already taken (findings), and signals the backend cannot take (notes: the
config says so on purpose or by default, and nothing breaks). Prints one line per check and
exits 1 when anything was found, 0 when all is clean.
"""

from __future__ import annotations

import argparse
import socket
from dataclasses import asdict, dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from .._errors import ConfigError
from .._loading import load_settings
from ..settings import SIGNALS, Settings, scrub_url_anywhere
from ._help import add_command, plural
from ._output import print_json, problems_json
from .validate import CONFIG_HELP, describe_source

__all__ = ["Check", "checks", "register"]


Level = Literal["ok", "note", "FAIL"]


@dataclass(frozen=True)
class Check:
    level: Level  # FAIL is a finding; a note is worth knowing and breaks nothing
    message: str

    @property
    def ok(self) -> bool:
        return self.level != "FAIL"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(
        sub,
        "doctor",
        "check a config, its plugins and that its endpoints are reachable",
        details="Validates the config as `validate` does, then connects to each endpoint and "
        "checks each port it will listen on. A signal the backend cannot take is a note.",
        exits={
            0: "no findings (notes allowed)",
            1: "findings: an endpoint unreachable, a port taken",
            2: "the config is invalid (one line per problem)",
        },
    )
    p.add_argument("file", nargs="?", default=None, help=CONFIG_HELP)
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument(
        "--timeout",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="how long to wait for each TCP connection (default: 2)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    source = describe_source(args.file)
    try:
        settings = load_settings(args.file)
    except ConfigError as exc:
        if not args.json:
            raise
        print_json({"source": source, "valid": False, "problems": problems_json(exc)})
        return 2
    results = checks(settings, timeout=args.timeout)
    findings = sum(c.level == "FAIL" for c in results)
    notes = sum(c.level == "note" for c in results)
    if args.json:
        report = {
            "source": source,
            "valid": True,
            "checks": [asdict(c) for c in results],
            "findings": findings,
            "notes": notes,
        }
        print_json(report)
    else:
        for check in results:
            # An endpoint's user:password (basic auth in the URL) is never printed.
            print(f"{check.level:<4}  {scrub_url_anywhere(check.message)}")
        counted = f" ({plural(notes, 'note')})" if notes else ""
        print(f"{plural(findings, 'finding') if findings else 'no findings'}{counted}")
    return 1 if findings else 0


def checks(settings: Settings, timeout: float = 2.0) -> list[Check]:
    """Every check, in order: config, signals, then one per distinct endpoint."""
    if not settings.enabled:
        return [Check("ok", f"telemetry is disabled ({settings.source_of('enabled')})")]
    plan = settings._plan
    results = [Check("ok", f"config valid: backend {settings.backend!r}, plugins resolved")]

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
        results.append(Check("note", f"{why}: {signal} are not exported ({hint})"))

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
        results.append(Check("FAIL", f"{label}: {exc.message}"))
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
            return Check("ok", f"{label}: {host}:{port} accepts connections")
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        return Check("FAIL", f"{label}: cannot connect to {host}:{port}: {reason}")


def _bindable(host: str, port: int, label: str) -> Check:
    if port == 0:
        return Check("ok", f"{label}: picks a free port at start")
    bind_host = host.strip("[]") or "0.0.0.0"
    family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            # As the endpoint's own server does (http.server's allow_reuse_address): a port
            # held only by connections in TIME_WAIT is free to listen on.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((bind_host, port))
            s.listen()
    except OSError as exc:
        return Check("FAIL", f"{label}: cannot listen on {host}:{port}: {exc.strerror or exc}")
    return Check("ok", f"{label}: {host}:{port} is free to listen on")
