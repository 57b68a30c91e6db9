"""Build the SDK providers for traces, metrics and logs from a resolved plan."""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.metrics import (
    AlwaysOffExemplarFilter,
    AlwaysOnExemplarFilter,
    MeterProvider,
    TraceBasedExemplarFilter,
)
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import Sampler

from ._errors import ConfigError
from ._export_queue import ExportQueue
from ._guards import GuardedSampler, GuardedSpanProcessor, PluginErrors, call_hook, strict
from ._host import Kind, PluginHost
from ._metric_export import CountingMetricExporter
from ._otel import LoggerProvider, warn_fallback
from ._processors import (
    FanOutSpanProcessor,
    QueueLogProcessor,
    QueueSpanProcessor,
    SyncSpanProcessor,
    trace_id_of,
)
from ._resolve import Plan, SamplerNode
from ._scrubbing import Scrubber
from ._stats import Stats
from ._tracer import tracer_provider_class
from .plugin import BuildContext, SamplerContext, SamplerSpec, ScrubMatch, TailStage
from .settings import Settings, Signal

__all__ = ["Pipelines", "build_pipelines", "build_resource", "build_sampler", "check_plan"]

# [telemetry.metrics] exemplars. Off by default: the SDK's trace-based filter makes every
# record inside a sampled span also fill an exemplar reservoir (a few microseconds each).
_EXEMPLAR_FILTERS: dict[str, Any] = {
    "always_off": AlwaysOffExemplarFilter,
    "trace_based": TraceBasedExemplarFilter,
    "always_on": AlwaysOnExemplarFilter,
}

log = logging.getLogger("sfumato")


@dataclass
class Pipelines:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider | None
    logger_provider: LoggerProvider | None
    sampler: Sampler
    queues: list[ExportQueue[Any]] = field(default_factory=list)
    readers: list[MetricReader] = field(default_factory=list)
    exporters: dict[tuple[str, Signal], Any] = field(default_factory=dict)
    # The tail sampler's processor, in front of the export processors (None without one).
    tail: SpanProcessor | None = None


def build_resource(plan: Plan, stats: Stats | None = None) -> Resource:
    settings = plan.settings
    attributes: dict[str, Any] = {}
    hooked = call_hook(
        plan.host.pm, "sfumato_resource_attributes", stats or Stats(), settings=settings
    )
    for extra in hooked:
        attributes.update(extra or {})
    attributes["service.name"] = settings.service_name
    if settings.service_version:
        attributes["service.version"] = settings.service_version
    if settings.environment:
        attributes["deployment.environment.name"] = settings.environment
    attributes.update(settings.resource)
    return Resource.create(attributes)


def build_sampler(
    node: SamplerNode, settings: Settings, stats: Stats, host: PluginHost | None = None
) -> Sampler:
    def build_nested(spec: SamplerSpec) -> Sampler:
        if spec._node is None:
            raise ConfigError("nested sampler was not resolved", key=node.key)
        return build_sampler(spec._node, settings, stats, host)

    context = SamplerContext(settings=settings, stats=stats, build=build_nested, path=node.key)
    with _plugin_call(node.key, host, "sampler", node.name, "failed to build"):
        sampler: Sampler = node.plugin.build(node.options, context)
    if not getattr(sampler, "guarded", False):
        # A sampler that is not sfumato's own may raise at run time: wrap it so that its
        # exception becomes a counted, logged-once safe decision, never the app's problem.
        sampler = GuardedSampler(sampler, node.name, stats)
    return sampler


def _origin(host: PluginHost | None, kind: Kind, name: str) -> str:
    """`` (distribution version)`` of an installed plugin, for error messages."""
    if host is None:
        return ""
    try:
        return f" ({host.origin_of(kind, name)})"
    except Exception:
        return ""


@contextlib.contextmanager
def _plugin_call(
    key: str, host: PluginHost | None, kind: Kind, name: str, doing: str
) -> Iterator[None]:
    """A plugin's code inside: its ConfigError gets the plugin's key, any other exception
    becomes a ConfigError naming the plugin, its distribution, what it was doing and why."""
    try:
        yield
    except ConfigError as exc:
        raise exc.located(key=key) from None
    except Exception as exc:
        raise ConfigError(
            f"{kind} '{name}'{_origin(host, kind, name)} {doing}: {type(exc).__name__}: {exc}",
            key=key,
        ) from None


def _create(node: Any, signal: Signal, context: BuildContext, host: PluginHost) -> Any:
    doing = f"failed to build its {signal} exporter"
    with _plugin_call(node.key, host, "exporter", node.name, doing):
        made = node.plugin.create(signal, node.options, context)
    context.built.setdefault((node.label, signal), made)
    return made


def check_plan(plan: Plan) -> None:
    """Raise the ConfigError that building ``plan`` would, without building its pipelines:
    the sampler tree is built and dropped, each exporter's modules imported and its options
    checked for each signal. ``sfumato validate`` runs this, so it rejects what configure()
    would."""
    build_sampler(plan.sampler, plan.settings, Stats(), plan.host)
    try:
        _views(plan.settings)
    except Exception as exc:
        raise ConfigError(
            f"a metric view the SDK refuses: {exc}", key="telemetry.metrics.views"
        ) from None
    context = BuildContext(settings=plan.settings, stats=Stats())
    for node in plan.exporters:
        for module, requirement in getattr(node.plugin, "requires", {}).items():
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise ConfigError(
                    f"exporter '{node.name}' needs the module '{module}', which cannot be "
                    f'imported ({exc}): pip install "{requirement}"',
                    key=node.key,
                ) from None
        check = getattr(node.plugin, "check", None)
        if check is None:
            continue
        for signal in sorted(node.signals):
            doing = f"failed to check its {signal} options"
            with _plugin_call(node.key, plan.host, "exporter", node.name, doing):
                check(signal, node.options, context)


def _views(settings: Settings) -> list[View]:
    views = []
    for name, view in settings.metrics.views.items():
        kwargs: dict[str, Any] = {"instrument_name": name}
        if view.buckets is not None:
            kwargs["aggregation"] = ExplicitBucketHistogramAggregation(boundaries=view.buckets)
        if view.name:
            kwargs["name"] = view.name
        if view.description:
            kwargs["description"] = view.description
        views.append(View(**kwargs))
    return views


def build_pipelines(plan: Plan, stats: Stats) -> Pipelines:
    settings = plan.settings
    context = BuildContext(settings=settings, stats=stats)
    # Hook-only plugins (entry-point group sfumato.plugins) join before the first hook call.
    for failure in plan.host.load_hook_plugins(strict=strict()):
        PluginErrors(failure.name, stats).record(f"import ({failure.message})")
    resource = build_resource(plan, stats)
    sampler = build_sampler(plan.sampler, settings, stats, plan.host)
    scrubber = _scrubber(settings, stats, plan.host)
    queues: list[ExportQueue[Any]] = []

    def queue(exporter: Any, signal: str, name: str) -> ExportQueue[Any]:
        prepare: Callable[[list[Any]], list[Any]] | None = None
        if scrubber is not None:
            prepare = scrubber.spans if signal == "traces" else scrubber.log_records
        q: ExportQueue[Any] = ExportQueue(
            exporter,
            signal=signal,
            stats=stats,
            batch_size=settings.batch_size,
            delay_ms=settings.batch_timeout_ms,
            max_queue_size=settings.max_queue_size,
            name=name,
            retry_ms=settings.export_retry_ms,
            block_ms=settings.block_ms if settings.on_full == "block" else 0,
            unit_of=trace_id_of if signal == "traces" else None,
            # Several calls at once only where the exporter says it takes them.
            workers=settings.export_workers if _concurrent(exporter) else 1,
            prepare=prepare,
        )
        queues.append(q)
        return q

    try:
        return _assemble(plan, stats, context, resource, sampler, queue, queues, scrubber)
    except BaseException:
        # Leave nothing running behind a failed configure(): a queue's worker thread, an
        # exporter's connection or a pull exporter's listening port.
        _discard(queues, context.built)
        raise


def _scrubber(settings: Settings, stats: Stats, host: PluginHost) -> Scrubber | None:
    """The scrubber ``[telemetry.scrubbing]`` asks for (None when it is off), asking the
    ``sfumato_scrub`` hook's implementations about each match."""
    options = settings.scrubbing
    if not options.enabled:
        return None
    impls = list(reversed(host.pm.hook.sfumato_scrub.get_hookimpls()))
    callback: Callable[[ScrubMatch], Any] | None = None
    if impls:

        def callback(match: ScrubMatch) -> Any:
            # The first answer that is not None; a raising plugin is counted and passed
            # over (left to the others, then to the replacement).
            for impl in impls:
                try:
                    kept = impl.function(**{"match": match} if impl.argnames else {})
                except Exception:
                    PluginErrors(impl.plugin_name, stats).record("sfumato_scrub")
                    continue
                if kept is not None:
                    return kept
            return None

    return Scrubber(
        extra_patterns=options.extra_patterns,
        allow=options.allow,
        values=options.values,
        callback=callback,
        stats=stats,
    )


def _concurrent(exporter: Any) -> bool:
    return getattr(exporter, "sfumato_concurrent", False) is True


def _discard(queues: list[ExportQueue[Any]], built: dict[tuple[str, Signal], Any]) -> None:
    for q in queues:
        q.shutdown(0.2)
    for made in built.values():
        try:
            made.shutdown()
        except Exception:
            log.debug("sfumato: shutting down a half-built exporter raised", exc_info=True)


def _assemble(
    plan: Plan,
    stats: Stats,
    context: BuildContext,
    resource: Resource,
    sampler: Sampler,
    queue: Callable[[Any, str, str], ExportQueue[Any]],
    queues: list[ExportQueue[Any]],
    scrubber: Scrubber | None,
) -> Pipelines:
    settings = plan.settings
    # Traces.
    span_processors: list[SpanProcessor] = []
    for node in plan.exporters:
        if "traces" not in node.signals:
            continue
        exporter = _create(node, "traces", context, plan.host)
        if getattr(node.plugin, "batched", True):
            span_processors.append(QueueSpanProcessor(queue(exporter, "traces", node.label)))
        else:
            span_processors.append(
                SyncSpanProcessor(exporter, stats, scrubber.spans if scrubber else None)
            )
    export: SpanProcessor = (
        span_processors[0] if len(span_processors) == 1 else FanOutSpanProcessor(span_processors)
    )
    # sfumato's provider: SDK spans on a shorter start/end path (see _tracer.py).
    # sfumato's provider on the fast path; the SDK's own when the installed SDK differs from
    # the shape the fast path relies on (said once, and in stats() and doctor).
    warn_fallback()
    tracer_provider: Any = tracer_provider_class()(
        resource=resource, sampler=sampler, shutdown_on_exit=False
    )
    tracer_provider.api_errors = stats.counter("spans.api_errors")
    tail: SpanProcessor | None = None
    if isinstance(sampler, TailStage):
        tail = sampler.tail_processor(export, stats)
        tracer_provider.add_span_processor(tail)
    elif span_processors:
        tracer_provider.add_span_processor(export)
    for extra in call_hook(plan.host.pm, "sfumato_span_processors", stats, settings=settings):
        for processor in extra or ():
            # The SDK calls on_start/on_end on the application's thread, catching nothing.
            name = type(processor).__name__
            tracer_provider.add_span_processor(GuardedSpanProcessor(processor, name, stats))

    # Metrics.
    meter_provider = None
    readers: list[MetricReader] = []
    if settings.metrics.enabled:
        for node in plan.exporters:
            if "metrics" not in node.signals:
                continue
            made = _create(node, "metrics", context, plan.host)
            if isinstance(made, MetricReader):
                readers.append(made)
            else:
                readers.append(
                    PeriodicExportingMetricReader(
                        CountingMetricExporter(made, stats, node.label),
                        export_interval_millis=settings.metrics.export_interval_ms,
                        export_timeout_millis=settings.export_timeout_ms,
                    )
                )
        for extra in call_hook(plan.host.pm, "sfumato_metric_readers", stats, settings=settings):
            readers.extend(extra or ())
        meter_provider = MeterProvider(
            metric_readers=readers,
            resource=resource,
            views=_views(settings),
            shutdown_on_exit=False,
            exemplar_filter=_EXEMPLAR_FILTERS[settings.metrics.exemplars](),
        )

    # Logs.
    logger_provider = None
    if settings.logs.enabled and any("logs" in n.signals for n in plan.exporters):
        logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
        for node in plan.exporters:
            if "logs" in node.signals:
                exporter = _create(node, "logs", context, plan.host)
                logger_provider.add_log_record_processor(
                    QueueLogProcessor(queue(exporter, "logs", node.label))
                )
    for notice in context.notices:
        plan.notices.append(notice)
    return Pipelines(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        logger_provider=logger_provider,
        sampler=sampler,
        queues=queues,
        readers=readers,
        exporters=context.built,
        tail=tail,
    )
