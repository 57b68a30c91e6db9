"""``sfumato doctor``'s probes of the OTLP exporters (``otlp-grpc``, ``otlp-http``): a plugin
of the command line (entry-point group ``sfumato.cli``), never loaded by ``configure()``.

Each probe is set up as the exporter sets up its export: endpoint, headers (the backend's
merged over telemetry.headers), TLS, compression, and the shorter of its export timeout and
doctor's ``timeout``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from sfumato import hookimpl
from sfumato.cli import DoctorEndpoint, ProbeTarget
from sfumato.settings import Settings, Signal

from .exporters import OtlpGrpcExporter, OtlpHttpExporter
from .otlp_endpoints import DEFAULT_GRPC, DEFAULT_HTTP, grpc_target, http_signal_url

__all__ = ["OtlpProbes"]


class OtlpProbes:
    """Answers ``sfumato_doctor_endpoint`` for the OTLP exporters."""

    @hookimpl
    def sfumato_doctor_endpoint(
        self,
        exporter: Any,
        options: Any,
        settings: Settings,
        signals: Sequence[Signal],
        key: str,
        timeout: float,
    ) -> DoctorEndpoint | None:
        """The endpoint and one probe per signal for an OTLP exporter; None for another."""
        grpc = isinstance(exporter, OtlpGrpcExporter)
        if not grpc and not isinstance(exporter, OtlpHttpExporter):
            return None
        headers = settings.header_values()
        headers.update({k: v.get_secret_value() for k, v in options.headers.items()})
        insecure = options.insecure if options.insecure is not None else settings.insecure
        export_timeout = (options.timeout_ms or settings.export_timeout_ms) / 1000
        common: dict[str, Any] = {
            "headers": tuple(headers.items()),
            "gzip": (options.compression or settings.compression) == "gzip",
            "certificate_file": options.certificate_file,
            "timeout": min(timeout, export_timeout),
            "export_timeout": export_timeout,
            "own_table": key.startswith("telemetry.exporters"),
        }
        if grpc:
            endpoint = options.endpoint or settings.otlp_endpoint or DEFAULT_GRPC
            target, plaintext = grpc_target(endpoint, insecure)
            parts = urlsplit(f"//{target}")
            host, port = parts.hostname or "", parts.port or (80 if plaintext else 443)
            probes = tuple(
                ProbeTarget(
                    "grpc",
                    signal,
                    target,
                    f"{target}" if parts.port else f"{target}:{port}",
                    tls=not plaintext,
                    verify=True,
                    **common,
                )
                for signal in signals
            )
            return DoctorEndpoint(host, port, endpoint, probes)
        endpoint = options.endpoint or settings.otlp_endpoint or DEFAULT_HTTP
        parts = urlsplit(http_signal_url(endpoint, "traces"))
        tls = parts.scheme == "https"
        host, port = parts.hostname or "", parts.port or (443 if tls else 80)
        hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        probes = tuple(
            ProbeTarget(
                "http",
                signal,
                http_signal_url(endpoint, signal),
                hostport,
                tls=tls,
                verify=not (tls and insecure),
                **common,
            )
            for signal in signals
        )
        return DoctorEndpoint(host, port, endpoint, probes)
