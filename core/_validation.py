"""Turn pydantic's ValidationError into one ConfigError a user can act on."""

from __future__ import annotations

import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from ._errors import ConfigError, did_you_mean

__all__ = ["config_error", "dotted", "validate_model"]

_SECRET_ROOTS = {"headers"}
_BOUNDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


def dotted(prefix: str, loc: Sequence[int | str]) -> str:
    out = prefix
    for part in loc:
        out = f"{out}[{part}]" if isinstance(part, int) else (f"{out}.{part}" if out else part)
    return out


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]


def _fields_at(model: type[BaseModel], loc: Sequence[int | str]) -> list[str]:
    """Field names of the model found at ``loc`` below ``model`` (best effort)."""
    current: list[type[BaseModel]] = [model]
    for part in loc:
        if isinstance(part, int):
            continue
        nxt: list[type[BaseModel]] = []
        for m in current:
            info = m.model_fields.get(str(part))
            if info is not None:
                nxt.extend(_models_in(info.annotation))
        current = nxt
    return sorted({name for m in current for name in m.model_fields})


def _describe(error: Any, model: type[BaseModel] | None) -> str:
    kind = error["type"]
    loc = error["loc"]
    secret = bool(loc) and loc[0] in _SECRET_ROOTS
    if kind == "extra_forbidden":
        name = str(loc[-1])
        allowed = _fields_at(model, loc[:-1]) if model is not None else []
        hint = did_you_mean(name, allowed)
        listing = f" (allowed: {', '.join(allowed)})" if allowed and not hint else ""
        return f"unknown key '{name}'{hint}{listing}"
    if kind == "missing":
        return "required key is missing"
    message: str = error["msg"]
    ctx = error.get("ctx") or {}
    bound = next(((op, ctx[k]) for k, op in _BOUNDS.items() if k in ctx), None)
    if bound is not None:
        message = f"expected a value {bound[0]} {bound[1]}"
    elif message.startswith("Input should be "):
        message = "expected " + message[len("Input should be ") :]
    elif message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    else:
        message = message[0].lower() + message[1:]
    if not secret and "input" in error and kind not in ("model_type", "dict_type"):
        message += f", got {error['input']!r}"
    elif kind in ("model_type", "dict_type"):
        message = f"expected a table, got {type(error['input']).__name__}"
    return message


def config_error(
    exc: ValidationError, prefix: str, model: type[BaseModel] | None = None
) -> ConfigError:
    errors = exc.errors(include_url=False)
    first = errors[0]
    message = _describe(first, model)
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return ConfigError(message, key=dotted(prefix, first["loc"]))


M = typing.TypeVar("M", bound=BaseModel)


def validate_model(model: type[M], data: Any, prefix: str) -> M:
    """``model.model_validate(data)`` with errors as ConfigError at ``prefix``."""
    if not isinstance(data, dict):
        raise ConfigError(f"expected a table, got {type(data).__name__}", key=prefix)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise config_error(exc, prefix, model) from None
