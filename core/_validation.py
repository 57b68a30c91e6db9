"""Turn pydantic's ValidationError into one ConfigError a user can act on."""

from __future__ import annotations

import datetime
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError

from ._errors import ConfigError, did_you_mean

__all__ = [
    "MAX_PROBLEMS",
    "a_type",
    "config_error",
    "dotted",
    "is_secret_key",
    "toml_type",
    "validate_model",
]

_NO_TEMPLATES: Mapping[str, str] = types.MappingProxyType({})
# More problems than this in one table are counted, not listed.
MAX_PROBLEMS = 50
_BOUNDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
# Key names whose values are treated as secrets even where the model does not say so
# (plugin tables kept as plain data, e.g. backend_options or extra exporter options).
_SECRET_NAMES = {"headers", "authorization", "token", "password", "secret", "api_key", "apikey"}
_SECRET_SUFFIXES = ("_token", "_password", "_secret", "_key")
_TYPE_WORDS: dict[Any, str] = {
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    list: "an array",
    dict: "a table",
}


def dotted(prefix: str, loc: Sequence[int | str]) -> str:
    out = prefix
    for part in loc:
        out = f"{out}[{part}]" if isinstance(part, int) else (f"{out}.{part}" if out else part)
    return out


def toml_type(value: Any) -> str:
    """The TOML name of a parsed value's type, for messages."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, list):
        return "array"
    if isinstance(value, datetime.datetime):
        return "datetime"
    if isinstance(value, datetime.date):
        return "date"
    if isinstance(value, datetime.time):
        return "time"
    return type(value).__name__


def is_secret_key(name: str) -> bool:
    """Whether a key's name marks its value as secret (headers, tokens, passwords)."""
    lowered = name.lower()
    return lowered in _SECRET_NAMES or lowered.endswith(_SECRET_SUFFIXES)


def _strip(annotation: Any) -> Any:
    """``Annotated[X, ...]`` -> X and ``X | None`` -> X."""
    while True:
        if typing.get_origin(annotation) is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
            continue
        if _is_union(annotation):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(members) == 1:
                annotation = members[0]
                continue
        return annotation


def _is_union(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    return origin is typing.Union or origin is types.UnionType


def _annotation_at(model: type[BaseModel], loc: Sequence[int | str]) -> Any:
    """The declared type at ``loc`` below ``model``; None when it cannot be told."""
    annotation: Any = model
    for part in loc:
        annotation = _strip(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            info = annotation.model_fields.get(str(part))
            if info is None:
                return None
            annotation = info.annotation
            continue
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if origin in (list, tuple, set, frozenset) and isinstance(part, int):
            annotation = args[0] if args else Any
        elif origin in (dict, Mapping) and len(args) == 2:
            annotation = args[1]
        else:
            return None
    return _strip(annotation)


def _secret(model: type[BaseModel] | None, loc: Sequence[int | str]) -> bool:
    if any(isinstance(part, str) and is_secret_key(part) for part in loc):
        return True
    if model is None:
        return False
    for end in range(len(loc), 0, -1):
        annotation = _annotation_at(model, loc[:end])
        if annotation is SecretStr:
            return True
        if typing.get_origin(annotation) in (dict, Mapping):
            args = typing.get_args(annotation)
            if len(args) == 2 and _strip(args[1]) is SecretStr:
                return True
    return False


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


def _union_members(model: type[BaseModel] | None, loc: Sequence[int | str]) -> list[Any] | None:
    """The member types when ``loc`` ends in a union member's tag (pydantic adds one)."""
    if model is None or not loc or not isinstance(loc[-1], str):
        return None
    annotation = _annotation_at(model, loc[:-1])
    if not _is_union(annotation):
        return None
    members = [_strip(a) for a in typing.get_args(annotation) if a is not type(None)]
    return members if len(members) > 1 else None


def a_type(value: Any) -> str:
    """``a string``, ``an integer``: the value's TOML type with its article."""
    word = toml_type(value)
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _got(value: Any, secret: bool) -> str:
    # A secret's value is never echoed, only its type.
    if secret or isinstance(value, (dict, list)) or not isinstance(value, (str, int, float)):
        return f", got {a_type(value)}"
    return f", got {value!r}"


def _describe(
    error: Any,
    model: type[BaseModel] | None,
    plugin: bool,
    templates: Mapping[str, str] = _NO_TEMPLATES,
) -> str:
    kind = error["type"]
    loc = error["loc"]
    template = templates.get(dotted("", loc))
    secret = template is not None or _secret(model, loc)
    if kind == "extra_forbidden":
        name = str(loc[-1])
        allowed = _fields_at(model, loc[:-1]) if model is not None else []
        hint = did_you_mean(name, allowed)
        if allowed and not hint:
            return f"unknown key '{name}' (allowed: {', '.join(allowed)})"
        if not allowed and plugin and len(loc) == 1:
            return f"unknown key '{name}': this plugin takes no options"
        return f"unknown key '{name}'{hint}"
    if kind == "missing":
        return "required key is missing"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"expected a table, got {a_type(error.get('input'))}"
    message: str = error["msg"]
    ctx = error.get("ctx") or {}
    bound = next(((op, ctx[k]) for k, op in _BOUNDS.items() if k in ctx), None)
    hint = ""
    if bound is not None:
        message = f"expected a value {bound[0]} {bound[1]}"
    elif kind == "literal_error":
        allowed = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        message = f"expected one of {', '.join(repr(a) for a in allowed)}"
        if isinstance(error.get("input"), str) and not secret:
            hint = did_you_mean(error["input"], allowed)
    elif message.startswith("Input should be "):
        message = "expected " + message[len("Input should be ") :]
    elif message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    else:
        message = message[0].lower() + message[1:]
    if "input" in error:
        message += _got(error["input"], secret)
    if template is not None:
        # A value substituted from the environment is never echoed: say where it came from.
        message += f" (the value of {template})"
    return message + hint


def _problems(
    errors: list[Any], model: type[BaseModel] | None, templates: Mapping[str, str] = _NO_TEMPLATES
) -> list[tuple[tuple[Any, ...], str]]:
    """(loc, message) per problem; a union's per-member errors become one problem."""
    out: list[tuple[tuple[Any, ...], str]] = []
    seen_unions: set[tuple[Any, ...]] = set()
    for error in errors:
        loc = tuple(error["loc"])
        members = _union_members(model, loc)
        if members is not None:
            base = loc[:-1]
            if base in seen_unions:
                continue
            seen_unions.add(base)
            words = [
                _TYPE_WORDS.get(typing.get_origin(m) or m, getattr(m, "__name__", str(m)))
                for m in members
            ]
            message = f"expected {', '.join(words[:-1])} or {words[-1]}"
            template = templates.get(dotted("", base))
            if "input" in error:
                message += _got(error["input"], template is not None or _secret(model, base))
            if template is not None:
                message += f" (the value of {template})"
            out.append((base, message))
            continue
        out.append((loc, _describe(error, model, plugin=False, templates=templates)))
    return out


def config_error(
    exc: ValidationError,
    prefix: str,
    model: type[BaseModel] | None = None,
    *,
    plugin: bool = False,
    templates: Mapping[str, str] = _NO_TEMPLATES,
) -> ConfigError:
    """One ConfigError for the validation error, reporting each of its problems (the first
    ``MAX_PROBLEMS`` of a file that has more, such as a generated or hostile one).

    ``templates`` maps the dotted keys (below ``prefix``) whose values were substituted from
    ``${VAR}`` to their text in the file: those values are never echoed."""
    errors = exc.errors(include_url=False)
    # A union's members add an error each to one problem: read enough errors for the cap.
    problems = _problems(errors[: MAX_PROBLEMS * 4], model, templates)
    single = len(errors) == 1 and errors[0]["type"] == "extra_forbidden"
    if plugin and single and _union_members(model, problems[0][0]) is None:
        problems = [(problems[0][0], _describe(errors[0], model, plugin=True))]
    found = [ConfigError(message, key=dotted(prefix, loc)) for loc, message in problems]
    if len(problems) > MAX_PROBLEMS or len(errors) > MAX_PROBLEMS * 4:
        found = found[:MAX_PROBLEMS]
        found.append(
            ConfigError(
                f"{len(errors)} problems in all under [{prefix}]; the first "
                f"{MAX_PROBLEMS} are shown"
            )
        )
    return ConfigError.of(found)


M = typing.TypeVar("M", bound=BaseModel)


def validate_model(
    model: type[M], data: Any, prefix: str, templates: Mapping[str, str] = _NO_TEMPLATES
) -> M:
    """``model.model_validate(data)`` with errors as ConfigError at ``prefix``; ``templates``
    as for :func:`config_error`, keyed below ``telemetry`` (the settings' own)."""
    if not isinstance(data, dict):
        raise ConfigError(f"expected a table, got {a_type(data)}", key=prefix)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        below = prefix.removeprefix("telemetry.") + "."
        mine = {k[len(below) :]: v for k, v in templates.items() if k.startswith(below)}
        raise config_error(exc, prefix, model, plugin=True, templates=mine) from None
