"""What the OTLP-based backend presets share: endpoint, protocol and secret lookup."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import SecretStr
from sfumato import ConfigError
from sfumato.plugin import ExporterUse
from sfumato.settings import Settings, Signal

__all__ = ["from_environment", "otlp_use"]


def otlp_use(
    settings: Settings,
    signals: frozenset[Signal],
    *,
    endpoint: str | None = None,
    default_grpc: str,
    default_http: str,
    headers: Mapping[str, SecretStr] | None = None,
    protocol: str | None = None,
) -> ExporterUse:
    """One OTLP exporter for ``signals``.

    The endpoint is, first found: the backend option, ``telemetry.otlp_endpoint``, the
    backend's default for the protocol. The protocol is ``protocol`` when the backend can only
    speak one, else ``telemetry.protocol``.
    """
    wire = protocol or settings.protocol
    exporter = "otlp-grpc" if wire == "grpc" else "otlp-http"
    default = default_grpc if wire == "grpc" else default_http
    options: dict[str, object] = {"endpoint": endpoint or settings.otlp_endpoint or default}
    if headers:
        options["headers"] = dict(headers)
    return ExporterUse(exporter, signals, options)


def from_environment(variable: str, what: str, env: Mapping[str, str] | None = None) -> SecretStr:
    """A secret read from ``env`` (a backend passes ``context.environ``: the mapping the
    settings were loaded from) or the process environment; missing or empty is a ConfigError
    naming it. The value is wrapped at once so that no repr, error or log line can show it.
    """
    value = (os.environ if env is None else env).get(variable, "")
    if not value.strip():
        raise ConfigError(f"{what}: environment variable {variable} is not set")
    return SecretStr(value.strip())
