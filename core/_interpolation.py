"""``${VAR}``, ``${VAR:-default}`` and ``$$`` substitution into parsed string values.

Substitution runs on values the TOML parser has already produced, never on raw text, so a
variable's content can never add keys, tables or quotes to the document.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ._errors import ConfigError

__all__ = ["interpolate"]

# ``$$``; ``${NAME}`` or ``${NAME:-default}`` (a default may hold ``$$`` but no other ``$``);
# anything else starting ``${`` is malformed.
_PATTERN = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?::-((?:[^}$]|\$\$)*))?\}|\{[^}]*\}?)")


def _substitute(text: str, env: Mapping[str, str], key: str) -> str:
    if "$" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        whole = match.group(0)
        if whole == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name is None:
            raise ConfigError(
                f"malformed substitution {whole!r}: expected ${{NAME}}, ${{NAME:-default}} "
                "or $$ for a literal dollar",
                key=key,
            )
        value = env.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                raise ConfigError(
                    f"environment variable {name} is not set and ${{{name}}} has no default "
                    f"(write ${{{name}:-value}} to give one)",
                    key=key,
                )
            return default.replace("$$", "$")
        return value

    return _PATTERN.sub(replace, text)


# What the substituted strings of one config may add up to: a small file cannot become a
# huge one through its variables (``"${A}${A}..."``). The same bound as the file's own size.
MAX_EXPANDED_BYTES = 4 * 1024 * 1024


def interpolate(value: Any, env: Mapping[str, str], key: str = "telemetry") -> Any:
    """A copy of ``value`` with every string substituted; ``key`` is its dotted path."""
    budget = [MAX_EXPANDED_BYTES]
    return _interpolate(value, env, key, budget)


def _interpolate(value: Any, env: Mapping[str, str], key: str, budget: list[int]) -> Any:
    if isinstance(value, str):
        result = _substitute(value, env, key)
        if result is not value:
            budget[0] -= len(result)
            if budget[0] < 0:
                raise ConfigError(
                    f"with its variables substituted the config grows to more than "
                    f"{MAX_EXPANDED_BYTES // (1024 * 1024)} MiB here",
                    key=key,
                )
        return result
    if isinstance(value, dict):
        return {k: _interpolate(v, env, f"{key}.{k}", budget) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env, f"{key}[{i}]", budget) for i, v in enumerate(value)]
    return value
