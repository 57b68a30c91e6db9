"""Environment overrides: ``SFUMATO_*`` and the standard ``OTEL_*`` variables.

``SFUMATO_<KEY>`` sets a top-level key and ``SFUMATO_<TABLE>__<KEY>`` a key of a sub-table
(``SFUMATO_METRICS__ENABLED=false``). ``SFUMATO_*`` wins over ``OTEL_*``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from ._errors import ConfigError

__all__ = ["EnvOverride", "env_overrides", "parse_key_values"]

PREFIX = "SFUMATO_"
# Variables that are not settings keys.
_NOT_KEYS = {
    "SFUMATO_CONFIG",
    "SFUMATO_STRICT",
    "SFUMATO_DISABLE_PLUGINS",
    "SFUMATO_DEBUG",
    "SFUMATO_OTEL_FALLBACK",
}
_LISTS = {"propagators", "disable"}
_MAPS = {"headers", "resource"}


@dataclass(frozen=True)
class EnvOverride:
    path: tuple[str, ...]
    value: Any
    variable: str
    merge: bool = False  # merge into a table instead of replacing it


def parse_key_values(text: str, variable: str) -> dict[str, str]:
    """``k=v,k2=v2`` as the OTel spec writes headers and resource attributes (URL-decoded)."""
    out: dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"expected comma-separated key=value pairs, got an item without '=' "
                f"(item {len(out) + 1})",
                source=f"environment variable {variable}",
            )
        out[unquote(key.strip())] = unquote(value.strip())
    return out


def _coerce(name: str, raw: str, variable: str) -> Any:
    if name in _LISTS:
        return [item.strip() for item in raw.split(",") if item.strip()]
    if name in _MAPS:
        return parse_key_values(raw, variable)
    return raw  # pydantic's lax mode turns "512" into 512 and "false" into False


def _otel(env: Mapping[str, str]) -> Iterator[EnvOverride]:
    if (v := env.get("OTEL_SDK_DISABLED")) and v.strip().lower() == "true":
        yield EnvOverride(("enabled",), False, "OTEL_SDK_DISABLED")
    if v := env.get("OTEL_SERVICE_NAME"):
        yield EnvOverride(("service_name",), v, "OTEL_SERVICE_NAME")
    if v := env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        yield EnvOverride(("otlp_endpoint",), v, "OTEL_EXPORTER_OTLP_ENDPOINT")
    if v := env.get("OTEL_EXPORTER_OTLP_PROTOCOL"):
        yield EnvOverride(("protocol",), v, "OTEL_EXPORTER_OTLP_PROTOCOL")
    if v := env.get("OTEL_EXPORTER_OTLP_HEADERS"):
        yield EnvOverride(
            ("headers",),
            parse_key_values(v, "OTEL_EXPORTER_OTLP_HEADERS"),
            "OTEL_EXPORTER_OTLP_HEADERS",
            merge=True,
        )
    if v := env.get("OTEL_METRICS_EXEMPLAR_FILTER"):
        yield EnvOverride(("metrics", "exemplars"), v.strip(), "OTEL_METRICS_EXEMPLAR_FILTER")
    if v := env.get("OTEL_RESOURCE_ATTRIBUTES"):
        yield EnvOverride(
            ("resource",),
            parse_key_values(v, "OTEL_RESOURCE_ATTRIBUTES"),
            "OTEL_RESOURCE_ATTRIBUTES",
            merge=True,
        )


def env_overrides(env: Mapping[str, str]) -> list[EnvOverride]:
    """Overrides in the order to apply them (later wins)."""
    out = list(_otel(env))
    for variable in sorted(env):
        if not variable.startswith(PREFIX) or variable in _NOT_KEYS:
            continue
        if not env[variable].strip():
            continue  # as for OTEL_*, an empty variable counts as unset
        path = tuple(p.lower() for p in variable[len(PREFIX) :].split("__"))
        if not all(path):
            continue
        out.append(EnvOverride(path, _coerce(path[-1], env[variable], variable), variable))
    if (v := env.get("SFUMATO_DISABLE_PLUGINS")) is not None:
        out.append(
            EnvOverride(
                ("plugins", "disable"),
                _coerce("disable", v, "SFUMATO_DISABLE_PLUGINS"),
                "SFUMATO_DISABLE_PLUGINS",
            )
        )
    return out
