"""Read the ``[telemetry]`` table of a TOML file into validated Settings.

Order: read and parse (tomlkit) -> take ``[telemetry]`` -> substitute ``${VAR}`` into parsed
strings -> apply environment overrides and keyword arguments -> validate (pydantic) ->
resolve the plugins the settings name. Every failure is one ConfigError.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any

import tomlkit
from pydantic import ValidationError
from tomlkit.exceptions import KeyAlreadyPresent, ParseError

from ._environment import env_overrides
from ._errors import ConfigError
from ._interpolation import interpolate
from ._locate import locate, locate_all
from ._pipeline import check_plan
from ._resolve import Plan, resolve
from ._validation import MAX_PROBLEMS, a_type, config_error
from .settings import Settings

__all__ = [
    "DEFAULT_FILE",
    "MAX_CONFIG_BYTES",
    "LoadedConfig",
    "config_from_text",
    "find_config",
    "load_config",
    "load_settings",
    "parse_document",
    "read_document",
    "read_text",
    "settings_from_text",
]

MAX_CONFIG_BYTES = 4 * 1024 * 1024
TABLE = "telemetry"
# The file ``sfumato init`` writes and every command and ``configure()`` find by default.
DEFAULT_FILE = "sfumato.toml"
CONFIG_VARIABLE = "SFUMATO_CONFIG"


@dataclass(frozen=True)
class LoadedConfig:
    """What loading a config gives: the validated settings, the plan resolved from them
    (None when telemetry is disabled or plugins were not resolved), where each dotted key
    came from, the file read (None: environment and defaults only) and the environment
    mapping read (None: the process's own)."""

    settings: Settings
    plan: Plan | None
    sources: Mapping[str, str]
    path: Path | None
    environ: Mapping[str, str] | None


def find_config(
    path: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None
) -> Path | None:
    """The config file to read, in the one order every command and ``configure()`` use:
    ``path`` when given, else ``$SFUMATO_CONFIG``, else ``sfumato.toml`` in the current
    directory when it exists; None when there is none (settings then come from the
    environment and defaults)."""
    env = os.environ if environ is None else environ
    if path is not None:
        return Path(path)
    if env.get(CONFIG_VARIABLE):
        return Path(env[CONFIG_VARIABLE])
    default = Path(DEFAULT_FILE)
    return default if default.is_file() else None


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


def parse_document(text: str, path: Path | None) -> tomlkit.TOMLDocument:
    """``text`` parsed by tomlkit; a ConfigError with the parser's line and column if not."""
    try:
        return tomlkit.parse(text)
    except ParseError as exc:
        reason = str(exc).split(" at line ")[0]
        line: int | None = exc.line
        column: int | None = exc.col + 1  # tomlkit counts columns from 0
        if reason == "Unexpected character: '\\x00'":
            reason = "unexpected end of file (an unclosed array, table or string?)"
            line, column = _last_line(text), None
        elif reason.endswith("use \\u000a instead"):
            reason = "a string is not closed before the end of the line"
        elif match := _ALREADY.fullmatch(reason):
            reason = f"duplicate key '{match.group(1)}'"
            column = None
        else:
            reason = reason[:1].lower() + reason[1:]
        raise ConfigError(f"invalid TOML: {reason}", path=path, line=line, column=column) from None
    except KeyAlreadyPresent as exc:
        # Raised without a position: find the key's second definition in the text.
        match = _ALREADY.fullmatch(str(exc))
        name = match.group(1) if match else "?"
        raise ConfigError(
            f"invalid TOML: duplicate key '{name}'", path=path, line=_second_definition(text, name)
        ) from None
    except Exception as exc:  # tomlkit can raise other errors on hostile input
        raise ConfigError(f"invalid TOML: {type(exc).__name__}: {exc}", path=path) from None


_ALREADY = re.compile(r'Key "(.*)" already exists\.')


def _last_line(text: str) -> int:
    return max(1, len(text.rstrip("\r\n").splitlines()))


def _second_definition(text: str, name: str) -> int | None:
    quoted = re.escape(name)
    pattern = re.compile(
        rf"""^\s*(?:\[\[?\s*)?(?:[^=\]#]*\.\s*)?["']?{quoted}["']?\s*(?:=|\]\]?)"""
    )
    lines = [n for n, line in enumerate(text.splitlines(), start=1) if pattern.match(line)]
    return lines[1] if len(lines) > 1 else None


def read_document(path: str | os.PathLike[str]) -> tuple[tomlkit.TOMLDocument, str]:
    """The parsed document (kept for writing back) and its text."""
    file = Path(path)
    text = read_text(file)
    return parse_document(text, file), text


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


def _locate_error(
    exc: ConfigError, text: str | None, path: Path | None, sources: dict[str, str]
) -> ConfigError:
    """``exc`` with each of its problems located: the file's line:column of its key, or the
    variable or argument it came from."""
    if exc.more:
        keys = [p.key for p in exc.problems if p.key is not None]
        where = locate_all(text, keys) if text is not None else {}
        located = [_locate_one(p, text, path, sources, where) for p in exc.problems]
        located.sort(key=lambda p: (p.line is None, p.line or 0, p.column or 0))  # file order
        return ConfigError.of(located)
    return _locate_one(exc, text, path, sources)


def _locate_one(
    exc: ConfigError,
    text: str | None,
    path: Path | None,
    sources: dict[str, str],
    found: dict[str, tuple[int, int]] | None = None,
) -> ConfigError:
    if exc.source or exc.key is None:
        return exc.located(path=path)
    key = exc.key.removeprefix(f"{TABLE}.")
    origin = _origin(sources, key)
    if origin.startswith("env:"):
        return ConfigError(exc.message, key=exc.key, source=f"environment variable {origin[4:]}")
    if origin == "argument":
        return ConfigError(exc.message, key=exc.key, source="argument")
    if text is not None:
        where = found.get(exc.key) if found is not None else locate(text, exc.key)
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

    Precedence, highest first: ``overrides``, environment (``SFUMATO_*`` then ``OTEL_*``), the
    file, defaults. Without a path the file is found as :func:`find_config` says; with none,
    settings come from the environment and defaults. A file without a ``[telemetry]`` table
    gives ``enabled = False``, unless a table there looks like a misspelt or misplaced one
    (``[telemetri]``, ``[tool.sfumato]``): that is an error. Raises ConfigError.
    """
    return load_config(path, env=env, resolve_plugins=resolve_plugins, **overrides).settings


def load_config(
    path: str | os.PathLike[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    resolve_plugins: bool = True,
    **overrides: Any,
) -> LoadedConfig:
    """As :func:`load_settings`, with the resolved plan and where everything came from."""
    environ = os.environ if env is None else env
    file = find_config(path, environ)
    if file is None:
        return config_from_text(
            None, None, env=environ, resolve_plugins=resolve_plugins, **overrides
        )
    doc, text = read_document(file)
    return config_from_document(
        doc, text, file, env=environ, resolve_plugins=resolve_plugins, **overrides
    )


def settings_from_text(
    text: str | None,
    path: str | os.PathLike[str] | None,
    *,
    env: Mapping[str, str],
    resolve_plugins: bool = True,
    **overrides: Any,
) -> Settings:
    """As :func:`load_settings`, for TOML text not (yet) on disk; errors name ``path``.

    ``sfumato set`` and ``sfumato init`` validate the document they are about to write this
    way, so nothing is written when it is invalid.
    """
    return config_from_text(
        text, path, env=env, resolve_plugins=resolve_plugins, **overrides
    ).settings


def config_from_text(
    text: str | None,
    path: str | os.PathLike[str] | None,
    *,
    env: Mapping[str, str],
    resolve_plugins: bool = True,
    **overrides: Any,
) -> LoadedConfig:
    """As :func:`settings_from_text`, with the resolved plan (see :class:`LoadedConfig`)."""
    file = Path(path) if path is not None else None
    doc = parse_document(text, file) if text is not None else None
    return config_from_document(
        doc, text, file, env=env, resolve_plugins=resolve_plugins, **overrides
    )


def config_from_document(
    doc: tomlkit.TOMLDocument | None,
    text: str | None,
    file: Path | None,
    *,
    env: Mapping[str, str],
    resolve_plugins: bool = True,
    **overrides: Any,
) -> LoadedConfig:
    raw: dict[str, Any] = {}
    sources: dict[str, str] = {}
    templates: dict[str, str] = {}
    if doc is not None and text is not None:
        if TABLE not in doc:
            _no_lookalike(doc, text, file)
            raw = {"enabled": False}
            sources["enabled"] = "file (no [telemetry] table)"
        else:
            written = _table(doc, text, file)
            raw = interpolate_located(written, env, text, file)
            templates = _substituted(written, raw, "")
            for leaf in _leaves(raw, TABLE):
                sources[leaf.removeprefix(f"{TABLE}.")] = "file"
    for override in env_overrides(env):
        _apply(
            raw, sources, override.path, override.value, override.merge, f"env:{override.variable}"
        )
    for name, value in overrides.items():
        if value is None:
            continue
        _apply(raw, sources, (name,), value, False, "argument")
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        error = config_error(exc, TABLE, Settings, templates=templates)
        raise _locate_error(error, text, file, sources) from None
    settings._sources = sources
    settings._templates = templates
    settings._path = str(file) if file is not None else None
    environ = None if env is os.environ else env
    settings._environ = environ
    plan: Plan | None = None
    if resolve_plugins and settings.enabled:
        try:
            plan = resolve(settings)
            check_plan(plan)
        except ConfigError as exc:
            raise _locate_error(exc, text, file, sources) from None
    return LoadedConfig(settings, plan, sources, file, environ)


def _substituted(written: Any, value: Any, key: str) -> dict[str, str]:
    """Dotted key -> its text in the file, for each string that ``${VAR}`` substitution
    changed: such values are shown as that text, never as what the environment gave."""
    if isinstance(written, str):
        return {key: written} if written != value else {}
    found: dict[str, str] = {}
    if isinstance(written, dict) and isinstance(value, dict):
        for k, item in written.items():
            found.update(_substituted(item, value.get(k), f"{key}.{k}" if key else str(k)))
    elif isinstance(written, list) and isinstance(value, list):
        for i, (item, new) in enumerate(zip(written, value, strict=False)):
            found.update(_substituted(item, new, f"{key}[{i}]"))
    return found


_TYPO_RATIO = 0.85


def _lookalikes(value: Any, prefix: str, depth: int = 0) -> list[str]:
    """Dotted names of tables that look meant for sfumato: a name close to ``telemetry`` at
    any level, or one named ``sfumato`` (``[tool.sfumato]``)."""
    found: list[str] = []
    if not isinstance(value, dict) or depth > 3:
        return found
    for key, child in value.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(child, dict):
            lowered = str(key).lower()
            # Close enough to be a typo (telemetri, telemtry), not another word (geometry).
            close = SequenceMatcher(None, lowered, TABLE).ratio() >= _TYPO_RATIO
            if close or lowered == "sfumato":
                found.append(name)
                continue
            found += _lookalikes(child, name, depth + 1)
    return found


def _no_lookalike(doc: tomlkit.TOMLDocument, text: str, file: Path | None) -> None:
    """A file without ``[telemetry]`` is an app's file with telemetry off, unless a table in
    it was plainly meant for sfumato: then it is an error, never a silent "disabled"."""
    found = _lookalikes(doc.unwrap(), "")[:MAX_PROBLEMS]
    if not found:
        return
    places = locate_all(text, found)
    problems = []
    for name in found:
        where = places.get(name)
        problems.append(
            ConfigError(
                f"sfumato reads the top-level [{TABLE}] table, and this file has none; "
                f"did you mean [{TABLE}] instead of [{name}]?",
                path=file,
                line=where[0] if where else None,
                column=where[1] if where else None,
                key=name,
            )
        )
    raise ConfigError.of(problems)


def _table(doc: tomlkit.TOMLDocument, text: str, file: Path | None) -> dict[str, Any]:
    """The ``[telemetry]`` table as plain data, or a ConfigError when it is not a table."""
    table = doc[TABLE]
    value = table.unwrap() if hasattr(table, "unwrap") else table
    if not isinstance(value, dict):
        where = locate(text, TABLE)
        shown = "an array of tables ([[telemetry]])" if isinstance(value, list) else a_type(value)
        raise ConfigError(
            f"expected a table ([{TABLE}]), got {shown}",
            path=file,
            line=where[0] if where else None,
            column=where[1] if where else None,
            key=TABLE,
        )
    return value


def _apply(
    raw: dict[str, Any],
    sources: dict[str, str],
    path: tuple[str, ...],
    value: Any,
    merge: bool,
    origin: str,
) -> None:
    """Set one override and record where each leaf it sets came from."""
    key = ".".join(path)
    if not merge:
        # A replaced table's old leaves are gone: forget where they came from.
        for known in [k for k in sources if k.startswith(f"{key}.")]:
            del sources[known]
    _set(raw, path, value, merge)
    sources[key] = origin
    if isinstance(value, dict):
        for leaf in _leaves(value, key):
            sources[leaf] = origin


def interpolate_located(
    raw: dict[str, Any], env: Mapping[str, str], text: str, file: Path | None
) -> dict[str, Any]:
    try:
        result: dict[str, Any] = interpolate(raw, env, TABLE)
    except ConfigError as exc:
        raise _locate_error(exc, text, file, {}) from None
    return result
