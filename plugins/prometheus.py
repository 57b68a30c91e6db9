"""Exporter ``prometheus``: a metric reader serving ``/metrics`` for Prometheus to scrape."""

from __future__ import annotations

import ipaddress
import logging
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field
from sfumato import ConfigError
from sfumato.plugin import BuildContext, Exporter
from sfumato.settings import Signal

__all__ = ["PrometheusExporter", "PrometheusOptions", "is_unspecified"]

log = logging.getLogger("sfumato")


class PrometheusOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="127.0.0.1", description="Bind address; loopback unless asked.")
    port: int = Field(default=9464, ge=0, le=65535, description="Port of /metrics; 0 picks one.")
    prefix: str = Field(default="", description="Prefix added to every metric name.")
    target_info: bool = Field(
        default=True, description="Export the resource as a target_info metric."
    )


def is_unspecified(host: str) -> bool:
    """True for a wildcard bind address (every interface): ``0.0.0.0``, ``::`` or empty."""
    if host in ("", "*"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


def _reader(options: PrometheusOptions) -> Any:
    """A PrometheusMetricReader with its own registry and HTTP server.

    Its own registry (rather than prometheus_client's global one) means a second
    ``configure()`` in the same process never collides with the first's collector, and the
    server is closed at shutdown so the port is free again.
    """
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import CollectorRegistry, start_http_server

    class PrometheusEndpoint(PrometheusMetricReader):
        def __init__(self) -> None:
            self.registry = CollectorRegistry(auto_describe=True)
            super().__init__(
                disable_target_info=not options.target_info,
                prefix=options.prefix,
                registry=self.registry,
            )
            host = options.host.strip("[]") or "0.0.0.0"
            try:
                self._server, self._thread = start_http_server(
                    options.port, addr=host, registry=self.registry
                )
            except OSError as exc:  # the registry is this endpoint's own: nothing to undo
                raise ConfigError(
                    f"cannot serve Prometheus metrics on {options.host}:{options.port}: "
                    f"{exc.strerror or exc}"
                ) from None
            self.host = host
            self.port: int = self._server.server_address[1]

        @property
        def url(self) -> str:
            host = f"[{self.host}]" if ":" in self.host else self.host
            return f"http://{host}:{self.port}/metrics"

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            try:
                self._server.shutdown()
                self._server.server_close()
            finally:
                super().shutdown(timeout_millis=timeout_millis, **kwargs)

    return PrometheusEndpoint()


class PrometheusExporter(Exporter):
    """Metrics only: a pull reader, not a push exporter, so no export interval applies."""

    Options: ClassVar[type[BaseModel]] = PrometheusOptions
    signals: ClassVar[frozenset[Signal]] = frozenset({"metrics"})
    # A port serves one process: a forked child leaves the endpoint to its parent.
    serves_port: ClassVar[bool] = True
    requires: ClassVar[dict[str, str]] = dict.fromkeys(
        ("opentelemetry.exporter.prometheus", "prometheus_client"), "sfumato[prometheus]"
    )

    def create(self, signal: Signal, options: Any, context: BuildContext) -> Any:
        if is_unspecified(options.host):
            message = (
                f"Prometheus endpoint bound to {options.host or 'every interface'}:"
                f"{options.port}: metrics are reachable from other hosts"
            )
            context.notice(message)
            log.warning("sfumato: %s", message)
        return _reader(options)
