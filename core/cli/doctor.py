"""``sfumato doctor [FILE]``: check a config against the world it will run in.

Validates the config exactly as ``validate`` does (an invalid config exits 2), then looks for
what would lose telemetry at run time: endpoints that do not accept a TCP connection, OTLP
exporters whose backend refuses an export (each signal is probed with an empty, valid OTLP
export request, sent as the exporter sends: see ``_probe``), a Prometheus port already taken
(findings), and signals the backend cannot take (notes: the config says so on purpose or by
default, and nothing breaks). Prints one line per check and exits 1 when anything was found,
0 when all is clean.

What to connect to and probe for an exporter comes from the plugins of the command line
(``sfumato_doctor_endpoint``; sfumato's ``otlp-probes`` knows its OTLP exporters); an exporter
none of them knows is checked by its ``endpoint`` URL option, or, when it ``serves_port``
(``prometheus``), by binding its ``host`` and ``port``.
"""

from __future__ import annotations

import argparse
import os
import socket
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal
from urllib.parse import urlsplit

from .. import _otel
from .._errors import ConfigError
from .._instrumentations import auto_instrumented, mismatched
from .._loading import LoadedConfig
from .._reload import sampler_version
from ..settings import SIGNALS, Settings, scrub_url_anywhere
from ._extensions import answers, cli_plugins
from ._help import add_command, plural
from ._output import load_or_report, print_json
from ._probe import ProbeTarget, probe
from .validate import CONFIG_HELP, describe_source

__all__ = ["Check", "DoctorEndpoint", "checks", "register"]


Level = Literal["ok", "note", "FAIL"]


@dataclass(frozen=True)
class DoctorEndpoint:
    """An exporter's endpoint as doctor checks it, what a plugin's ``sfumato_doctor_endpoint``
    hook returns: a TCP connection to ``host``:``port`` (one per endpoint, whatever the
    exporters sharing it), then each of ``probes`` (one export request per signal, sent as
    the exporter sends). ``endpoint`` is the endpoint as configured, for the messages."""

    host: str
    port: int
    endpoint: str
    probes: tuple[ProbeTarget, ...] = ()


@dataclass(frozen=True)
class Check:
    level: Level  # FAIL is a finding; a note is worth knowing and breaks nothing
    message: str
    # For an exporter's checks: its name, the signal probed, and the answer in short
    # ("OK", "HTTP 404", "gRPC UNIMPLEMENTED", "connection refused", "timeout", "TLS", ...).
    exporter: str | None = None
    signal: str | None = None
    answer: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @property
    def ok(self) -> bool:
        return self.level != "FAIL"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(
        sub,
        "doctor",
        "check a config, its plugins and that its endpoints are reachable",
        details="Validates the config as `validate` does, then connects to each endpoint, sends "
        "each OTLP exporter's backend an empty export request per signal (with the configured "
        "headers, TLS and compression) and checks each port it will listen on. A signal the "
        "backend cannot take is a note.",
        exits={
            0: "no findings (notes allowed)",
            1: "findings: an endpoint unreachable or refusing exports, a port taken",
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
        help="how long to wait for each connection and each probe's answer (default: 2)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    source = describe_source(args.file)
    loaded = load_or_report(args.file, source, args.json)
    if loaded is None:
        return 2
    results = checks(loaded, timeout=args.timeout)
    findings = sum(c.level == "FAIL" for c in results)
    notes = sum(c.level == "note" for c in results)
    if args.json:
        report = {
            "source": source,
            "valid": True,
            "checks": [c.as_json() for c in results],
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


def checks(loaded: LoadedConfig, timeout: float = 2.0) -> list[Check]:
    """Every check, in order: config, signals, then per exporter its endpoint (a failed
    connection is one finding) and, for OTLP, one probe per signal."""
    settings, plan = loaded.settings, loaded.plan
    if not settings.enabled or plan is None:
        return [Check("ok", f"telemetry is disabled ({settings.source_of('enabled')})")]
    results = [Check("ok", f"config valid: backend {settings.backend!r}, plugins resolved")]
    reason = _otel.fallback_reason()
    if reason is not None:
        results.append(
            Check("note", f"the SDK's own span and metric path is in use, slower ({reason})")
        )

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
    results += _instrumentation_checks(plan)
    results.append(
        Check(
            "ok",
            f"sampler version {sampler_version(settings)} (a running service reports the "
            "version it runs: Telemetry.sampler_version and /healthz; `sfumato reload PID` "
            "applies this file's)",
        )
    )
    if os.environ.get("OTEL_CONFIG_FILE"):
        results.append(
            Check(
                "note",
                f"OTEL_CONFIG_FILE is set ({os.environ['OTEL_CONFIG_FILE']}): OpenTelemetry's "
                "declarative configuration then ignores the other OTEL_* variables, and an SDK "
                "that reads it would configure itself from that file, not from sfumato's",
            )
        )

    seen: set[tuple[str, str, int]] = set()
    connected: dict[tuple[str, int], Check] = {}
    probed: set[tuple[str, ProbeTarget]] = set()
    plugins = cli_plugins()[0]
    for node in plan.exporters:
        try:
            answer: DoctorEndpoint | None = next(
                answers(
                    plugins,
                    "sfumato_doctor_endpoint",
                    exporter=node.plugin,
                    options=node.options,
                    settings=settings,
                    signals=[s for s in SIGNALS if s in node.signals],
                    key=str(node.key),
                    timeout=timeout,
                ),
                None,
            )
        except ConfigError as exc:
            results.append(Check("FAIL", f"{_label(node)}: {exc.message}", exporter=node.label))
            continue
        if answer is not None:
            host, port, endpoint, targets = answer.host, answer.port, answer.endpoint, answer.probes
            if (host, port) not in connected:
                connected[host, port] = _connect(host, port, f"{_label(node)} {endpoint}", timeout)
                if not connected[host, port].ok:
                    results.append(replace(connected[host, port], exporter=node.label))
            if not connected[host, port].ok:
                continue  # one finding for the endpoint, not one per signal
            for target in targets:
                if (node.name, target) not in probed:
                    probed.add((node.name, target))
                    probed_answer = probe(target)
                    results.append(
                        Check(
                            probed_answer.level,
                            f"{node.label} ({target.signal}) {endpoint}: {probed_answer.detail}",
                            exporter=node.label,
                            signal=target.signal,
                            answer=probed_answer.answer,
                        )
                    )
            continue
        for kind, host, port, label in _targets(node, settings, results):
            if (kind, host, port) in seen:
                continue
            seen.add((kind, host, port))
            if kind == "connect":
                results.append(_connect(host, port, label, timeout))
            else:
                results.append(_bindable(host, port, label))
    return results


def _instrumentation_checks(plan: Any) -> list[Check]:
    """The active instrumentations; opentelemetry-instrument running beside sfumato; and
    installed instrumentation packages pinned to other OpenTelemetry versions."""
    found: list[Check] = []
    for instrumentation in plan.instrumentations:
        found.append(Check("ok", f"instrumentation {instrumentation.describe()}"))
    if auto_instrumented():
        found.append(
            Check(
                "note",
                "opentelemetry-instrument set this process up: libraries it instrumented are "
                "left as they are (sfumato instruments nothing twice); run the service "
                "without it and list them under [telemetry.instrumentations]",
            )
        )
    active = {i.package for i in plan.instrumentations}
    for package, requires, fix in mismatched():
        # A finding for an instrumentation in use; a note for one merely installed.
        level: Level = "FAIL" if package.split(" ")[0] in active else "note"
        found.append(
            Check(
                level,
                f"{package} requires {requires}, another OpenTelemetry release than the "
                f"installed one: {fix}",
            )
        )
    return found


def _label(node: Any) -> str:
    return f"{node.label} ({', '.join(s for s in SIGNALS if s in node.signals)})"


def _targets(
    node: Any, settings: Settings, results: list[Check]
) -> list[tuple[str, str, int, str]]:
    """(connect|bind, host, port, label) for an exporter no plugin probes: a port it serves
    (``serves_port``: its ``host`` and ``port`` options), or an ``endpoint`` URL option."""
    options = node.options
    label = _label(node)
    host, port = getattr(options, "host", None), getattr(options, "port", None)
    if getattr(node.plugin, "serves_port", False) and isinstance(port, int):
        return [("bind", str(host or ""), port, f"{label} endpoint")]
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
        answer = reason
        if isinstance(exc, ConnectionRefusedError):
            answer = "connection refused"
        elif isinstance(exc, TimeoutError):
            answer = "timeout"
        return Check("FAIL", f"{label}: cannot connect to {host}:{port}: {reason}", answer=answer)


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
