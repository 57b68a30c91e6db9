"""Read the ``[telemetry]`` table of a TOML file into validated Settings.

Order: read and parse (tomlkit) -> take ``[telemetry]`` -> substitute ``${VAR}`` into parsed
strings -> apply environment overrides and keyword arguments -> validate (pydantic) ->
resolve the plugins the settings name. Every failure is one ConfigError.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tomlkit
from pydantic import ValidationError
from tomlkit.exceptions import ParseError

from ._environment import env_overrides
from ._errors import ConfigError
from ._interpolation import interpolate
from ._locate import locate
from ._validation import config_error
from .settings import Settings

__all__ = ["MAX_CONFIG_BYTES", "load_settings", "read_document"]

MAX_CONFIG_BYTES = 4 * 1024 * 1024
TABLE = "telemetry"


def read_text(path: Path) -> str:
    """The file's text, or a ConfigError saying why it cannot be read."""
    try:
        if path.is_dir():
            raise ConfigError("is a directory, not a TOML file", path=path)
        with path.open("rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except ConfigError:
        raise
    except FileNotFoundError:
        raise ConfigError("file not found", path=path) from None
    except PermissionError:
        raise ConfigError("permission denied: the file cannot be read", path=path) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror or exc}", path=path) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"file is larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MiB; not a config file",
            path=path,
        )
    if not data.strip():
        raise ConfigError("file is empty: expected TOML with a [telemetry] table", path=path)
    if b"\x00" in data:
        raise ConfigError("file is binary, not TOML text", path=path)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"file is not UTF-8 text (bad byte at offset {exc.start})", path=path
        ) from None


def read_document(path: str | os.PathLike[str]) -> tuple[tomlkit.TOMLDocument, str]:
    """The parsed document (kept for writing back) and its text."""
    file = Path(path)
    text = read_text(file)
    try:
        return tomlkit.parse(text), text
    except ParseError as exc:
        reason = str(exc).split(" at line ")[0]
        raise ConfigError(
            f"invalid TOML: {reason}", path=file, line=exc.line, column=exc.col
        ) from None
    except Exception as exc:  # tomlkit can raise other errors on hostile input
        raise ConfigError(f"invalid TOML: {type(exc).__name__}: {exc}", path=file) from None


def _leaves(value: Any, prefix: str) -> list[str]:
    if isinstance(value, dict) and value:
        return [k for key, v in value.items() for k in _leaves(v, f"{prefix}.{key}")]
    return [prefix]


def _set(target: dict[str, Any], path: tuple[str, ...], value: Any, merge: bool) -> None:
    for part in path[:-1]:
        child = target.get(part)
        if not isinstance(child, dict):
            child = target[part] = {}
        target = child
    last = path[-1]
    if merge and isinstance(target.get(last), dict) and isinstance(value, dict):
        target[last] = {**target[last], **value}
    else:
        target[last] = value


def _locate_error(exc: ConfigError, text: str | None, path: Path | None, sources: dict[str, str]) -> ConfigError:
    if exc.source or exc.key is None:
        return exc.located(path=path)
    key = exc.key.removeprefix(f"{TABLE}.")
    origin = _origin(sources, key)
    if origin.startswith("env:"):
        return ConfigError(exc.message, key=exc.key, source=f"environment variable {origin[4:]}")
    if origin == "argument":
        return ConfigError(exc.message, key=exc.key, source="argument")
    if text is not None:
        where = locate(text, exc.key)
        if where:
            return exc.located(path=path, line=where[0], column=where[1])
    return exc.located(path=path)


def _origin(sources: dict[str, str], key: str) -> str:
    """Where a dotted key came from; list items count as their list."""
    key = re.sub(r"\[\d+\].*", "", key)
    while key:
        if key in sources:
            return sources[key]
        key = key.rpartition(".")[0]
    return "file"


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    resolve_plugins: bool = True,
    **overrides: Any,
) -> Settings:
    """Validated settings from ``path``'s ``[telemetry]`` table, the environment and ``overrides``.

    Precedence, highest first: ``overrides``, environment (``TEMPERA_*`` then ``OTEL_*``), the
    file, defaults. With no path, ``TEMPERA_CONFIG`` names the file; with neither, settings
    come from the environment and defaults. A file without a ``[telemetry]`` table gives
    ``enabled = False``. Raises ConfigError.
    """
    environ = os.environ if env is None else env
    if path is None and environ.get("TEMPERA_CONFIG"):
        path = environ["TEMPERA_CONFIG"]
    file = Path(path) if path is not None else None
    text: str | None = None
    raw: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if file is not None:
        doc, text = read_document(file)
        if TABLE not in doc:
            raw = {"enabled": False}
            sources["enabled"] = "file (no [telemetry] table)"
        else:
            table = doc[TABLE]
            if not isinstance(table, dict):
                where = locate(text, TABLE)
                raise ConfigError(
                    f"expected a table ([{TABLE}]), got {type(table.unwrap() if hasattr(table, 'unwrap') else table).__name__}",
                    path=file, line=where[0] if where else None,
                    column=where[1] if where else None, key=TABLE,
                )
            unwrapped = table.unwrap() if hasattr(table, "unwrap") else dict(table)
            raw = interpolate_located(unwrapped, environ, text, file)
            sources.update(dict.fromkeys((k.removeprefix(f"{TABLE}.") for k in _leaves(raw, TABLE)), "file"))
    for override in env_overrides(environ):
        _set(raw, override.path, override.value, override.merge)
        sources[".".join(override.path)] = f"env:{override.variable}"
    for name, value in overrides.items():
        if value is None:
            continue
        _set(raw, (name,), value, merge=False)
        sources[name] = "argument"
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        raise _locate_error(config_error(exc, TABLE, Settings), text, file, sources) from None
    settings._sources = sources
    settings._path = str(file) if file is not None else None
    if resolve_plugins and settings.enabled:
        from ._resolve import resolve

        try:
            settings._plan = resolve(settings)
        except ConfigError as exc:
            raise _locate_error(exc, text, file, sources) from None
    return settings


def interpolate_located(raw: dict[str, Any], env: Mapping[str, str], text: str, file: Path) -> dict[str, Any]:
    try:
        result: dict[str, Any] = interpolate(raw, env, TABLE)
    except ConfigError as exc:
        raise _locate_error(exc, text, file, {}) from None
    return result
