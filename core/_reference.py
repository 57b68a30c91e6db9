"""The configuration reference (docs/configuration.md), generated from the pydantic models.

Every key of :class:`sfumato.settings.Settings` and its sub-models, and every option of
sfumato's own backend, exporter and sampler plugins (their ``Options`` models), with its type,
default, allowed values, description and environment variable. ``sfumato reference`` prints
it; ``sfumato reference --output docs/configuration.md`` rewrites the committed page, and a
test fails when the page differs from what this module produces.
"""

from __future__ import annotations

import inspect
import re
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from importlib_metadata import entry_points
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from . import _environment
from ._environment import PREFIX, env_overrides
from .plugin import NoOptions, SamplerSpec
from .settings import Settings

__all__ = ["OTHER_VARIABLES", "otel_variables", "render"]

REGENERATE = "sfumato reference --output docs/configuration.md"

# The SFUMATO_* variables that are not settings keys, and what each does.
OTHER_VARIABLES: dict[str, str] = {
    "SFUMATO_CONFIG": "The config file when none is given to `configure()` or a command "
    "(else `./sfumato.toml` when it exists).",
    "SFUMATO_DISABLE_PLUGINS": "Comma-separated plugin names (or `kind:name`) not to load; "
    "replaces `plugins.disable`.",
    "SFUMATO_DEBUG": "`1`: the CLI prints the traceback of an unexpected failure.",
    "SFUMATO_STRICT": "`1`: plugin faults are errors (for CI): a hook-only plugin that fails "
    "to import or a raising hook fails `configure()`, and a sampler's or span processor's "
    "exception reaches the caller. See docs/reliability.md.",
    "SFUMATO_OTEL_FALLBACK": "`1`: use the OpenTelemetry SDK's own span and metric path "
    "instead of sfumato's faster one, as when the installed SDK differs from the shape the "
    "fast path was written for (read at import). See docs/internals.md.",
}

_KINDS = (
    ("backend", "sfumato.backends", "Backends", "[telemetry.backend_options]"),
    ("exporter", "sfumato.exporters", "Exporters", "[[telemetry.exporters]]"),
    ("sampler", "sfumato.samplers", "Samplers", "[telemetry.sampler]"),
)


@dataclass(frozen=True)
class Row:
    key: str
    type: str
    default: str
    env: str
    description: str


# -- types and defaults ----------------------------------------------------------------------


def _constraints(metadata: list[Any]) -> str:
    parts = []
    for item in metadata:
        for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            value = getattr(item, attr, None)
            if value is not None:
                parts.append(f"{sign} {_number(value)}")
        if getattr(item, "min_length", None) == 1:
            parts.append("non-empty")
        elif getattr(item, "min_length", None):
            parts.append(f"at least {item.min_length} long")
        if getattr(item, "pattern", None):
            parts.append(f"matching `{item.pattern}`")
    return ", ".join(parts)


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:_}".replace("_", " ") if isinstance(value, int) else str(value)


def _type(annotation: Any) -> str:
    """A TOML-flavoured name for an annotation: `integer (≥ 1)`, `"grpc" | "gzip"`, ..."""
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Annotated:
        inner, *meta = args
        extra: list[Any] = []
        for item in meta:
            extra.extend(getattr(item, "metadata", [item]))
        limits = _constraints(extra)
        return f"{_type(inner)} ({limits})" if limits else _type(inner)
    if origin is Literal:
        return " | ".join(f"`{_toml(a)}`" for a in args)
    if origin in (Union, types.UnionType):
        kept = [a for a in args if a is not type(None)]
        return " or ".join(_type(a) for a in kept)
    if origin is list:
        return f"array of {_type(args[0])}" if args else "array"
    if origin is dict:
        return f"table of {_type(args[1])}" if args else "table"
    if annotation is Any:
        return "any"
    if annotation is bool:
        return "boolean"
    if annotation is int:
        return "integer"
    if annotation is float:
        return "number"
    if annotation is str:
        return "string"
    if annotation is SecretStr:
        return "string (secret)"
    if inspect.isclass(annotation) and issubclass(annotation, SamplerSpec):
        return "sampler table"
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return "table"
    return getattr(annotation, "__name__", str(annotation))


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, BaseModel):
        return _toml(value.model_dump(exclude_defaults=True, exclude_none=True) | _type_of(value))
    return str(value)


def _type_of(model: BaseModel) -> dict[str, Any]:
    return {"type": model.type} if isinstance(model, SamplerSpec) else {}


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "required"
    else:
        value = field.default
    if value is None:
        return "unset"
    return f"`{_toml(value)}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


# -- environment variables --------------------------------------------------------------------


def otel_variables() -> dict[str, str]:
    """Each ``OTEL_*`` variable sfumato reads, and the dotted key it sets.

    Read from :mod:`sfumato._environment` itself: each name is tried with a value it accepts
    and the key it overrides is recorded, so this list follows that module.
    """
    names = sorted(set(re.findall(r'"(OTEL_[A-Z_]+)"', inspect.getsource(_environment))))
    found: dict[str, str] = {}
    for name in names:
        for value in ("true", "k=v"):
            try:
                overrides = env_overrides({name: value})
            except ValueError:
                continue
            if overrides:
                found[name] = ".".join(overrides[0].path)
                break
    return found


def _env(path: tuple[str, ...], annotation: Any) -> str:
    """The variables that set a key, or '' when the environment cannot set it."""
    if any(part.startswith(("<", "[")) for part in path):
        return ""
    name = path[-1]
    if not _scalar(annotation) and name not in _environment._LISTS | _environment._MAPS:
        return ""
    variables = [f"`{PREFIX}{'__'.join(p.upper() for p in path)}`"]
    key = ".".join(path)
    variables += [f"`{v}`" for v, k in otel_variables().items() if k == key]
    return ", ".join(variables)


def _scalar(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _scalar(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return all(_scalar(a) for a in get_args(annotation) if a is not type(None))
    if origin is Literal:
        return True
    return annotation in (bool, int, float, str, SecretStr)


# -- models to rows ---------------------------------------------------------------------------


def _models_in(annotation: Any) -> Iterator[tuple[str, type[BaseModel]]]:
    """Nested models of a field, with how they are written: '' (table), '[]' (array), '<>'
    (table of tables keyed by name)."""
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin is Annotated:
        yield from _models_in(args[0])
    elif origin in (Union, types.UnionType):
        for a in args:
            yield from _models_in(a)
    elif origin is list and args:
        for how, model in _models_in(args[0]):
            yield "[]" + how, model
    elif origin is dict and args:
        for how, model in _models_in(args[1]):
            yield "<>" + how, model
    elif (
        inspect.isclass(annotation)
        and issubclass(annotation, BaseModel)
        and not issubclass(annotation, SamplerSpec)
    ):
        yield "", annotation


def _rows(
    model: type[BaseModel], path: tuple[str, ...], env_path: tuple[str, ...] | None
) -> tuple[list[Row], list[tuple[tuple[str, ...], str, type[BaseModel], FieldInfo]]]:
    """The scalar rows of one table, and the nested tables to document after it."""
    rows: list[Row] = []
    nested = []
    for field_name, field in model.model_fields.items():
        name = field.alias or field_name  # what the TOML says
        annotation = field.annotation
        models = list(_models_in(annotation))
        if models and all(how in ("", "[]", "<>") for how, _ in models):
            how, sub = models[0]
            nested.append(((*path, name), how, sub, field))
            continue
        env = _env((*env_path, name), annotation) if env_path is not None else ""
        rows.append(
            Row(
                key=f"`{name}`",
                type=_typed(annotation, field.metadata),
                default=_default(field),
                env=env,
                description=field.description or "",
            )
        )
    return rows, nested


def _typed(annotation: Any, metadata: list[Any]) -> str:
    """The type of a field whose constraints pydantic moved from its annotation into
    ``FieldInfo.metadata``."""
    limits = _constraints(metadata)
    return f"{_type(annotation)} ({limits})" if limits else _type(annotation)


def _table(rows: list[Row], env: bool = True) -> list[str]:
    if not rows:
        return ["No options.", ""]
    if env:
        out = ["| key | type | default | environment | description |", "|---|---|---|---|---|"]
        out += [
            f"| {r.key} | {_cell(r.type)} | {_cell(r.default)} | {r.env or '—'} | "
            f"{_cell(r.description)} |"
            for r in rows
        ]
    else:
        out = ["| key | type | default | description |", "|---|---|---|---|"]
        out += [
            f"| {r.key} | {_cell(r.type)} | {_cell(r.default)} | {_cell(r.description)} |"
            for r in rows
        ]
    return [*out, ""]


def _doc(model: type) -> str:
    """The first paragraph of a class's own docstring, reST literals made Markdown ones."""
    if "__doc__" not in vars(model) or not model.__doc__ or model is NoOptions:
        return ""
    first = inspect.cleandoc(model.__doc__).split("\n\n")[0]
    return " ".join(first.split()).replace("``", "`")


def _section(
    level: int,
    title: str,
    model: type[BaseModel],
    path: tuple[str, ...],
    env_path: tuple[str, ...] | None,
    intro: str = "",
    ancestors: tuple[type[BaseModel], ...] = (),
) -> list[str]:
    out = [f"{'#' * level} `{title}`", ""]
    if intro:
        out += [intro, ""]
    elif doc := _doc(model):
        out += [doc, ""]
    rows, nested = _rows(model, path, env_path)
    out += _table(rows, env=env_path is not None)
    for sub_path, how, sub, field in nested:
        dotted = ".".join(sub_path)
        if how == "":
            sub_env = (*env_path, sub_path[-1]) if env_path is not None else None
            sub_title = f"[{dotted}]"
        elif how == "[]":
            sub_title, sub_env = f"[[{dotted}]]", None
        else:
            sub_title, sub_env = f"[{dotted}.<name>]", None
        if sub is model or sub in ancestors:  # a recursive model: its table is above
            out += [f"`{sub_title}`: {field.description or ''} The table of `{title}`.", ""]
            continue
        out += _section(
            min(level + 1, 4),
            sub_title,
            sub,
            sub_path,
            sub_env,
            intro=field.description or "",
            ancestors=(*ancestors, model),
        )
    return out


# -- plugins ------------------------------------------------------------------------------------


def _builtin(group: str) -> list[tuple[str, Any]]:
    """sfumato's own plugins of one entry-point group, by name (third parties' are left out
    so the page does not depend on what else is installed)."""
    found = []
    for ep in entry_points(group=group):
        if ep.dist is None or ep.dist.name != "sfumato":
            continue
        found.append((ep.name, ep.load()))
    return sorted(found, key=lambda item: item[0])


def _plugin_sections(kind: str, group: str, title: str, where: str) -> list[str]:
    out = [f"## {title}: `{where}`", ""]
    path: tuple[str, ...]
    env_root: tuple[str, ...] | None
    if kind == "backend":
        out += [
            '`backend = "NAME"` picks one; its options go in `[telemetry.backend_options]`, '
            "validated by the backend's own model. The environment sets them as "
            "`SFUMATO_BACKEND_OPTIONS__<OPTION>`.",
            "",
        ]
        path, env_root = ("telemetry", "backend_options"), ("backend_options",)
    elif kind == "exporter":
        out += [
            "Each `[[telemetry.exporters]]` entry is `type`, optionally `signals`, and the "
            "options of the exporter named by `type` (see "
            "[`[[telemetry.exporters]]`](#telemetryexporters) above).",
            "",
        ]
        path, env_root = ("telemetry", "exporters"), None
    else:
        out += [
            "`[telemetry.sampler]` is `type` plus that sampler's options; a nested sampler (a "
            "*sampler table*) is written the same way. The environment sets the root "
            "sampler's options as `SFUMATO_SAMPLER__<OPTION>`.",
            "",
        ]
        path, env_root = ("telemetry", "sampler"), ("sampler",)
    for name, cls in _builtin(group):
        options = getattr(cls, "Options", None)
        if options is None:
            continue
        section = _section(3, name, options, path, env_root)
        lead = [f'`{"backend" if kind == "backend" else "type"} = "{name}"`', ""]
        if doc := _doc(cls):
            lead += [doc, ""]
        out += section[:2] + lead + section[2:]
    return out


# -- the page -----------------------------------------------------------------------------------


def render() -> str:
    """The whole reference page, as Markdown."""
    out = [
        "# Configuration reference",
        "",
        f"<!-- Generated from the pydantic models by `{REGENERATE}`; do not edit. -->",
        "",
        "Every key sfumato reads from the `[telemetry]` table of a TOML file, generated from",
        "the models that validate it. A value comes from, highest first: keyword arguments to",
        "`configure()`, `SFUMATO_*` environment variables, `OTEL_*` environment variables, the",
        "file, the default. `sfumato show` prints where each value came from.",
        "",
        "The file: the path given to `configure()` or a command, else `$SFUMATO_CONFIG`, else",
        "`sfumato.toml` in the current directory when it exists (the file `sfumato init`",
        "writes); with none, settings come from the environment and the defaults. A file",
        "without a `[telemetry]` table turns telemetry off, unless a table in it looks meant",
        "for sfumato (`[telemetri]`, `[tool.sfumato]`): that is an error. Every problem of a",
        "config is reported, one line each, with its file:line:column and key.",
        "",
        "Environment variables: `SFUMATO_<KEY>` sets a top-level key and",
        "`SFUMATO_<TABLE>__<KEY>` a key of a sub-table (`SFUMATO_METRICS__ENABLED=false`).",
        "Values are read as the key's type (`512`, `false`). Arrays marked in the table take",
        "comma-separated items (`SFUMATO_PROPAGATORS=tracecontext`) and tables of strings take",
        "`key=value` pairs (`SFUMATO_RESOURCE=team=bots,region=eu`), as the OpenTelemetry",
        "specification writes them. An empty variable counts as unset. Keys marked — cannot be",
        "set from the environment. String values in the file may use `${VAR}` and",
        "`${VAR:-default}`.",
        "",
    ]
    out += _section(2, "[telemetry]", Settings, ("telemetry",), ())
    out += ["## Standard `OTEL_*` variables", ""]
    out += ["| variable | sets |", "|---|---|"]
    out += [f"| `{var}` | `{key}` |" for var, key in otel_variables().items()]
    out += [
        "",
        "`OTEL_SDK_DISABLED` counts only when it is `true`. Headers and resource attributes",
        "from these variables are merged into the file's tables; `SFUMATO_*` variables win.",
        "",
        "## Other environment variables",
        "",
        "| variable | meaning |",
        "|---|---|",
    ]
    missing = _environment._NOT_KEYS - set(OTHER_VARIABLES)
    if missing:  # a new variable in _environment must be described here
        raise RuntimeError(f"describe {sorted(missing)} in sfumato._reference.OTHER_VARIABLES")
    out += [f"| `{var}` | {text} |" for var, text in OTHER_VARIABLES.items()]
    out.append("")
    for kind, group, title, where in _KINDS:
        out += _plugin_sections(kind, group, title, where)
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out) + "\n"
