"""The plugin host: entry-point discovery, lazy loading, and the pluggy hook relay."""

from __future__ import annotations

import importlib
import inspect
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import pluggy
from importlib_metadata import EntryPoint, entry_points
from pydantic import BaseModel, ConfigDict, SecretStr, field_validator

from . import hookspecs
from ._errors import ConfigError, did_you_mean
from .plugin import Backend, BuildContext, Exporter, NoOptions, SamplerContext, SamplerPlugin
from .settings import Signal, _Redacted

__all__ = ["GROUPS", "Kind", "PluginHost", "PluginInfo"]

log = logging.getLogger("sfumato")

Kind = Literal["backend", "exporter", "sampler", "hooks", "cli"]
GROUPS: dict[Kind, str] = {
    "backend": "sfumato.backends",
    "exporter": "sfumato.exporters",
    "sampler": "sfumato.samplers",
    # Hook plugins: every configure() registers them.
    "hooks": "sfumato.plugins",
    # Command-line plugins: only the ``sfumato`` command registers them (its commands, the
    # instruments ``alerts`` knows, doctor's probes); configure() never imports them.
    "cli": "sfumato.cli",
}
# The OpenTelemetry SDK's own groups: their entries are usable by name too.
_OTEL_EXPORTER_GROUPS: dict[Signal, str] = {
    "traces": "opentelemetry_traces_exporter",
    "metrics": "opentelemetry_metrics_exporter",
    "logs": "opentelemetry_logs_exporter",
}
_OTEL_SAMPLER_GROUP = "opentelemetry_traces_sampler"
_BASES: dict[Kind, type] = {"backend": Backend, "exporter": Exporter, "sampler": SamplerPlugin}


@dataclass(frozen=True)
class PluginInfo:
    """One discovered plugin, described without importing it."""

    kind: Kind
    name: str
    value: str
    group: str
    distribution: str
    version: str
    disabled: bool = False

    @property
    def origin(self) -> str:
        return f"{self.distribution} {self.version}"


def _info(kind: Kind, ep: EntryPoint, disabled: bool) -> PluginInfo:
    dist = ep.dist
    return PluginInfo(
        kind=kind,
        name=ep.name,
        value=ep.value,
        group=ep.group,
        distribution=dist.name if dist is not None else "unknown",
        version=dist.version if dist is not None else "unknown",
        disabled=disabled,
    )


@dataclass(frozen=True)
class HookFailure:
    """A hook-only plugin that could not be loaded."""

    name: str
    message: str


class _PassThroughOptions(_Redacted):
    """Options of an adapted OpenTelemetry class: passed as keyword arguments (secrets
    revealed); the repr hides secret-looking keys' values (``headers``, ``*_token``, ...)."""

    model_config = ConfigDict(extra="allow")


def _revealed(value: Any) -> Any:
    """``value`` with each ``SecretStr`` inside it replaced by its secret: what an
    OpenTelemetry class takes (it knows nothing of pydantic)."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, dict):
        return {k: _revealed(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_revealed(v) for v in value)
    return value


def _keyword_arguments(options: BaseModel) -> dict[str, Any]:
    return {k: _revealed(v) for k, v in (options.model_extra or {}).items()}


# The SDK's ratio samplers: for these it reads OTEL_TRACES_SAMPLER_ARG as float(arg), 1.0
# when unset (opentelemetry.sdk._configuration._import_sampler and
# opentelemetry.sdk.trace.sampling._get_from_env_or_default); any other factory gets the
# variable's text, or None.
_OTEL_RATIO_SAMPLERS = frozenset({"traceidratio", "parentbased_traceidratio"})
_RATIO_EXPECTED = 'expected a number between 0 and 1 (such as 0.25 or "0.25")'


class _OtelSamplerOptions(BaseModel):
    """``arg`` as a factory of the SDK's group takes OTEL_TRACES_SAMPLER_ARG: text (a number
    written in TOML is passed as its text, as the variable would hold it)."""

    model_config = ConfigDict(extra="forbid")
    arg: str | None = None

    @field_validator("arg", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        return value


class _OtelRatioSamplerOptions(BaseModel):
    """``arg`` of the SDK's ratio samplers: read as the SDK reads the variable, float(arg), and
    checked here (the SDK would fall back to 1.0, or raise when the sampler is built)."""

    model_config = ConfigDict(extra="forbid")
    arg: float = 1.0

    @field_validator("arg", mode="before")
    @classmethod
    def _ratio(cls, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValueError(_RATIO_EXPECTED)
        try:
            ratio = float(value)
        except ValueError:
            raise ValueError(_RATIO_EXPECTED) from None
        if not 0.0 <= ratio <= 1.0:  # also NaN
            raise ValueError(_RATIO_EXPECTED)
        return ratio


class _OtelSamplerFactory(SamplerPlugin):
    """An entry of ``opentelemetry_traces_sampler``, called as the SDK does: factory(arg)."""

    Options: ClassVar[type[BaseModel]] = _OtelSamplerOptions

    def __init__(self, factory: Any) -> None:
        self.factory = factory

    def build(self, options: Any, context: SamplerContext) -> Any:
        return self.factory(options.arg)


class _OtelRatioSamplerFactory(_OtelSamplerFactory):
    """``traceidratio`` and ``parentbased_traceidratio``: factory(float(arg))."""

    Options: ClassVar[type[BaseModel]] = _OtelRatioSamplerOptions


class _OtelSamplerClass(SamplerPlugin):
    """A ``Sampler`` subclass named by ``module:Class``: built with its options as kwargs."""

    Options: ClassVar[type[BaseModel]] = _PassThroughOptions

    def __init__(self, cls: Any) -> None:
        self.cls = cls

    def build(self, options: Any, context: SamplerContext) -> Any:
        return self.cls(**_keyword_arguments(options))


class _OtelExporterClasses(Exporter):
    """OpenTelemetry exporter classes, one per signal, built with options as kwargs."""

    Options: ClassVar[type[BaseModel]] = _PassThroughOptions

    def __init__(self, classes: dict[Signal, Any]) -> None:
        self.classes = classes
        self.signals = frozenset(classes)  # type: ignore[misc]

    def check(self, signal: Signal, options: Any, context: BuildContext) -> None:
        """The options are keyword arguments the class takes (what ``create`` would find)."""
        cls = self.classes[signal]
        try:
            parameters = inspect.signature(cls).parameters
        except (TypeError, ValueError):
            return  # no signature to read: the class itself will judge
        if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
            return
        keywords = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        takes = [n for n, p in parameters.items() if p.kind in keywords and n[:1] != "_"]
        for name in options.model_extra or {}:
            if name not in takes:
                raise ConfigError(
                    f"{cls.__name__} takes no keyword '{name}'{did_you_mean(name, takes)} "
                    f"(it takes: {', '.join(takes) or 'none'})"
                )

    def create(self, signal: Signal, options: Any, context: BuildContext) -> Any:
        return self.classes[signal](**_keyword_arguments(options))


def _adapt(kind: Kind, obj: Any, signal_hint: Signal | None = None) -> Any:
    """Turn what an entry point or import path gave into a plugin instance."""
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.trace.sampling import Sampler

    if kind == "sampler" and inspect.isclass(obj) and issubclass(obj, Sampler):
        return _OtelSamplerClass(obj)
    if kind == "exporter" and inspect.isclass(obj) and issubclass(obj, SpanExporter):
        return _OtelExporterClasses({"traces": obj})
    if inspect.isclass(obj):
        obj = obj()
    base = _BASES.get(kind)
    if base is not None and not isinstance(obj, base):
        required = {"backend": "plan", "exporter": "create", "sampler": "build"}[kind]
        if not callable(getattr(obj, required, None)):
            raise TypeError(
                f"{type(obj).__name__} is not a {kind} plugin: it has no {required}() "
                f"(subclass sfumato.plugin.{base.__name__})"
            )
    return obj


class PluginHost:
    """Finds plugins by entry point and loads only the ones asked for."""

    def __init__(
        self,
        *,
        disabled: Iterable[str] = (),
        allow_import_paths: bool = True,
    ) -> None:
        self.disabled = {d.strip() for d in disabled if d.strip()}
        self.allow_import_paths = allow_import_paths
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self._loaded: dict[tuple[Kind, str], Any] = {}
        self._discovered: dict[str, list[EntryPoint]] = {}

    # -- discovery ---------------------------------------------------------------------------

    def _entry_points(self, group: str) -> list[EntryPoint]:
        if group not in self._discovered:
            self._discovered[group] = list(entry_points(group=group))
        return self._discovered[group]

    def is_disabled(self, kind: Kind, name: str) -> bool:
        return name in self.disabled or f"{kind}:{name}" in self.disabled

    def discover(self, kind: Kind) -> list[PluginInfo]:
        """Every plugin of ``kind`` installed, sfumato's groups first, nothing imported."""
        seen: set[str] = set()
        found: list[PluginInfo] = []
        groups = [GROUPS[kind]]
        if kind == "exporter":
            groups += list(_OTEL_EXPORTER_GROUPS.values())
        elif kind == "sampler":
            groups.append(_OTEL_SAMPLER_GROUP)
        for group in groups:
            for ep in self._entry_points(group):
                if ep.name in seen:
                    continue
                seen.add(ep.name)
                found.append(_info(kind, ep, self.is_disabled(kind, ep.name)))
        return sorted(found, key=lambda p: p.name)

    def names(self, kind: Kind) -> list[str]:
        return [p.name for p in self.discover(kind) if not p.disabled]

    # -- loading -----------------------------------------------------------------------------

    def load(self, kind: Kind, name: str, key: str) -> Any:
        """The plugin instance named ``name``; ConfigError at ``key`` when it cannot be had."""
        cached = self._loaded.get((kind, name))
        if cached is not None:
            return cached
        if self.is_disabled(kind, name):
            raise ConfigError(
                f"{kind} plugin '{name}' is disabled (telemetry.plugins.disable or "
                "SFUMATO_DISABLE_PLUGINS)",
                key=key,
            )
        if ":" in name:
            plugin = self._load_import_path(kind, name, key)
        else:
            plugin = self._load_entry_point(kind, name, key)
        self._loaded[(kind, name)] = plugin
        self.register(plugin, f"{kind}:{name}")
        return plugin

    def register(self, plugin: Any, name: str | None = None) -> None:
        """Join a plugin object to the hooks (no-op when it implements none)."""
        if self.pm.is_registered(plugin) or (name and self.pm.get_plugin(name) is not None):
            return
        if inspect.isclass(plugin) or isinstance(plugin, (int, float, str)):
            return
        self.pm.register(plugin, name=name)

    def _load_import_path(self, kind: Kind, name: str, key: str) -> Any:
        if not self.allow_import_paths:
            raise ConfigError(
                f"'{name}' is an import path, and telemetry.plugins.allow_import_paths is "
                "false: install the plugin and name it by its entry point",
                key=key,
            )
        if kind not in ("sampler", "exporter"):
            raise ConfigError(f"a {kind} must be named by its entry point, not '{name}'", key=key)
        module_name, _, attr = name.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
            return _adapt(kind, obj)
        except Exception as exc:
            raise ConfigError(
                f"cannot load {kind} '{name}': {type(exc).__name__}: {exc}", key=key
            ) from None

    def _load_entry_point(self, kind: Kind, name: str, key: str) -> Any:
        own = [ep for ep in self._entry_points(GROUPS[kind]) if ep.name == name]
        if own:
            return self._from_entry_point(kind, own[0], key)
        if kind == "exporter":
            classes: dict[Signal, Any] = {}
            for signal, group in _OTEL_EXPORTER_GROUPS.items():
                for ep in self._entry_points(group):
                    if ep.name == name:
                        classes[signal] = self._import(kind, ep, key)
            if classes:
                return _OtelExporterClasses(classes)
        if kind == "sampler":
            for ep in self._entry_points(_OTEL_SAMPLER_GROUP):
                if ep.name == name:
                    if name in _OTEL_RATIO_SAMPLERS:
                        return _OtelRatioSamplerFactory(self._import(kind, ep, key))
                    return _OtelSamplerFactory(self._import(kind, ep, key))
        installed = self.names(kind)
        raise ConfigError(
            f"unknown {kind} '{name}'{did_you_mean(name, installed)} "
            f"(installed: {', '.join(installed) or 'none'})",
            key=key,
        )

    def _import(self, kind: Kind, ep: EntryPoint, key: str) -> Any:
        try:
            return ep.load()
        except Exception as exc:
            info = _info(kind, ep, False)
            raise ConfigError(
                f"{kind} plugin '{ep.name}' ({info.origin}) failed to import: "
                f"{type(exc).__name__}: {exc}",
                key=key,
            ) from None

    def _from_entry_point(self, kind: Kind, ep: EntryPoint, key: str) -> Any:
        obj = self._import(kind, ep, key)
        try:
            return _adapt(kind, obj)
        except Exception as exc:
            info = _info(kind, ep, False)
            raise ConfigError(
                f"{kind} plugin '{ep.name}' ({info.origin}) failed to load: "
                f"{type(exc).__name__}: {exc}",
                key=key,
            ) from None

    def load_hook_plugins(
        self, strict: bool = False, kind: Literal["hooks", "cli"] = "hooks"
    ) -> list[HookFailure]:
        """Register every enabled plugin of the ``sfumato.plugins`` group (hooks only), or
        with ``kind="cli"`` of the ``sfumato.cli`` group (the command line's plugins).

        Nothing in the config names these plugins: one that fails to import, or whose hook
        implementations do not match the hookspecs, is left out and returned (the caller
        counts and logs it), unless ``strict``, where it is a ConfigError.
        """
        failures: list[HookFailure] = []
        for ep in self._entry_points(GROUPS[kind]):
            registered = f"{kind}:{ep.name}" if kind != "hooks" else ep.name
            if self.is_disabled(kind, ep.name) or self.pm.get_plugin(registered) is not None:
                continue
            try:
                plugin = self._from_entry_point(kind, ep, "telemetry.plugins")
                try:
                    self.register(plugin, registered)
                except Exception as exc:
                    reason = " ".join(str(exc).split())
                    raise ConfigError(
                        f"{kind} plugin '{ep.name}' ({_info(kind, ep, False).origin}) cannot "
                        f"be registered: {type(exc).__name__}: {reason}",
                        key="telemetry.plugins",
                    ) from None
            except ConfigError as exc:
                if strict:
                    raise
                failures.append(HookFailure(ep.name, exc.message))
        return failures

    def origin_of(self, kind: Kind, name: str) -> str:
        for info in self.discover(kind):
            if info.name == name:
                return info.origin
        return "import path" if ":" in name else "unknown"


def options_model(plugin: Any) -> type[BaseModel]:
    model = getattr(plugin, "Options", NoOptions)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else NoOptions
