"""Resolve validated settings against the installed plugins: the build plan.

Everything a config names is looked up and every plugin-owned table is validated here, so
``sfumato validate`` catches what ``configure()`` would, without building any pipeline.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from ._errors import ConfigError
from ._host import Kind, PluginHost, options_model
from ._instrumentations import Instrumentation, plan_instrumentations
from ._stats import Stats
from ._validation import dotted, validate_model
from .plugin import Backend, BuildContext, Exporter, ExporterUse, SamplerPlugin, SamplerSpec
from .settings import SIGNALS, Settings, Signal, _scrubbed

__all__ = ["ExporterNode", "Plan", "SamplerNode", "resolve", "sampler_spec"]


@dataclass
class SamplerNode:
    """One sampler of the resolved tree."""

    name: str
    plugin: SamplerPlugin
    options: BaseModel
    key: str
    children: list[SamplerNode] = field(default_factory=list)

    def describe(self, indent: str = "") -> list[str]:
        """The tree as lines, for ``sfumato show``."""
        opts = {
            k: v
            for k, v in self.options.model_dump(exclude_defaults=False).items()
            if not isinstance(getattr(self.options, k, None), SamplerSpec)
        }
        shown = ", ".join(f"{k}={v!r}" for k, v in opts.items() if not _is_spec_value(v))
        lines = [f"{indent}{self.name}({shown})" if shown else f"{indent}{self.name}"]
        for child in self.children:
            lines.extend(child.describe(indent + "  "))
        return lines


def _is_spec_value(value: Any) -> bool:
    return isinstance(value, dict) and "type" in value


def _redacted(model: BaseModel | None) -> str:
    """A plugin's options model as a repr with no secret in it: plugin models are the
    plugin's own, so their secret-named keys and URL passwords are hidden here."""
    if model is None:
        return "None"
    fields = _scrubbed(model.model_dump())
    return f"{type(model).__name__}({', '.join(f'{k}={v!r}' for k, v in fields.items())})"


@dataclass
class ExporterNode:
    """One exporter the pipeline builds, and the signals it carries."""

    name: str
    plugin: Exporter
    options: BaseModel
    signals: frozenset[Signal]
    key: str
    # What stats() and Telemetry.exporter() call it: its name, with "#2", "#3" ... for a
    # second and third exporter of one type, so that each has its own counters.
    label: str = ""

    def __post_init__(self) -> None:
        self.label = self.label or self.name

    def __repr__(self) -> str:
        return (
            f"ExporterNode(name={self.name!r}, label={self.label!r}, "
            f"options={_redacted(self.options)}, "
            f"signals={sorted(self.signals)!r}, key={self.key!r})"
        )


@dataclass
class Plan:
    settings: Settings
    host: PluginHost
    backend: Backend
    backend_options: BaseModel
    exporters: list[ExporterNode]
    sampler: SamplerNode
    signals: frozenset[Signal]
    notices: list[str]
    instrumentations: list[Instrumentation] = field(default_factory=list)

    def __repr__(self) -> str:
        return (
            f"Plan(settings={self.settings!r}, backend={self.settings.backend!r}, "
            f"backend_options={_redacted(self.backend_options)}, exporters={self.exporters!r}, "
            f"sampler={self.sampler.describe()!r}, signals={sorted(self.signals)!r})"
        )


# Without a sampler table or sampling_rate: keep everything, and let the tail know the error
# traces, so that under export overload they outrank the rest (docs/reliability.md).
DEFAULT_SAMPLER: dict[str, Any] = {
    "type": "error-always",
    "otherwise": {"type": "parent_based", "root": {"type": "always_on"}},
}


def sampler_spec(settings: Settings) -> dict[str, Any]:
    """The sampler tree the settings ask for; ``sampling_rate`` is a shorthand."""
    if settings.sampler is not None:
        if settings.sampling_rate is not None:
            raise ConfigError(
                "give either sampling_rate (shorthand) or a [telemetry.sampler] table, not both",
                key="telemetry.sampling_rate",
            )
        return settings.sampler
    if settings.sampling_rate is not None:
        return {"type": "parent_based", "root": {"type": "ratio", "rate": settings.sampling_rate}}
    return dict(DEFAULT_SAMPLER)


def _walk_specs(value: Any, key: str) -> list[tuple[SamplerSpec, str]]:
    """Every SamplerSpec inside an options model, with its dotted key."""
    if isinstance(value, SamplerSpec):
        return [(value, key)]
    found: list[tuple[SamplerSpec, str]] = []
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            found += _walk_specs(getattr(value, name), f"{key}.{name}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found += _walk_specs(item, f"{key}[{i}]")
    elif isinstance(value, dict):
        for k, item in value.items():
            found += _walk_specs(item, f"{key}.{k}")
    return found


def _resolve_sampler(
    host: PluginHost,
    spec: dict[str, Any],
    key: str,
    templates: Mapping[str, str],
    depth: int = 0,
) -> SamplerNode:
    if depth > 32:
        raise ConfigError("sampler tree nests deeper than 32 levels", key=key)
    name = spec.get("type")
    if not isinstance(name, str):
        raise ConfigError("a sampler table needs a 'type' string", key=key)
    plugin = host.load("sampler", name, f"{key}.type")
    options = validate_model(
        options_model(plugin), {k: v for k, v in spec.items() if k != "type"}, key, templates
    )
    node = SamplerNode(name, plugin, options, key)
    for nested, nested_key in _walk_specs(options, key):
        nested._node = _resolve_sampler(
            host, {"type": nested.type, **nested.options}, nested_key, templates, depth + 1
        )
        node.children.append(nested._node)
    return node


def _plugin_options(
    host: PluginHost,
    kind: Kind,
    name: str,
    data: dict[str, Any],
    key: str,
    templates: Mapping[str, str],
) -> tuple[Any, BaseModel]:
    plugin = host.load(kind, name, key if kind == "backend" else f"{key}.type")
    return plugin, validate_model(options_model(plugin), data, key, templates)


def resolve(settings: Settings, host: PluginHost | None = None) -> Plan:
    """Look up every plugin the settings name and validate its options."""
    if host is None:
        host = PluginHost(
            disabled=settings.plugins.disable,
            allow_import_paths=settings.plugins.allow_import_paths,
        )
    context = BuildContext(settings=settings, stats=Stats())
    backend = host.load("backend", settings.backend, "telemetry.backend")
    templates = settings._templates  # values from ${VAR}: never echoed in an error
    backend_options = validate_model(
        options_model(backend), settings.backend_options, "telemetry.backend_options", templates
    )
    if settings.backend_options and backend_options is None:
        raise ConfigError("this backend takes no options", key="telemetry.backend_options")

    wanted: set[Signal] = {"traces"}
    if settings.metrics.enabled:
        wanted.add("metrics")
    if settings.logs.enabled:
        wanted.add("logs")
    backend_signals = frozenset(getattr(backend, "signals", SIGNALS))
    missing = sorted(wanted - backend_signals, key=SIGNALS.index)
    if missing and backend_signals:
        takes = ", ".join(sorted(backend_signals, key=SIGNALS.index))
        context.notice(
            f"backend '{settings.backend}' takes {takes} only: "
            f"{' and '.join(missing)} switched off for it"
        )

    uses: list[tuple[ExporterUse, str]] = []
    try:
        planned = backend.plan(settings, backend_options, context)
    except ConfigError as exc:
        raise exc.located(key="telemetry.backend") from None
    except Exception as exc:
        raise ConfigError(
            f"backend '{settings.backend}' ({host.origin_of('backend', settings.backend)}) "
            f"failed to plan its exporters: {type(exc).__name__}: {exc}",
            key="telemetry.backend",
        ) from None
    for use in planned:
        uses.append(
            (
                ExporterUse(use.exporter, use.signals & backend_signals & wanted, use.options),
                "telemetry.backend",
            )
        )
    if settings.export_console:
        uses.append((ExporterUse("console", frozenset(wanted), {}), "telemetry.export_console"))

    exporters: list[ExporterNode] = []
    for use, key in uses:
        plugin, options = _plugin_options(host, "exporter", use.exporter, use.options, key, {})
        signals = use.signals & frozenset(getattr(plugin, "signals", SIGNALS))
        if signals:
            exporters.append(ExporterNode(use.exporter, plugin, options, frozenset(signals), key))
    for i, extra in enumerate(settings.exporters):
        key = dotted("telemetry.exporters", [i])
        plugin, options = _plugin_options(
            host, "exporter", extra.type, extra.options, key, templates
        )
        supported = frozenset(getattr(plugin, "signals", SIGNALS))
        asked = frozenset(extra.signals) if extra.signals is not None else supported
        if asked - supported:
            raise ConfigError(
                f"exporter '{extra.type}' cannot take {', '.join(sorted(asked - supported))} "
                f"(it takes: {', '.join(sorted(supported))})",
                key=f"{key}.signals",
            )
        if asked & wanted:
            exporters.append(
                ExporterNode(extra.type, plugin, options, asked & frozenset(wanted), key)
            )

    seen: dict[str, int] = {}
    for node in exporters:
        seen[node.name] = count = seen.get(node.name, 0) + 1
        if count > 1:
            node.label = f"{node.name}#{count}"
    sampler = _resolve_sampler(host, sampler_spec(settings), "telemetry.sampler", templates)
    instrumentations = plan_instrumentations(settings.instrumentations, context.notices)
    signals = frozenset(s for node in exporters for s in node.signals)
    return Plan(
        settings=settings,
        host=host,
        backend=backend,
        backend_options=backend_options,
        exporters=exporters,
        sampler=sampler,
        signals=signals,
        notices=context.notices,
        instrumentations=instrumentations,
    )
