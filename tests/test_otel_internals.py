"""OpenTelemetry's internals are used in ``sfumato._otel`` alone, and its shape check sees
when the installed SDK differs from what they rely on."""

from __future__ import annotations

import ast
import pathlib
from collections.abc import Iterator
from typing import Any

import opentelemetry
import pytest
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk import trace as sdk_trace
from sfumato import _otel

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("core", "samplers", "plugins", "backends")
THE_MODULE = ROOT / "core" / "_otel.py"

# Private names of OpenTelemetry objects that sfumato relies on: never written outside the
# one module, even where a class of sfumato's own has a field of the same name.
ALWAYS = (
    _otel.SPAN_FIELDS
    | _otel.ATTRIBUTES_FIELDS
    | set(_otel.TRACER_FIELDS)
    | set(_otel.PROVIDER_FIELDS)
    | {
        "_on_ending",
        "_new_links",
        "_span_processors",
        "_reader_storages",
        "_measurement_consumer",
        "_meter_config",
        "_client",
        "_initialize_channel_and_stub",
        "_endpoint",
        "_exporter",
        "_shutdown_event",
        "_preferred_temporality",
        "_preferred_aggregation",
        "_TRACER_PROVIDER",
        "_METER_PROVIDER",
        "_LOGGER_PROVIDER",
        "_RUNTIME_CONTEXT",
        "_SPAN_KEY",
        "_BAGGAGE_KEY",
        "_SUPPRESS_INSTRUMENTATION_KEY",
    }
) - {"_lock", "maxlen", "max_value_len"}  # a lock field is every class's; the rest are public


# Contrib instrumentations and their helpers: installed beside sfumato, never a base class
# of its (a method of sfumato's that shares a private name with one of theirs overrides
# nothing); reading their private fields is still caught.
CONTRIB = ("instrumentation", "util")


def _otel_private_names(skip: tuple[str, ...] = ()) -> set[str]:
    """Every single-underscore name the installed opentelemetry packages define (but those
    under the top-level packages ``skip``)."""
    names: set[str] = set()
    for root in opentelemetry.__path__:
        for path in pathlib.Path(root).rglob("*.py"):
            if path.relative_to(root).parts[0] in skip:
                continue
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except (SyntaxError, UnicodeDecodeError):
                continue
            for node in ast.walk(tree):
                name = None
                if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                    name = node.attr
                elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    name = node.name
                elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    name = node.id
                if name and name[:1] == "_" and name[:2] != "__":
                    names.add(name)
    return names


def _sources() -> Iterator[tuple[pathlib.Path, ast.Module]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path != THE_MODULE:
                yield path, ast.parse(path.read_text(encoding="utf-8"))


def _own_names(trees: list[ast.Module]) -> set[str]:
    """Private names sfumato's own code defines for its own objects (outside ``_otel``)."""
    names: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif (
                isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets)
                and isinstance(node.value, (ast.Tuple, ast.List))
            ):
                names.update(e.value for e in node.value.elts if isinstance(e, ast.Constant))
    return names


def _otel_bases(tree: ast.Module) -> set[str]:
    """Local names bound to OpenTelemetry objects by the module's imports."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("opentelemetry"):
            names.update(a.asname or a.name for a in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("opentelemetry"):
                    names.add((alias.asname or alias.name).split(".")[0])
    return names


def _root_name(node: ast.expr) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.value if not isinstance(node, ast.Call) else node.func
    return node.id if isinstance(node, ast.Name) else None


def _private_module(module: str) -> bool:
    return any(part.startswith("_") for part in module.split("."))


def _violations() -> list[str]:
    sources = list(_sources())
    otel_names = _otel_private_names()
    overridable = _otel_private_names(skip=CONTRIB)
    own = _own_names([tree for _, tree in sources])
    banned = ALWAYS | (otel_names - own)
    found: list[str] = []
    for path, tree in sources:
        where = path.relative_to(ROOT)
        bases = _otel_bases(tree)
        for node in ast.walk(tree):
            line = getattr(node, "lineno", 0)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("opentelemetry"):
                if _private_module(node.module or ""):
                    found.append(f"{where}:{line}: imports from {node.module}")
                for alias in node.names:
                    if alias.name[:1] == "_":
                        found.append(f"{where}:{line}: imports {node.module}.{alias.name}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("opentelemetry") and _private_module(alias.name):
                        found.append(f"{where}:{line}: imports {alias.name}")
            elif isinstance(node, ast.Attribute) and node.attr in banned:
                found.append(f"{where}:{line}: .{node.attr}")
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and node.args[1].value in banned
            ):
                found.append(f"{where}:{line}: {node.func.id}(..., {node.args[1].value!r})")
            elif isinstance(node, ast.ClassDef) and any(_root_name(b) in bases for b in node.bases):
                for item in node.body:
                    if (
                        isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
                        and item.name[:1] == "_"
                        and item.name[:2] != "__"
                        and item.name in overridable
                    ):
                        found.append(f"{where}:{item.lineno}: overrides {item.name}")
    return found


def test_no_module_but_otel_uses_opentelemetry_internals() -> None:
    assert _violations() == []


def test_the_check_finds_each_kind_of_use(tmp_path: pathlib.Path) -> None:
    """The walk above is not vacuous: a module with each kind of use is caught."""
    tree = ast.parse(
        "from opentelemetry.trace.propagation import _SPAN_KEY\n"
        "from opentelemetry.sdk._logs import LoggerProvider\n"
        "from opentelemetry.sdk.trace import SpanProcessor\n"
        "x = span._context\n"
        "y = getattr(span, '_parent', None)\n"
        "class P(SpanProcessor):\n"
        "    def _on_ending(self, span): pass\n"
    )
    otel_names = _otel_private_names()
    assert {"_context", "_parent", "_on_ending", "_SPAN_KEY"} <= otel_names
    assert {"_context", "_parent"} <= ALWAYS
    kinds = set()
    bases = _otel_bases(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if _private_module(node.module or ""):
                kinds.add("module")
            if any(a.name[:1] == "_" for a in node.names):
                kinds.add("name")
        elif isinstance(node, ast.Attribute) and node.attr in ALWAYS:
            kinds.add("attribute")
        elif isinstance(node, ast.Constant) and node.value in ALWAYS:
            kinds.add("string")
        elif isinstance(node, ast.ClassDef) and any(_root_name(b) in bases for b in node.bases):
            kinds.add("override")
    assert kinds == {"module", "name", "attribute", "string", "override"}


@pytest.mark.fast_path
def test_the_installed_sdk_has_the_shape_the_fast_path_relies_on() -> None:
    assert _otel.PROBLEMS == ()
    assert _otel.FAST


def test_shape_check_sees_a_span_field_it_does_not_set() -> None:
    class Changed(sdk_trace.Span):
        @property
        def events(self):  # type: ignore[no-untyped-def]
            return self._event_log  # a field a later SDK might read, never set by sfumato

    problems = _otel.check_shape(span_cls=Changed)
    assert any("_event_log" in p for p in problems), problems


def test_shape_check_sees_an_attributes_field_it_does_not_set() -> None:
    class Changed(BoundedAttributes):
        def __len__(self) -> int:
            return len(self._entries)

    problems = _otel.check_shape(attributes_cls=Changed)
    assert any("_entries" in p for p in problems), problems


def test_shape_check_sees_a_provider_without_its_tracers() -> None:
    class Changed(sdk_trace.TracerProvider):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            del self._tracers

    problems = _otel.check_shape(provider_cls=Changed)
    assert any("_tracers" in p for p in problems), problems
