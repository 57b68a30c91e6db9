"""Every use of OpenTelemetry's internals, in one module, checked against the installed SDK.

sfumato's span path is the SDK's span model on a shorter road: spans are SDK ``Span``
objects built without ``Span.__init__``, their attributes the SDK's ``BoundedAttributes``
built without cleaning a clean dict, the current context read straight from the runtime's
ContextVar, and metric records that skip the SDK's per-record work for attribute sets seen
before. All of that depends on private fields and functions of opentelemetry-api and
opentelemetry-sdk. They are used here and nowhere else (``tests/test_otel_internals.py``
walks every other module), and :func:`check_shape` verifies, at import, each field and
method this module relies on against the installed SDK.

When the check finds a difference (or ``SFUMATO_OTEL_FALLBACK=1`` forces it), ``FAST`` is
False: ``configure()`` builds the SDK's own ``TracerProvider`` and metric path with sfumato's
samplers, processors and exporters, and every helper below takes the public API instead.
That path is correct and slower; ``stats()`` and ``sfumato doctor`` say it is in use.

Written against opentelemetry-sdk 1.45 (see ``docs/internals.md``). What is relied on:

- API: ``opentelemetry.context._RUNTIME_CONTEXT._current_context`` (the ContextVar that
  holds the current Context), the global provider slots and their set-once guards
  (``_TRACER_PROVIDER``, ``_METER_PROVIDER``, ``_LOGGER_PROVIDER``), ``SpanContext`` being
  the tuple ``(trace_id, span_id, is_remote, trace_flags, trace_state, is_valid)``, and the
  logs API and SDK, which OpenTelemetry still publishes under ``_logs``.
- SDK spans: the fields ``Span``'s methods read (checked from their bytecode), the
  processors' ``_on_ending`` hook, ``Span._new_links``, ``BoundedAttributes._dict``,
  ``_immutable`` and ``_lock``, the tracer's ``_instrumentation_scope``, ``_span_limits``,
  ``_tracer_config`` and ``_tracer_metrics``, the provider's ``_tracers`` and
  ``_tracers_lock``, the multi-processor's ``_span_processors``.
- SDK metrics: the synchronous instruments, measurement consumer, reader storages, view
  matches and the sum and explicit-bucket histogram aggregations (see ``Series``), and the
  periodic reader's ``_exporter`` and ``_shutdown_event``.
- Exporters: the OTLP gRPC exporter's ``_client`` stub and ``_initialize_channel_and_stub``,
  the OTLP log encoder, metric exporters' ``_preferred_temporality`` and
  ``_preferred_aggregation``.
"""

from __future__ import annotations

import dis
import importlib.metadata
import logging
import os
import random
import sys
import threading
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from operator import attrgetter
from threading import Lock
from time import time_ns
from types import MappingProxyType
from typing import Any

# The logs API and SDK: public in all but name.
from opentelemetry import _logs as _logs_api
from opentelemetry import baggage as baggage_api
from opentelemetry import context as context_api
from opentelemetry import metrics as metrics_api
from opentelemetry import trace as trace_api
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk._logs import (
    LoggerProvider,
    LogRecordProcessor,
    ReadableLogRecord,
    ReadWriteLogRecord,
)
from opentelemetry.sdk._logs.export import (
    ConsoleLogRecordExporter,
    LogRecordExporter,
    LogRecordExportResult,
)
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import (
    INVALID_SPAN,
    INVALID_SPAN_CONTEXT,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    TraceFlags,
    TraceState,
)
from opentelemetry.trace.status import Status, StatusCode
from opentelemetry.util import types

from ._mending import TIME_LIMIT, mend_kind, mend_time, rejected, safe_text
from ._strict import strict
from .plugin import BufferingProcessor, SpanSampler

__all__ = [
    "BAGGAGE_KEY",
    "FAST",
    "PROBLEMS",
    "SDK_VERSION",
    "SPAN_KEY",
    "TUPLE_LAYOUT",
    "ConsoleLogRecordExporter",
    "FastTracer",
    "GrpcBytes",
    "HttpBytes",
    "LogRecord",
    "LogRecordExportResult",
    "LogRecordExporter",
    "LogRecordProcessor",
    "LoggerProvider",
    "ReadWriteLogRecord",
    "ReadableLogRecord",
    "Series",
    "SeriesRecorder",
    "SeverityNumber",
    "attach",
    "check_shape",
    "current_context",
    "detach",
    "grpc_bytes_fit",
    "http_bytes_fit",
]

log = logging.getLogger("sfumato")

try:  # the SDK's tracer metrics (1.42+): with an SDK without them, the shape check fails
    from opentelemetry.sdk.trace._tracer_metrics import NoOpTracerMetrics
except ImportError:
    NoOpTracerMetrics = None  # type: ignore[assignment,misc]

try:
    SDK_VERSION = importlib.metadata.version("opentelemetry-sdk")
except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a vendored SDK
    SDK_VERSION = "unknown"
# SFUMATO_OTEL_FALLBACK=1: take the public API everywhere, as if the shape check had failed.
FORCED = os.environ.get("SFUMATO_OTEL_FALLBACK", "").strip().lower() in ("1", "true", "yes", "on")


# -- the shape check ---------------------------------------------------------------------------

# The fields a span built by FastTracer has (set per span, or class attributes of its class):
# every private name that Span's and ReadableSpan's methods read must be one of these or a
# method, class attribute or module global of the SDK.
SPAN_FIELDS = frozenset(
    (
        "_name",
        "_context",
        "_parent",
        "_attributes",
        "_kind",
        "_status",
        "_start_time",
        "_end_time",
        "_events",
        "_links",
        "_record_exception",
        "_set_status_on_exception",
        "_trace_config",
        "_record_end_metrics",
        "_lock",
        "_resource",
        "_instrumentation_info",
        "_instrumentation_scope",
        "_limits",
        "_span_processor",
        "_sampler",
    )
)
# What the span path reads of each SDK object, checked on a real one.
TRACER_FIELDS = ("_instrumentation_scope", "_span_limits", "_tracer_config", "_tracer_metrics")
PROVIDER_FIELDS = ("_tracers", "_tracers_lock", "_active_span_processor")
ATTRIBUTES_FIELDS = frozenset(("_dict", "_immutable", "_lock", "maxlen", "max_value_len"))


def _names_read(cls: type, skip: Iterable[str] = ("__init__",)) -> set[str]:
    """The single-underscore names the methods and properties of ``cls`` use."""
    found: set[str] = set()
    for key, value in vars(cls).items():
        if key in skip:
            continue
        funcs = [value]
        if isinstance(value, property):
            funcs = [value.fget, value.fset]
        elif isinstance(value, (staticmethod, classmethod)):
            funcs = [value.__func__]
        for func in funcs:
            code = getattr(func, "__code__", None)
            stack = [code] if code is not None else []
            while stack:
                code = stack.pop()
                found.update(n for n in code.co_names if n[:1] == "_" and n[:2] != "__")
                stack.extend(c for c in code.co_consts if hasattr(c, "co_names"))
    return found


def _defined(*classes: type) -> set[str]:
    names: set[str] = set()
    for cls in classes:
        for klass in cls.__mro__:
            names.update(vars(klass))
    return names


def check_shape(
    span_cls: type = sdk_trace.Span,
    attributes_cls: type = BoundedAttributes,
    provider_cls: type = sdk_trace.TracerProvider,
) -> list[str]:
    """What differs between the installed SDK and the shape this module relies on: one line
    per difference, empty when the fast path may be used. Never raises."""
    problems: list[str] = []
    try:
        probe = SpanContext(3, 5, False, TraceFlags(3), TraceState())
        if tuple(probe) != (3, 5, False, TraceFlags(3), TraceState(), True):
            problems.append("SpanContext is not the tuple (trace_id, span_id, ..., is_valid)")
    except Exception as exc:
        problems.append(f"SpanContext: {type(exc).__name__}: {exc}")
    try:
        sdk_globals = set(vars(sys.modules[span_cls.__module__]))
        known = (
            SPAN_FIELDS
            | ATTRIBUTES_FIELDS
            | sdk_globals
            | _defined(span_cls, attributes_cls, sdk_trace.SpanProcessor)
        )
        unknown = (_names_read(span_cls) | _names_read(sdk_trace.ReadableSpan)) - known
        if unknown:
            problems.append(f"Span's methods read fields sfumato does not set: {sorted(unknown)}")
        for name in ("_new_links", "_readable_span", "_add_event", "_add_link"):
            if not callable(getattr(span_cls, name, None)):
                problems.append(f"Span.{name} is missing")
        if not callable(getattr(sdk_trace.SpanProcessor, "_on_ending", None)):
            problems.append("SpanProcessor._on_ending is missing")
        attr_known = (
            ATTRIBUTES_FIELDS
            | _defined(attributes_cls)
            | set(vars(sys.modules[attributes_cls.__module__]))
        )
        unknown = _names_read(attributes_cls) - attr_known
        if unknown:
            problems.append(
                f"BoundedAttributes reads fields sfumato does not set: {sorted(unknown)}"
            )
        made = attributes_cls(4, {"k": "v"}, immutable=False)
        for name in ("_dict", "_immutable", "_lock"):
            if not hasattr(made, name):
                problems.append(f"BoundedAttributes has no {name}")
        provider = provider_cls(shutdown_on_exit=False)
        for name in PROVIDER_FIELDS:
            if not hasattr(provider, name):
                problems.append(f"TracerProvider has no {name}")
        tracer = provider.get_tracer("sfumato.shape-check")
        for name in TRACER_FIELDS:
            if not hasattr(tracer, name):
                problems.append(f"Tracer has no {name}")
        multi = sdk_trace.SynchronousMultiSpanProcessor()  # type: ignore[no-untyped-call]
        if not isinstance(getattr(multi, "_span_processors", None), tuple):
            problems.append("SynchronousMultiSpanProcessor._span_processors is not a tuple")
        provider.shutdown()
    except Exception as exc:
        problems.append(f"span model: {type(exc).__name__}: {exc}")
    for module, slot in (
        (trace_api, "_TRACER_PROVIDER"),
        (trace_api, "_TRACER_PROVIDER_SET_ONCE"),
        (sys.modules["opentelemetry.metrics._internal"], "_METER_PROVIDER"),
        (sys.modules["opentelemetry.metrics._internal"], "_METER_PROVIDER_SET_ONCE"),
        (sys.modules["opentelemetry._logs._internal"], "_LOGGER_PROVIDER"),
        (sys.modules["opentelemetry._logs._internal"], "_LOGGER_PROVIDER_SET_ONCE"),
    ):
        if not hasattr(module, slot):
            problems.append(f"{module.__name__}.{slot} is missing")
    if NoOpTracerMetrics is None:
        problems.append("opentelemetry.sdk.trace._tracer_metrics is missing")
    problems.extend(_series_problems())
    return problems


# -- the metric SDK's internals (the Series fast path) -------------------------------------------

try:
    from opentelemetry.sdk.metrics._internal import _view_instrument_match as _vim_module
    from opentelemetry.sdk.metrics._internal import aggregation as _aggregation
    from opentelemetry.sdk.metrics._internal.exemplar import (
        AlwaysOffExemplarFilter,
        AlwaysOnExemplarFilter,
        TraceBasedExemplarFilter,
    )
    from opentelemetry.sdk.metrics._internal.instrument import (
        _Counter,
        _Gauge,
        _Histogram,
        _UpDownCounter,
    )
    from opentelemetry.sdk.metrics._internal.measurement import Measurement
    from opentelemetry.sdk.metrics._internal.measurement_consumer import (
        SynchronousMeasurementConsumer,
    )
    from opentelemetry.sdk.metrics._internal.metric_reader_storage import MetricReaderStorage

    _METRICS_IMPORT_ERROR = ""
except (
    ImportError,
    AttributeError,
) as exc:  # another SDK version: every record takes the SDK's path
    _METRICS_IMPORT_ERROR = f"metric SDK internals: {type(exc).__name__}: {exc}"


def _uses(cls: Any, fields: tuple[str, ...]) -> bool:
    """True when ``cls``'s constructors and ``aggregate`` use exactly these fields' names."""
    names: set[str] = set()
    for klass in getattr(cls, "__mro__", ()):
        for method in ("__init__", "aggregate", "_sample_exemplar"):
            code = getattr(klass.__dict__.get(method), "__code__", None)
            if code is not None:
                names.update(code.co_names)
    return set(fields) <= names


_HISTOGRAM_FIELDS = ("_lock", "_value", "_reservoir", "offer", "_sum", "_min", "_max")


def _series_problems() -> list[str]:
    """What differs in the metric SDK's internals the ``Series`` fast path relies on."""
    if _METRICS_IMPORT_ERROR:
        return [_METRICS_IMPORT_ERROR]
    problems = []
    try:
        vim = _vim_module._ViewInstrumentMatch
        if not callable(getattr(_vim_module, "_hash_attributes", None)):
            problems.append("_view_instrument_match._hash_attributes is missing")
        if not (
            _uses(vim, ("_reset_on_collect", "_lock", "_attributes_aggregation"))
            and hasattr(vim, "_get_or_create_aggregation")
        ):
            problems.append("_ViewInstrumentMatch's fields differ")
        if not _uses(_aggregation._SumAggregation, ("_lock", "_value", "_reservoir", "offer")):
            problems.append("_SumAggregation's fields differ")
        histogram = _aggregation._ExplicitBucketHistogramAggregation
        if not _uses(histogram, (*_HISTOGRAM_FIELDS, "_boundaries", "_record_min_max")):
            problems.append("_ExplicitBucketHistogramAggregation's fields differ")
        if not hasattr(MetricReaderStorage, "_get_or_init_view_instrument_match"):
            problems.append("MetricReaderStorage._get_or_init_view_instrument_match is missing")
    except Exception as exc:
        problems.append(f"metric SDK internals: {type(exc).__name__}: {exc}")
    return problems


PROBLEMS: tuple[str, ...] = tuple(check_shape())
# The fast path is used when the installed SDK has the shape it relies on, unless forced off.
FAST = not PROBLEMS and not FORCED
# SpanContext read by index: (trace_id, span_id, is_remote, trace_flags, trace_state, is_valid).
TUPLE_LAYOUT = FAST


def fallback_reason() -> str | None:
    """Why the SDK's own span and metric path is in use; None on the fast path."""
    if FAST:
        return None
    if FORCED:
        return "SFUMATO_OTEL_FALLBACK is set"
    return f"opentelemetry-sdk {SDK_VERSION} differs from what it relies on: " + "; ".join(PROBLEMS)


_warned_fallback = False


def warn_fallback() -> None:
    """Say once per process that the SDK's own path is in use, and why."""
    global _warned_fallback
    reason = fallback_reason()
    if reason is None or _warned_fallback:
        return
    _warned_fallback = True
    log.log(
        logging.INFO if FORCED else logging.WARNING,
        "sfumato: the SDK's own span and metric path is in use instead of sfumato's fast "
        "path (%s); it is correct and slower",
        reason,
    )


# -- the context ---------------------------------------------------------------------------------

# The keys under which the API keeps the current span and the baggage in a Context, found
# through the public API.
SPAN_KEY: str = next(iter(trace_api.set_span_in_context(INVALID_SPAN, Context())))
BAGGAGE_KEY: str = next(iter(baggage_api.set_baggage("k", "v", Context())))
SUPPRESS_INSTRUMENTATION_KEY: str = context_api._SUPPRESS_INSTRUMENTATION_KEY

# The default runtime context keeps the current Context in one ContextVar: read and set it
# directly. Any other runtime context (OTEL_PYTHON_CONTEXT), or the SDK's own path, goes
# through the API functions.
_var = getattr(getattr(context_api, "_RUNTIME_CONTEXT", None), "_current_context", None)
current_context: Callable[[], Context]
attach: Callable[[Context], Any]
detach_token: Callable[[Any], Any]
if FAST and type(_var) is ContextVar:
    current_context = _var.get
    attach = _var.set
    detach_token = _var.reset
    # attach() returns a plain ContextVar token: ``token.var.reset(token)`` undoes it.
    VAR_TOKENS = True
else:
    current_context = context_api.get_current
    attach = context_api.attach
    detach_token = context_api.detach
    VAR_TOKENS = False


def detach(token: Any) -> None:
    """``opentelemetry.context.detach``: never raises (a token of another context is logged)."""
    try:
        detach_token(token)
    except Exception:
        log.debug("sfumato: failed to detach a context", exc_info=True)


def suppressed_context() -> Context:
    """The current context with instrumentation suppressed (export threads use it, so that
    an instrumented HTTP client does not trace sfumato's own export calls)."""
    return context_api.set_value(SUPPRESS_INSTRUMENTATION_KEY, True)


def span_context_in(context: Context | None) -> SpanContext | None:
    """The span context of the span current in ``context`` (default: the current one) when
    it is valid; None otherwise (a root span)."""
    ctx = context if context is not None else current_context()
    span: Any = ctx.get(SPAN_KEY)
    if span is None:
        return None
    sc = getattr(span, "_context", None) if FAST else None
    if type(sc) is not SpanContext:
        sc = span.get_span_context()  # a span that raises here: the caller's guard decides
        if not isinstance(sc, SpanContext):
            return None
    return sc if sc.is_valid else None


# -- the global providers --------------------------------------------------------------------------

_metrics_internal = sys.modules["opentelemetry.metrics._internal"]
_logs_internal = sys.modules["opentelemetry._logs._internal"]
# Bumped each time sfumato installs or removes the global providers: a cached tracer or
# instrument made before (tagged with the number it was made under) is made again.
GENERATION = 0


def install_global_providers(
    tracer_provider: Any, meter_provider: Any, logger_provider: Any
) -> None:
    """Install (or, with all None, uninstall) the global providers.

    The OpenTelemetry API lets a provider be set once per process. sfumato owns that slot:
    after ``shutdown()`` a new ``configure()`` may install new providers, so the set-once
    guards are reset here rather than letting the API warn and keep the dead provider.
    """
    global GENERATION
    from opentelemetry.util._once import Once

    for module, slot in (
        (trace_api, "_TRACER_PROVIDER"),
        (_metrics_internal, "_METER_PROVIDER"),
        (_logs_internal, "_LOGGER_PROVIDER"),
    ):
        if hasattr(module, slot):
            setattr(module, slot + "_SET_ONCE", Once())
            setattr(module, slot, None)
    GENERATION += 1  # what is made from here until the install ends is made again after it
    if tracer_provider is not None:
        trace_api.set_tracer_provider(tracer_provider)
    if meter_provider is not None:
        metrics_api.set_meter_provider(meter_provider)
    if logger_provider is not None:
        _logs_api.set_logger_provider(logger_provider)
    GENERATION += 1


# -- reading the fields of ended spans ------------------------------------------------------------


def _public_error(span: Any) -> bool:
    if span.status.status_code is StatusCode.ERROR:
        return True
    return any(event.name == "exception" for event in span.events)


if FAST:

    def has_error(span: Any) -> bool:
        """ERROR status or an ``exception`` event (the fields, not the properties: no tuple
        copy per span)."""
        try:
            if span._status._status_code is StatusCode.ERROR:
                return True
            events = span._events
        except AttributeError:
            return _public_error(span)
        if events:
            for event in events:
                if event.name == "exception":
                    return True
        return False

    def unit_facts(spans: Iterable[Any]) -> tuple[int, list[int] | None]:
        """How many of ``spans`` the head sampled, and the span ids of those with an error."""
        sampled = 0
        errors: list[int] | None = None
        error = StatusCode.ERROR
        for span in spans:
            try:
                ctx = span._context
                flag = ctx[3] & 1
                quiet = span._status._status_code is not error and not span._events
            except (AttributeError, TypeError, IndexError):
                ctx = span.context
                if ctx is None:
                    continue
                flag = 1 if ctx.trace_flags.sampled else 0
                quiet = False
            sampled += flag
            if not quiet and has_error(span):
                if errors is None:
                    errors = []
                errors.append(ctx.span_id)
        return sampled, errors

    def is_sampled(span: Any) -> int:
        """1 when the head sampled ``span``, else 0."""
        ctx = getattr(span, "_context", None)
        if type(ctx) is SpanContext:
            return ctx[3] & 1
        return 1 if span.context.trace_flags.sampled else 0

    def trace_id_of(span: Any) -> int:
        """A span's trace id (0 without a context)."""
        ctx = getattr(span, "_context", None)
        if type(ctx) is SpanContext:
            return ctx[0]
        ctx = span.context
        return 0 if ctx is None else ctx.trace_id

    def ids_of(span: Any) -> tuple[int, int, int, bool] | None:
        """(trace id, span id, parent span id or 0, is a local root) of an ended span;
        None without a context."""
        try:
            ctx = span._context
            parent = span._parent
        except AttributeError:
            ctx = span.context
            parent = span.parent
        if ctx is None:
            return None
        if parent is None:
            return ctx[0], ctx[1], 0, True
        return ctx[0], ctx[1], parent[1], parent[2]

    def attributes_of(span: Any) -> Mapping[str, Any]:
        """A span's attributes as they are, without the property's read-only proxy."""
        attributes = getattr(span, "_attributes", None)
        if attributes is None:
            return span.attributes or {}
        return getattr(attributes, "_dict", attributes)  # type: ignore[no-any-return]

else:

    def has_error(span: Any) -> bool:
        """ERROR status or an ``exception`` event."""
        return _public_error(span)

    def unit_facts(spans: Iterable[Any]) -> tuple[int, list[int] | None]:
        """How many of ``spans`` the head sampled, and the span ids of those with an error."""
        sampled = 0
        errors: list[int] | None = None
        for span in spans:
            ctx = span.context
            if ctx is None:
                continue
            sampled += 1 if ctx.trace_flags.sampled else 0
            if _public_error(span):
                if errors is None:
                    errors = []
                errors.append(ctx.span_id)
        return sampled, errors

    def is_sampled(span: Any) -> int:
        """1 when the head sampled ``span``, else 0."""
        return 1 if span.context.trace_flags.sampled else 0

    def trace_id_of(span: Any) -> int:
        """A span's trace id (0 without a context)."""
        ctx = span.context
        return 0 if ctx is None else ctx.trace_id

    def ids_of(span: Any) -> tuple[int, int, int, bool] | None:
        """(trace id, span id, parent span id or 0, is a local root) of an ended span;
        None without a context."""
        ctx = span.context
        if ctx is None:
            return None
        parent = span.parent
        if parent is None:
            return ctx.trace_id, ctx.span_id, 0, True
        return ctx.trace_id, ctx.span_id, parent.span_id, parent.is_remote

    def attributes_of(span: Any) -> Mapping[str, Any]:
        """A span's attributes."""
        return span.attributes or {}


if FAST:

    def span_fields(span: Any) -> tuple[Any, ...]:
        """What an encoder reads of an ended span, in one call: (context, parent, name,
        kind, start time, end time, attributes (a plain mapping), events, links, status,
        resource, scope, dropped attributes, dropped events, dropped links)."""
        try:
            attributes = span._attributes
            events = span._events
            links = span._links
            return (
                span._context,
                span._parent,
                span._name,
                span._kind,
                span._start_time,
                span._end_time,
                getattr(attributes, "_dict", attributes),
                events,
                links,
                span._status,
                span._resource,
                span._instrumentation_scope,
                getattr(attributes, "dropped", 0),
                getattr(events, "dropped", 0),
                getattr(links, "dropped", 0),
            )
        except AttributeError:
            return _public_span_fields(span)

else:

    def span_fields(span: Any) -> tuple[Any, ...]:
        """What an encoder reads of an ended span (see the fast variant)."""
        return _public_span_fields(span)


def _public_span_fields(span: Any) -> tuple[Any, ...]:
    return (
        span.context,
        span.parent,
        span.name,
        span.kind,
        span.start_time,
        span.end_time,
        span.attributes,
        span.events,
        span.links,
        span.status,
        span.resource,
        span.instrumentation_scope,
        span.dropped_attributes,
        span.dropped_events,
        span.dropped_links,
    )


# The attribute mapping of a live span (the current span in a context), read in C: an SDK
# span's own dict, or the public property. Raises AttributeError for a span without them.
live_attributes: Callable[[Any], Mapping[str, Any]] = (
    attrgetter("_attributes._dict") if FAST else attrgetter("attributes")
)


def put_if_sampled(put: Callable[[Any], Any]) -> Callable[[Any], None]:
    """A span processor's ``on_end`` that hands each sampled span to ``put``."""
    if FAST:

        def on_end(span: Any) -> None:
            try:
                ctx = span._context  # the field: no property call, no flags object
            except AttributeError:
                ctx = span.context
            if ctx is not None and ctx[3] & 1:
                put(span)

    else:

        def on_end(span: Any) -> None:
            ctx = span.context
            if ctx is not None and ctx.trace_flags.sampled:
                put(span)

    return on_end


def with_contents(span: Any, attributes: Any, events: Any, links: Any) -> Any:
    """A copy of an ended span with other attributes, events and links (what an exporter
    sends when the original cannot be encoded)."""
    import copy

    copied = copy.copy(span)
    copied._attributes = attributes
    copied._events = events
    copied._links = links
    return copied


def scrub_views(batch: Sequence[Any]) -> list[tuple[Mapping[str, Any], Sequence[Any], str | None]]:
    """What the scrubber reads of each ended span of ``batch``: its attributes (a plain
    mapping), its events and its status description; the fields read in one comprehension
    when every span is an SDK span (no call per span)."""
    if FAST:
        try:
            return [
                (
                    getattr(a := span._attributes, "_dict", a) or _NO_ATTRIBUTES,
                    span._events,
                    span._status._description,
                )
                for span in batch
            ]
        except AttributeError:
            pass
    return [(s.attributes or _NO_ATTRIBUTES, s.events or (), s.status.description) for s in batch]


_NO_ATTRIBUTES: Mapping[str, Any] = MappingProxyType({})


def event_with(event: Any, attributes: Mapping[str, Any]) -> Any:
    """``event`` with other attributes."""
    return sdk_trace.Event(event.name, attributes, event.timestamp)


def scrubbed_copy(
    span: Any,
    attributes: Mapping[str, Any],
    events: Sequence[Any] | None,
    description: str | None,
) -> Any:
    """A copy of an ended span with other attributes, and other events and status
    description when given (the scrubber's; the original stays as it was)."""
    bounded = BoundedAttributes(attributes=attributes, immutable=True)
    bounded.dropped = getattr(getattr(span, "_attributes", None), "dropped", 0)
    copied = with_contents(
        span, bounded, span._events if events is None else tuple(events), span._links
    )
    if description is not None:
        copied._status = Status(span.status.status_code, description)
    return copied


# -- the span model ------------------------------------------------------------------------------

_SIMPLE = frozenset((str, int, float, bool))
_SAMPLE = Decision.RECORD_AND_SAMPLE
_RECORD_ONLY = Decision.RECORD_ONLY
_INTERNAL = SpanKind.INTERNAL
_ApiSpan = trace_api.Span
# W3C Trace Context level 2's random flag (the API names it from 1.40 on).
_RANDOM_FLAG = getattr(TraceFlags, "RANDOM_TRACE_ID", 0x02)
# (sampled, random trace id) -> flags; TraceFlags are immutable ints, so they are shared.
_FLAGS = {
    (False, False): TraceFlags(TraceFlags.DEFAULT),
    (True, False): TraceFlags(TraceFlags.SAMPLED),
    (False, True): TraceFlags(_RANDOM_FLAG),
    (True, True): TraceFlags(TraceFlags.SAMPLED | _RANDOM_FLAG),
}
# The same flags indexed by (random trace id bit 0x02) | sampled: one list subscript per span.
_FLAG_LIST = (
    _FLAGS[False, False],
    _FLAGS[True, False],
    _FLAGS[False, True],
    _FLAGS[True, True],
)
_new = object.__new__
_tuple_new = tuple.__new__
_RANDOM = _RANDOM_FLAG
_EMPTY_STATE = TraceState()


# Span classes made by sfumato's tracers: their ``_context`` is valid by construction.
OWN_SPANS: set[type] = set()

# The SDK guards each span's state with its own lock; one lock shared by all spans guards
# the same few-instruction sections without allocating a lock per span. The attributes get
# their own shared lock: a span's lock is held while its attributes take theirs.
_SPAN_LOCK = threading.Lock()
_ATTRIBUTES_LOCK = threading.Lock()
# On the span path the lock is taken by its methods in a try/finally: a ``with`` statement
# costs about twice as much (two special-method lookups and an argument tuple per use).
_lock_span = _SPAN_LOCK.acquire
_unlock_span = _SPAN_LOCK.release


def _new_locks_after_fork() -> None:
    """In a forked child: new shared locks. Another thread of the parent may have held one
    at the moment of the fork, and that thread does not exist here to release it."""
    global _SPAN_LOCK, _ATTRIBUTES_LOCK, _lock_span, _unlock_span
    _SPAN_LOCK = threading.Lock()
    _ATTRIBUTES_LOCK = threading.Lock()
    _lock_span = _SPAN_LOCK.acquire
    _unlock_span = _SPAN_LOCK.release
    _Span._lock = _SPAN_LOCK
    _Attributes._lock = _ATTRIBUTES_LOCK


class _Attributes(BoundedAttributes):
    """``BoundedAttributes`` with a cheap constructor for clean dicts and direct reads.

    Each tracer makes a subclass holding its limits; what is the same for every span's
    attributes is a class attribute until one instance changes it (``dropped`` counts up,
    ``_immutable`` is set when the span ends), so a span's attributes set only ``_dict``.
    """

    _lock = _ATTRIBUTES_LOCK
    maxlen: int | None = None
    max_value_len: int | None = None
    dropped = 0
    _immutable = False

    def get(self, key: str, default: Any = None) -> Any:
        return self._dict.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._dict

    def items(self) -> Any:
        return self._dict.items()

    def keys(self) -> Any:
        return self._dict.keys()

    def values(self) -> Any:
        return self._dict.values()


def _bounded(given: types.Attributes, cls: type[_Attributes]) -> BoundedAttributes:
    """The SDK's container, cleaning and bounding ``given`` (what ``start_span`` falls back to
    when the attributes are not a clean dict within the limits)."""
    return BoundedAttributes(cls.maxlen, given, immutable=False, max_value_len=cls.max_value_len)


_UNSET = Status(StatusCode.UNSET)


class _Span(sdk_trace.Span):
    """An SDK span whose per-tracer constants are class attributes (see ``_span_class``)."""

    # Defaults shared by every span until one sets its own.
    _kind = _INTERNAL
    _status = _UNSET
    _end_time: int | None = None
    _events: Any = ()
    _links: Any = ()
    _record_exception = True
    _set_status_on_exception = True
    _trace_config = None
    _record_end_metrics: Callable[[], None] | None = None
    _lock = _SPAN_LOCK
    _tracer: FastTracer
    # The open trace of a buffering processor (see _Processors) this span ends into, when
    # its local root opened one; the root itself holds it too.
    _buffer: Any = None

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        attrs: Any = self._attributes
        if (
            type(value) in _SIMPLE
            and type(key) is str
            and key
            and (
                attrs.max_value_len is None
                or type(value) is not str
                or len(value) <= attrs.max_value_len
            )
        ):
            # What BoundedAttributes would store unchanged: set it under the span's lock,
            # the way every writer of a span's attributes does.
            _lock_span()
            try:
                if self._end_time is None:
                    d = attrs._dict
                    if key in d:
                        del d[key]  # re-set keys move to the end, as BoundedAttributes does
                        d[key] = value
                        return
                    if attrs.maxlen is None or len(d) < attrs.maxlen:
                        d[key] = value
                        return
            finally:
                _unlock_span()
        try:
            super().set_attribute(key, value)  # full, ended span, or a value to clean
        except Exception as exc:
            self._tracer._rejected("set_attribute", exc)

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        attrs: Any = self._attributes
        max_value_len = attrs.max_value_len
        for key, value in attributes.items():
            if (
                type(value) not in _SIMPLE
                or type(key) is not str
                or not key
                or (max_value_len is not None and type(value) is str and len(value) > max_value_len)
            ):
                break
        else:
            # All plain: set them under one acquisition of the span's lock, as set_attribute
            # does one by one, while they all fit.
            _lock_span()
            try:
                d = attrs._dict
                if self._end_time is None and (
                    attrs.maxlen is None or len(d) + len(attributes) <= attrs.maxlen
                ):
                    if d.keys().isdisjoint(attributes):  # all new: one update
                        d.update(attributes)
                        return
                    for key, value in attributes.items():
                        if key in d:
                            del d[key]  # re-set keys move to the end, as BoundedAttributes does
                        d[key] = value
                    return
            finally:
                _unlock_span()
        try:
            super().set_attributes(attributes)  # values to clean, no room, or an ended span
        except Exception as exc:
            self._tracer._rejected("set_attributes", exc)

    def update_name(self, name: str) -> None:
        super().update_name(name if type(name) is str else safe_text(name))

    def add_event(
        self, name: str, attributes: types.Attributes = None, timestamp: int | None = None
    ) -> None:
        try:
            if type(name) is not str:
                name = safe_text(name)
            if timestamp is not None and not (
                type(timestamp) is int and 0 <= timestamp < TIME_LIMIT
            ):
                timestamp = self._tracer._mend_time("add_event", timestamp)
            super().add_event(name, attributes, timestamp)
        except Exception as exc:
            self._tracer._rejected("add_event", exc)

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        try:
            super().record_exception(exception, attributes, timestamp, escaped)
        except Exception as exc:
            self._tracer._rejected("record_exception", exc)

    def _add_event(self, event: sdk_trace.EventBase) -> None:
        with _SPAN_LOCK:
            if self._end_time is None:
                events = self._events
                if type(events) is tuple:
                    events = self._events = BoundedList(self._limits.max_events)
                events.append(event)
                return
        sdk_trace.logger.warning("Tried calling _add_event on an ended span.")

    def _add_link(self, link: trace_api.Link) -> None:
        with _SPAN_LOCK:
            if self._end_time is None:
                links = self._links
                if type(links) is tuple:
                    links = self._links = BoundedList(self._limits.max_links)
                links.append(link)
                return
        sdk_trace.logger.warning("Tried calling _add_link on an ended span.")

    def end(self, end_time: int | None = None) -> None:
        if end_time is not None and not (type(end_time) is int and 0 <= end_time < TIME_LIMIT):
            try:
                end_time = self._tracer._mend_time("end", end_time)
            except Exception:
                end_time = None
        _lock_span()
        try:
            ended = self._end_time is not None
            if not ended:
                self._end_time = end_time if end_time is not None else time_ns()
                self._attributes._immutable = True  # type: ignore[union-attr]
        finally:
            _unlock_span()
        if ended:
            sdk_trace.logger.warning("Calling end() on an ended span.")
            return
        if self._record_end_metrics is not None:
            self._record_end_metrics()
        tracer = self._tracer
        procs = tracer._processors
        if procs is None:
            procs = tracer._current_processors()
        if procs.on_ending:
            for call in procs.on_ending:
                try:
                    call(self)
                except Exception:
                    tracer._processor_failed()
        buffer = self._buffer
        if buffer is not None and buffer.root is not self:
            # A local descendant of a root that opened its trace: appended to it, no call
            # (the buffering processor decides the trace when the root ends). Should the
            # trace be decided meanwhile, it goes through on_end unless the decision had it.
            spans = buffer.spans
            if spans is not None and len(spans) < buffer.room:
                spans.append(self)
                if buffer.spans is spans or buffer.included(self, spans):
                    for call in procs.on_end_others:
                        try:
                            call(self)
                        except Exception:
                            tracer._processor_failed()
                    return
        for call in procs.on_end:
            try:
                call(self)
            except Exception:
                tracer._processor_failed()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_locks_after_fork)


def _does_nothing(method: Any) -> bool:
    """True when ``method``'s body is empty (``pass`` or a docstring): no need to call it."""
    func = getattr(method, "__func__", method)
    code = getattr(func, "__code__", None)
    if code is None:
        return False
    for ins in dis.get_instructions(code):
        if ins.opname in ("RESUME", "NOP", "RETURN_VALUE", "RETURN_CONST", "CACHE"):
            if ins.opname == "RETURN_CONST" and ins.argval is not None:
                return False
            continue
        if ins.opname == "LOAD_CONST" and ins.argval is None:
            continue
        return False
    return True


class _Processors:
    """The provider's span processors as lists of bound methods, no-ops left out.

    ``buffering``: the one processor that buffers spans per trace and has ``open_trace``
    (sfumato's tail processor), else None. A local root span then opens its trace there as
    it starts, and its local descendants append themselves to it as they end instead of
    calling its ``on_end`` (``on_end_others``: the other processors' ``on_end``).
    """

    __slots__ = ("buffering", "on_end", "on_end_others", "on_ending", "on_start", "source")

    def __init__(self, source: Sequence[sdk_trace.SpanProcessor]) -> None:
        self.source = source
        self.on_start = [p.on_start for p in source if not _does_nothing(p.on_start)]
        self.on_ending = [p._on_ending for p in source if not _does_nothing(p._on_ending)]
        self.on_end = [p.on_end for p in source]
        buffering = [p for p in source if isinstance(p, BufferingProcessor)]
        self.buffering: BufferingProcessor | None = buffering[0] if len(buffering) == 1 else None
        self.on_end_others = [p.on_end for p in source if p is not self.buffering]


class FastTracer(sdk_trace.Tracer):
    """An SDK tracer with a shorter span path (see ``docs/internals.md``): the tracer sfumato's
    providers hand out when ``FAST`` (``SfumatoTracer`` adds the current-span manager)."""

    _span_cls: type[_Span]
    _processors: _Processors | None
    # The sampler's decision methods, bound (see bind_sampler).
    _sample_span: Callable[..., Any] | None
    _should_sample: Callable[..., Any]
    _plain: bool
    _failed = False
    # Counts calls on this tracer's spans that raised inside the SDK (a value whose str()
    # raises, record_exception of a non-exception): set by the pipeline.
    _api_errors: Any = None

    def _rejected(self, call: str, exc: Exception) -> None:
        rejected(self._api_errors, call, exc)

    def _mend_time(self, call: str, value: object) -> int | None:
        return mend_time(self._api_errors, call, value)

    @property
    def scope(self) -> Any:
        """The tracer's instrumentation scope."""
        return self._instrumentation_scope

    def bind_sampler(self, sampler: Any) -> None:
        """Decide this tracer's spans with ``sampler`` from the next span on. A span reads
        the decision method once, so it asks the old sampler or the new one, never both;
        the plain-attributes promise is dropped before the swap and given after it, so no
        span relies on a promise its sampler did not make."""
        # A sampler of sfumato's own (a SpanSampler) also takes the parent span context the
        # tracer has already looked up, and may promise plain attributes.
        plain = isinstance(sampler, SpanSampler) and (
            sampler.plain_attributes is True and self._span_limits.max_span_attribute_length is None
        )
        self._plain = False
        self.sampler = sampler
        self._span_cls._sampler = sampler
        self._should_sample = sampler.should_sample
        self._sample_span = sampler.sample_span if isinstance(sampler, SpanSampler) else None
        self._plain = plain

    def _prepare(self) -> None:
        """Called once, when the provider makes this tracer."""
        self._span_cls = type(
            "SfumatoSpan",
            (_Span,),
            {
                "_resource": self.resource,
                "_instrumentation_info": self.instrumentation_info,
                "_instrumentation_scope": self._instrumentation_scope,
                "_limits": self._span_limits,
                "_span_processor": self.span_processor,
                "_sampler": self.sampler,
                "_tracer": self,
                "__module__": __name__,
            },
        )
        OWN_SPANS.add(self._span_cls)
        self.bind_sampler(self.sampler)
        self._processors = None
        self._single = (self.span_processor,)
        self._multi = (
            self.span_processor
            if type(self.span_processor) is sdk_trace.SynchronousMultiSpanProcessor
            else None
        )
        ids = self.id_generator
        if type(ids) is RandomIdGenerator:
            self._random_ids = True
            self._getrandbits: Callable[[int], int] | None = random.getrandbits
        else:
            self._random_ids = ids.is_trace_id_random()
            self._getrandbits = None
        self._random_bit = _RANDOM if self._random_ids else 0  # a root's random-id flag bit
        self._metrics = not isinstance(self._tracer_metrics, NoOpTracerMetrics)
        limits = self._span_limits
        # Attributes a span may start with before the SDK's container takes over.
        room = limits.max_span_attributes
        self._room = sys.maxsize if room is None else room
        self._attributes_cls = type(
            "SfumatoAttributes",
            (_Attributes,),
            {
                "maxlen": limits.max_span_attributes,
                "max_value_len": limits.max_span_attribute_length,
                "__module__": __name__,
            },
        )

    def _set_resource(self, resource: Any) -> None:
        super()._set_resource(resource)
        self._span_cls._resource = resource

    # -- processors ------------------------------------------------------------------------

    def _current_processors(self) -> _Processors:
        """The processors as the span path calls them, made again after the provider's
        ``add_span_processor`` (which resets ``_processors``)."""
        multi = self._multi
        source = multi._span_processors if multi is not None else self._single
        cached = self._processors
        if cached is None or cached.source is not source:
            cached = self._processors = _Processors(source)
        return cached

    def _processor_failed(self) -> None:
        """Call from the ``except`` block that caught a processor's exception."""
        if strict():
            raise  # SFUMATO_STRICT=1: the processor's exception reaches the caller
        if not self._failed:
            self._failed = True
            log.warning(
                "sfumato: a span processor raised; the span goes on to the others (logged once)",
                exc_info=True,
            )

    # -- spans -----------------------------------------------------------------------------

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = _INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[trace_api.Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        *,
        current: Context | None = None,
        trusted: bool = False,
    ) -> trace_api.Span:
        """The SDK's ``start_span``, and two keywords for callers that know more:
        ``current`` is the context the parent is read from when ``context`` is None (a
        caller that has already read the current context passes it, so it is not read
        again); ``trusted=True`` says that ``attributes`` has only non-empty string keys and
        plain values (str, int, float, bool), so they need no second look."""
        # One frame and a zero-cost try: whatever goes wrong, the caller gets a span.
        try:
            # Arguments the exporter could not encode are mended or dropped here, on the
            # caller's thread, not found later by the export worker (a batch lost for one).
            if type(name) is not str:
                name = safe_text(name)
            if kind is not _INTERNAL and type(kind) is not SpanKind:
                kind = mend_kind(self._api_errors, kind)
            if start_time is not None and not (
                type(start_time) is int and 0 <= start_time < TIME_LIMIT
            ):
                start_time = mend_time(self._api_errors, "start_span", start_time)
            if current is None:
                current = context if context is not None else current_context()
            parent_span = current.get(SPAN_KEY)
            parent: SpanContext | None = None
            own_parent = False
            if parent_span is not None:
                if type(parent_span) in OWN_SPANS:
                    parent = parent_span._context  # type: ignore[attr-defined]  # ours: valid
                    own_parent = True
                elif isinstance(parent_span, _ApiSpan):
                    parent = parent_span.get_span_context()
                    if parent is not None:
                        if not isinstance(parent, SpanContext):
                            raise TypeError("parent_span_context must be a SpanContext or None.")
                        if not parent.is_valid:
                            parent = None
            if not self._tracer_config.is_enabled:
                return NonRecordingSpan(parent or INVALID_SPAN_CONTEXT)
            links = links or ()
            bits = self._getrandbits
            if parent is None:
                trace_id = (
                    (bits(128) or 1) if bits is not None else self.id_generator.generate_trace_id()
                )
                random_bit = self._random_bit
            else:
                trace_id = parent[0]
                random_bit = parent[3] & _RANDOM
            sample_span = self._sample_span
            if sample_span is not None:
                result = sample_span(parent, context, trace_id, name, kind, attributes, links)
            else:
                result = self._should_sample(context, trace_id, name, kind, attributes, links)
            decision = result.decision
            sampled = decision is _SAMPLE
            flags = _FLAG_LIST[random_bit | sampled]
            state = result.trace_state
            if state is None:
                state = _EMPTY_STATE
            if bits is not None:
                # Both ids are valid by construction: skip SpanContext's range checks.
                span_context = _tuple_new(
                    SpanContext,
                    (trace_id, bits(64) or 1, False, flags, state, True),
                )
            else:
                span_id = (
                    (bits(64) or 1) if bits is not None else self.id_generator.generate_span_id()
                )
                span_context = SpanContext(trace_id, span_id, False, flags, result.trace_state)
            record_end_metrics = (
                self._tracer_metrics.start_span(parent, decision) if self._metrics else None
            )
            if not sampled and decision is not _RECORD_ONLY:
                return NonRecordingSpan(span_context)
            span = _new(self._span_cls)
            span._name = name
            span._context = span_context
            span._parent = parent
            # The attribute container, built directly when every key is a non-empty string
            # and every value a plain scalar within the limits (what cleaning would leave
            # unchanged). One pass in Python: for the few attributes a span starts with,
            # cheaper than map/issuperset checks; inline, one frame less per span.
            given = result.attributes
            cls: type[_Attributes] = self._attributes_cls
            container: Any = None
            if not given:
                container = _new(cls)
                container._dict = {}
            elif len(given) <= self._room:
                if self._plain:
                    # The sampler adds only plain values, and a dict it returns that is not
                    # the caller's is new (plain_attributes), and no value length is limited:
                    # check the caller's attributes alone (unless ``trusted``), and take that
                    # new dict as the span's own.
                    plain = True
                    if attributes and not trusted:
                        for key, value in attributes.items():
                            if type(value) not in _SIMPLE or type(key) is not str or not key:
                                plain = False
                                break
                    if plain:
                        container = _new(cls)
                        container._dict = (
                            dict(given) if given is attributes or type(given) is not dict else given
                        )
                elif (max_value_len := cls.max_value_len) is None:  # no length to check
                    for key, value in given.items():
                        if type(value) not in _SIMPLE or type(key) is not str or not key:
                            break
                    else:
                        container = _new(cls)
                        container._dict = dict(given)
                else:
                    for key, value in given.items():
                        if (
                            type(value) not in _SIMPLE
                            or type(key) is not str
                            or not key
                            or (type(value) is str and len(value) > max_value_len)
                        ):
                            break
                    else:
                        container = _new(cls)
                        container._dict = dict(given)
            span._attributes = container if container is not None else _bounded(given, cls)
            if kind is not _INTERNAL:
                span._kind = kind
            if links:
                span._links = span._new_links(links)
            if not record_exception:
                span._record_exception = False
            if not set_status_on_exception:
                span._set_status_on_exception = False
            if record_end_metrics is not None:
                span._record_end_metrics = record_end_metrics
            span._start_time = start_time if start_time is not None else time_ns()
            procs = self._processors
            if procs is None:
                procs = self._current_processors()
            buffering = procs.buffering
            if buffering is not None:
                if own_parent:
                    buffer = parent_span._buffer  # type: ignore[attr-defined]
                    if buffer is not None and buffer.owner is buffering:
                        span._buffer = buffer
                elif parent is None or parent[2]:
                    span._buffer = buffering.open_trace(span, trace_id, span_context[1])
            on_start = procs.on_start
            if on_start:
                for call in on_start:
                    try:
                        call(span, parent_context=context)
                    except Exception:
                        self._processor_failed()
            return span
        except Exception:
            if strict():
                raise  # SFUMATO_STRICT=1: e.g. a sampler's exception reaches the caller
            if not self._failed:
                self._failed = True
                log.warning(
                    "sfumato: could not start span %r; it records nothing (logged once)",
                    name,
                    exc_info=True,
                )
            return trace_api.INVALID_SPAN


class FastTracerProvider(sdk_trace.TracerProvider):
    """The SDK's provider, handing out tracers of ``tracer_class`` (a ``FastTracer``)."""

    tracer_class: type[FastTracer] = FastTracer
    # The counter of span calls that raised (stats ``spans.api_errors``), set by the pipeline.
    api_errors: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if PROBLEMS:
            raise RuntimeError(
                f"sfumato's fast span path does not fit opentelemetry-sdk {SDK_VERSION} "
                f"({'; '.join(PROBLEMS)}): build the SDK's own provider instead "
                "(configure() does)"
            )
        super().__init__(*args, **kwargs)

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace_api.Tracer:
        tracer = super().get_tracer(*args, **kwargs)
        if type(tracer) is sdk_trace.Tracer:
            with self._tracers_lock:
                if type(tracer) is sdk_trace.Tracer:
                    tracer.__class__ = self.tracer_class
                    tracer._api_errors = self.api_errors  # type: ignore[attr-defined]
                    tracer._prepare()  # type: ignore[attr-defined]
        return tracer

    def tracers(self) -> list[FastTracer]:
        """Every tracer this provider handed out (one per instrumentation scope)."""
        with self._tracers_lock:
            return list(self._tracers.values())  # type: ignore[arg-type]

    def add_span_processor(self, span_processor: sdk_trace.SpanProcessor) -> None:
        super().add_span_processor(span_processor)
        # The tracers keep the processors as lists of bound methods: have them made again.
        for tracer in self.tracers():
            tracer._processors = None


def swap_sampler(provider: Any, sampler: Any) -> None:
    """Make ``sampler`` the sampler of ``provider`` and of every tracer it handed out (each
    span asks the old one or the new one, never both; see ``FastTracer.bind_sampler``)."""
    provider.sampler = sampler
    if isinstance(provider, FastTracerProvider):
        for tracer in provider.tracers():
            tracer.bind_sampler(sampler)
        return
    for tracer in list(getattr(provider, "_tracers", {}).values()):
        tracer.sampler = sampler  # the SDK's own tracer reads its sampler per span


class OnEndingForwarder:
    """For a span processor that wraps another: forwards the SDK's ``_on_ending`` hook to
    ``self.on_ending(span)``."""

    def on_ending(self, span: Any) -> None:
        """Called as a span ends, before it is immutable (the SDK's ``_on_ending``)."""

    def _on_ending(self, span: Any) -> None:
        self.on_ending(span)


def on_ending_of(processor: Any) -> Callable[[Any], None] | None:
    """``processor``'s ``_on_ending`` hook, or None when it does nothing."""
    method = getattr(processor, "_on_ending", None)
    return None if method is None or _does_nothing(method) else method


def silence_reader(reader: Any, exporter: Any) -> None:
    """A ``PeriodicExportingMetricReader`` inherited by a forked child: its thread (restarted
    by its at-fork hook) ends at once, and its last collection goes to ``exporter``."""
    reader._exporter = exporter
    reader._shutdown_event.set()


def exporter_preferences(exporter: Any) -> tuple[Any, Any]:
    """A metric exporter's preferred temporality and aggregation (None: the SDK's default)."""
    return (
        getattr(exporter, "_preferred_temporality", None),
        getattr(exporter, "_preferred_aggregation", None),
    )


def otlp_log_exporter(protocol: str) -> Any:
    """The OTLP log exporter class for ``grpc`` or ``http/protobuf``."""
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc import _log_exporter as grpc

        return grpc.OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http import _log_exporter as http

    return http.OTLPLogExporter


def encode_logs(records: Sequence[Any]) -> Any:
    """The OTLP protobuf request of ``records``."""
    from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs as encode

    return encode(records)


# -- OTLP/gRPC export status ----------------------------------------------------------------------


class GrpcStatus:
    """Mixed into the SDK's OTLP/gRPC exporters: ``sfumato_failure()`` is the gRPC status
    code of the last failed export (and the RetryInfo delay the backend sent).

    The SDK catches the ``RpcError`` and returns FAILURE; the one place to see its code is
    the stub it calls: this wraps the ``_client`` that ``_initialize_channel_and_stub``
    makes. Should a later SDK rename them, the hook does nothing and every failure is
    treated as retryable.

    The status is the calling thread's: export workers may call ``export`` at once
    (``sfumato_concurrent``), each reading the failure of its own call.
    """

    sfumato_concurrent = True
    _sfumato_calls: threading.local | None = None

    def _initialize_channel_and_stub(self) -> None:
        if self._sfumato_calls is None:
            self._sfumato_calls = threading.local()
        super()._initialize_channel_and_stub()  # type: ignore[misc]
        client = getattr(self, "_client", None)
        if client is not None and not isinstance(client, _RecordingStub):
            self._client = _RecordingStub(client, self)

    def export(self, batch: Any, *args: Any, **kwargs: Any) -> Any:
        self.sfumato_record(None)
        return super().export(batch, *args, **kwargs)  # type: ignore[misc]

    def sfumato_record(self, failure: tuple[str, float | None, str] | None) -> None:
        if self._sfumato_calls is not None:
            self._sfumato_calls.last = failure

    def sfumato_failure(self) -> tuple[str, float | None, str] | None:
        last: tuple[str, float | None, str] | None = getattr(self._sfumato_calls, "last", None)
        return last


class _RecordingStub:
    def __init__(self, stub: Any, owner: GrpcStatus) -> None:
        self._stub = stub
        self._owner = owner

    def Export(self, *args: Any, **kwargs: Any) -> Any:
        import grpc

        try:
            return self._stub.Export(*args, **kwargs)
        except grpc.RpcError as error:
            try:
                code = error.code().name
            except Exception:
                raise error from None  # no code to read: the failure stays retryable
            delay: float | None = None
            try:
                info = dict(error.trailing_metadata() or ()).get("google.rpc.retryinfo-bin")
                if info is not None:
                    from google.rpc.error_details_pb2 import RetryInfo  # type: ignore[import-untyped]

                    parsed = RetryInfo.FromString(info)
                    delay = parsed.retry_delay.seconds + parsed.retry_delay.nanos / 1e9
            except Exception:
                delay = None  # a malformed RetryInfo: the code still counts, without a delay
            self._owner.sfumato_record((code, delay, str(getattr(self._owner, "_endpoint", ""))))
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stub, name)


# What the OTLP/gRPC exporters' ``_export`` uses, which GrpcBytes relies on.
_GRPC_EXPORT_NAMES = frozenset(("_client", "_translate_data", "Export", "_channel"))


def grpc_bytes_fit(cls: type) -> bool:
    """Whether the SDK's OTLP/gRPC exporter class ``cls`` exports as ``GrpcBytes`` expects
    (else sfumato leaves its encoder in place)."""
    code = getattr(getattr(cls, "_export", None), "__code__", None)
    return (
        code is not None
        and set(code.co_names) >= _GRPC_EXPORT_NAMES
        and callable(getattr(cls, "_initialize_channel_and_stub", None))
    )


class GrpcBytes:
    """Mixed into the SDK's OTLP/gRPC span and log exporters: the request is encoded by
    ``sfumato_encode(batch) -> bytes`` (sfumato's own encoder) and sent pre-serialized, by a
    generic unary call on the exporter's own channel (its compression, credentials, deadline
    and retries stay the SDK's). ``sfumato_method`` is the RPC's path, ``sfumato_response``
    its response class."""

    sfumato_method: str
    sfumato_response: Any

    @staticmethod
    def sfumato_encode(batch: Sequence[Any], /) -> bytes:
        raise NotImplementedError

    def _translate_data(self, data: Sequence[Any]) -> bytes:
        return self.sfumato_encode(data)

    def _initialize_channel_and_stub(self) -> None:
        super()._initialize_channel_and_stub()  # type: ignore[misc]
        self._client = _BytesStub(
            self._channel.unary_unary(  # type: ignore[attr-defined]
                self.sfumato_method,
                request_serializer=None,
                response_deserializer=self.sfumato_response.FromString,
            )
        )


class _BytesStub:
    """A stub whose ``Export`` takes the request already serialized."""

    __slots__ = ("_call",)

    def __init__(self, call: Any) -> None:
        self._call = call

    def Export(self, request: bytes, metadata: Any = None, timeout: float | None = None) -> Any:
        return self._call(request, metadata=metadata, timeout=timeout)


# What the OTLP/HTTP exporters' ``export`` uses, which HttpBytes.export does as they do.
_HTTP_EXPORT_NAMES = frozenset(
    ("_shutdown", "_metrics", "export_operation", "_max_request_size", "_client", "export")
)


def http_bytes_fit(cls: type) -> bool:
    """Whether the SDK's OTLP/HTTP exporter class ``cls`` exports as ``HttpBytes`` expects
    (else sfumato leaves its encoder in place)."""
    code = getattr(getattr(cls, "export", None), "__code__", None)
    return code is not None and set(code.co_names) >= _HTTP_EXPORT_NAMES


class HttpBytes:
    """Mixed into the SDK's OTLP/HTTP span and log exporters: ``export`` encodes the batch
    with ``sfumato_encode(batch) -> bytes`` (sfumato's own encoder) and hands the bytes to
    the exporter's own HTTP client, which compresses, sends, retries and backs off as the
    SDK's does; the size limit, the accounting and the result are the SDK's ``export``'s."""

    sfumato_result: Any  # SpanExportResult or LogRecordExportResult

    @staticmethod
    def sfumato_encode(batch: Sequence[Any], /) -> bytes:
        raise NotImplementedError

    def export(self, batch: Sequence[Any]) -> Any:
        failure = self.sfumato_result.FAILURE
        if self._shutdown:  # type: ignore[attr-defined]
            log.warning("Exporter already shutdown, ignoring batch")
            return failure
        with self._metrics.export_operation(len(batch)) as result:  # type: ignore[attr-defined]
            try:
                data = self.sfumato_encode(batch)
            except Exception as error:
                log.error("Failed to encode batch: %s", error)
                result.error = error
                return failure
            limit = self._max_request_size  # type: ignore[attr-defined]
            if limit is not None and 0 < limit < len(data):
                log.warning(
                    "Dropping batch: serialized size %d bytes exceeds max_request_size %d bytes.",
                    len(data),
                    limit,
                )
                result.error = ValueError(
                    f"Serialized request size {len(data)} bytes exceeds max_request_size "
                    f"{limit} bytes."
                )
                return failure
            sent = self._client.export(data)  # type: ignore[attr-defined]
            if not sent.success:
                result.error = sent.error
                if sent.status_code is not None:
                    result.error_attrs = {"http.response.status_code": sent.status_code}
                return failure
        return self.sfumato_result.SUCCESS


# -- metric series: the SDK's record path, shortened ------------------------------------------

# Recording into an SDK instrument costs several microseconds: a ``Measurement`` dataclass
# whose constructor cleans every attribute, the exemplar filter, then per reader and view a
# copy of the attributes, an aggregation key hashed value by value, and the aggregation's own
# update. For a caller whose attribute sets are few and already clean (the cardinality-guarded
# sets of the Botticelli metrics), most of that work is the same for every record.
#
# ``SeriesRecorder(instrument, method).series(attributes)`` gives a ``Series`` that holds what
# the SDK would compute for that attribute set: the view matches of every reader, each one's
# aggregation key, and the aggregation found under it (kept while the match's table is the
# same object: a cumulative table never drops one, a delta collection swaps the table).
# ``series.record(value)`` then does only what varies, through the same SDK objects and under
# the same locks: the value checks, the context, the exemplar decision, the sum or histogram
# update (any other aggregation through its own ``aggregate``) and the exemplar offer. With
# anything else (a proxy or no-op instrument, the SDK's own path, attributes that need
# cleaning, a value the SDK would warn about) the instrument's own method does the work.

_hash_attributes: Callable[[Any], Any] | None = None
_ViewInstrumentMatch: type | None = None
# Instruments whose values must not be negative (the SDK warns and drops those).
_NON_NEGATIVE: frozenset[type] = frozenset()
_KNOWN: frozenset[type] = frozenset()
# Instruments whose aggregation does not depend on the order or time of its values
# relative to other series' records: their values may wait in a buffer (not gauges).
_DEFERRABLE: frozenset[type] = frozenset()
_SUM: Any = None
_HISTOGRAM: Any = None
if FAST:
    _hash_attributes = _vim_module._hash_attributes
    _ViewInstrumentMatch = _vim_module._ViewInstrumentMatch
    _NON_NEGATIVE = frozenset((_Counter, _Histogram))
    _KNOWN = frozenset((_Counter, _Histogram, _UpDownCounter, _Gauge))
    _DEFERRABLE = frozenset((_Counter, _Histogram, _UpDownCounter))
    # The two aggregations updated inline; any other goes through its own ``aggregate``.
    _SUM = _aggregation._SumAggregation
    _HISTOGRAM = _aggregation._ExplicitBucketHistogramAggregation
_set = object.__setattr__
NUMBERS = (int, float)
# A measurement consumer's reader storages: replaced, never mutated, by the SDK.
reader_storages_of: Callable[[Any], Any] = attrgetter("_reader_storages")
_SCALARS = frozenset((str, bool, int, float))
# Values a deferred series keeps before its recording thread folds them in itself.
FOLD_AT = 64


def _clean(attributes: Mapping[str, Any]) -> bool:
    """True when the SDK's attribute cleaning would leave ``attributes`` as they are."""
    return _SCALARS.issuperset(map(type, attributes.values())) and all(
        type(k) is str and k for k in attributes
    )


def _sampled(context: Any) -> bool:
    """The trace-based exemplar filter's rule: the context's current span is sampled."""
    span = context.get(SPAN_KEY)
    if span is None:
        return False
    sc = getattr(span, "_context", None)  # SDK and non-recording spans keep it here
    if type(sc) is SpanContext:
        return bool(sc[3] & 1)  # (trace_id, span_id, is_remote, flags, state, is_valid)
    return bool(span.get_span_context().trace_flags.sampled)


class SeriesRecorder:
    """Records into one synchronous SDK instrument.

    ``recorder(value, attributes)`` is the instrument's own method; ``recorder.series(
    attributes)`` gives a :class:`Series` whose ``record(value)`` takes the short path.
    """

    __slots__ = ("call", "consumer", "deferrable", "fast", "instrument", "non_negative")

    def __init__(self, instrument: Any, method: str) -> None:
        self.instrument = instrument
        self.call: Callable[..., Any] = getattr(instrument, method)
        kind = type(instrument)
        consumer: Any = getattr(instrument, "_measurement_consumer", None)
        self.fast = (
            _hash_attributes is not None
            and kind in _KNOWN
            and type(consumer) is SynchronousMeasurementConsumer
            and hasattr(instrument, "_meter_config")
        )
        self.consumer = consumer
        self.non_negative = kind in _NON_NEGATIVE
        self.deferrable = kind in _DEFERRABLE

    def __call__(self, value: Any, attributes: Mapping[str, Any] | None) -> None:
        self.call(value, attributes)

    def series(self, attributes: Mapping[str, Any]) -> Series:
        """The series of ``attributes`` (copied: later changes to the mapping do not count)."""
        return Series(self, dict(attributes))


class _Match:
    """One view match of a series, and the aggregation it found in the match's table."""

    __slots__ = ("aggregation", "attributes", "key", "table", "vim")

    def __init__(self, vim: Any, key: Any, attributes: dict[str, Any]) -> None:
        self.vim = vim
        self.key = key  # the SDK's aggregation key, hashed once
        self.attributes = attributes
        self.table: Any = None
        self.aggregation: Any = None

    def find(self, table: Any) -> Any:
        """The aggregation of this series in ``table`` (created the SDK's way if missing);
        remembered while ``table`` is the match's table. Delta matches: call under the
        match's lock."""
        vim = self.vim
        aggregation = table.get(self.key)
        if aggregation is None:
            if vim._reset_on_collect:
                aggregation = vim._get_or_create_aggregation(self.key, dict(self.attributes))
            else:
                with vim._lock:
                    aggregation = vim._get_or_create_aggregation(self.key, dict(self.attributes))
        if table.get(self.key) is aggregation:  # not the overflow point
            self.table = table
            self.aggregation = aggregation
        return aggregation


class _FlushingCollect:
    """A reader storage's ``collect``, folding the pending values of its consumer's series
    first: a collection (periodic, ``force_flush``, shutdown) sees every value recorded
    before it began."""

    __slots__ = ("collect", "registry")

    def __init__(self, collect: Callable[[], Any], registry: list[Series]) -> None:
        self.collect = collect
        self.registry = registry

    def __call__(self) -> Any:
        for series in self.registry[:]:  # a copy: series may register meanwhile
            if series.pending:
                try:
                    series.fold()
                except Exception:  # pragma: no cover - a fold never fails on clean values
                    series.pending.clear()
        return self.collect()


def _hook(consumer: Any, storages: Any) -> list[Series]:
    """The registry of ``consumer``'s deferred series; every storage in ``storages`` folds
    them before it collects. Call under ``_HOOK_LOCK``."""
    registry: list[Series] = consumer.__dict__.setdefault("_sfumato_series", [])
    for storage in storages.values():
        if type(storage.__dict__.get("collect")) is not _FlushingCollect:
            storage.collect = _FlushingCollect(storage.collect, registry)
    return registry


_HOOK_LOCK = Lock()


class Series:
    """One attribute set of one instrument: ``record(value)``.

    Bound to the reader storages of the moment; when the SDK replaces them (a reader added
    or removed) the series binds again. A value or an attribute set the fast path cannot
    take (see the module docstring) goes through the instrument's own method.

    With exemplars off, a counter's or histogram's values wait in ``pending`` (an append,
    the whole cost of a record) and are folded into the SDK's aggregations by the recording
    thread every ``FOLD_AT`` values and before every collection of the provider's readers
    (the storages' ``collect`` is wrapped for that), so a collection never misses a value
    recorded before it. The SDK's checks of each value (finite, not negative where the
    instrument refuses that, the meter enabled) run on the batch when it is folded; a value
    that fails them goes through the instrument's own method, as it would have at once.
    A series stays registered with its provider while that lives.
    """

    __slots__ = (
        "attributes",
        "consumer",
        "deferred",
        "fast",
        "fold_lock",
        "matches",
        "pending",
        "recorder",
        "registered",
        "storages",
    )

    def __init__(self, recorder: SeriesRecorder, attributes: dict[str, Any]) -> None:
        self.recorder = recorder
        self.consumer = recorder.consumer
        self.attributes = attributes
        self.fast = recorder.fast and _clean(attributes)
        self.storages: Any = None
        self.matches: list[_Match] = []
        self.deferred = False
        self.pending: list[Any] = []
        self.fold_lock = Lock()
        self.registered = False

    def _bind(self, storages: Any) -> bool:
        if self.pending:  # values recorded under the previous readers go to those
            self.fold()
        consumer = self.recorder.consumer
        deferred = (
            self.recorder.deferrable
            and type(consumer._sdk_config.exemplar_filter) is AlwaysOffExemplarFilter
        )
        self.deferred = False
        matches: list[_Match] = []
        instrument = self.recorder.instrument
        for storage in storages.values():
            if type(storage) is not MetricReaderStorage:
                return False
            for vim in storage._get_or_init_view_instrument_match(instrument):
                if type(vim) is not _ViewInstrumentMatch:
                    return False
                keys = vim._view._attribute_keys
                attrs = self.attributes
                kept = attrs if keys is None else {k: v for k, v in attrs.items() if k in keys}
                matches.append(_Match(vim, _hash_attributes(kept), dict(kept)))  # type: ignore[misc]
        self.matches = matches
        if deferred:
            with _HOOK_LOCK:
                registry = _hook(consumer, storages)
                if not self.registered:
                    registry.append(self)
                    self.registered = True
        self.storages = storages
        self.deferred = deferred
        return True

    def fold(self) -> None:
        """Aggregate the values waiting in ``pending``, in their order, each exactly once."""
        with self.fold_lock:
            pending = self.pending
            count = len(pending)
            if not count:
                return
            values = pending[:count]
            # Values appended meanwhile by other threads sit after these, and stay.
            del pending[:count]
            recorder = self.recorder
            config = recorder.instrument._meter_config
            if config is not None and not config.is_enabled:
                return  # the SDK drops what a disabled meter records
            total = sum(values)
            if total - total != 0 or (recorder.non_negative and min(values) < 0):
                # A non-finite value, or a negative one where the SDK refuses it: those go
                # through the instrument's own method (which warns and ignores them).
                good = []
                for value in values:
                    if value - value != 0 or (value < 0 and recorder.non_negative):
                        recorder.call(value, self.attributes)
                    else:
                        good.append(value)
                if not good:
                    return
                values = good
            for match in self.matches:
                vim = match.vim
                if vim._reset_on_collect:
                    # A delta collection swaps the aggregations out: aggregate under its lock.
                    with vim._lock:
                        table = vim._attributes_aggregation
                        hit = table is match.table
                        self._add(match.aggregation if hit else match.find(table), values)
                    continue
                table = vim._attributes_aggregation
                hit = table is match.table
                self._add(match.aggregation if hit else match.find(table), values)

    def _add(self, aggregation: Any, values: list[Any]) -> None:
        """What the aggregation's ``aggregate`` does for each value, exemplars off."""
        kind = type(aggregation)
        if kind is _SUM:
            with aggregation._lock:
                total = aggregation._value
                for value in values:
                    total = value if total is None else total + value
                aggregation._value = total
        elif kind is _HISTOGRAM:
            with aggregation._lock:
                counts = aggregation._value
                if counts is None:
                    counts = aggregation._value = aggregation._get_empty_bucket_counts()
                boundaries = aggregation._boundaries
                total = aggregation._sum
                for value in values:
                    total += value
                    counts[bisect_left(boundaries, value)] += 1
                aggregation._sum = total
                if aggregation._record_min_max:
                    low = min(values)
                    high = max(values)
                    if low < aggregation._min:
                        aggregation._min = low
                    if high > aggregation._max:
                        aggregation._max = high
        else:
            context = current_context()
            for value in values:
                aggregation.aggregate(self._measurement(value, context), False)

    def record(self, value: Any) -> None:
        # The common case first: a deferred series still bound to the consumer's readers
        # appends the value; the checks the SDK makes per value run when it is folded.
        if (
            self.deferred
            and type(value) in NUMBERS
            and self.storages is reader_storages_of(self.consumer)
        ):
            pending = self.pending
            pending.append(value)
            if len(pending) >= FOLD_AT:
                self.fold()
            return
        self._record(value)

    def _record(self, value: Any) -> None:
        recorder = self.recorder
        if not self.fast:
            recorder.call(value, self.attributes)
            return
        config = recorder.instrument._meter_config
        if (
            (config is not None and not config.is_enabled)
            or type(value) not in NUMBERS
            or value - value != 0  # inf or nan: the SDK warns and ignores it
            or (value < 0 and recorder.non_negative)
        ):
            recorder.call(value, self.attributes)
            return
        consumer = recorder.consumer
        storages = consumer._reader_storages  # replaced, never mutated, by the SDK
        if storages is not self.storages and not self._bind(storages):
            self.fast = False
            recorder.call(value, self.attributes)
            return
        if self.deferred:
            pending = self.pending
            pending.append(value)
            if len(pending) >= FOLD_AT:
                self.fold()
            return
        exemplars = consumer._sdk_config.exemplar_filter
        kind = type(exemplars)
        context: Any = None  # read only when something needs it
        if kind is AlwaysOffExemplarFilter:
            sample = False
        elif kind is TraceBasedExemplarFilter:
            context = current_context()
            # _sampled(context), inline: the common case is a span of this SDK's shape.
            span = context.get(SPAN_KEY)
            if span is None:
                sample = False
            else:
                sc = getattr(span, "_context", None)
                sample = bool(sc[3] & 1) if type(sc) is SpanContext else _sampled(context)
        elif kind is AlwaysOnExemplarFilter:
            context = current_context()
            sample = True
        else:
            context = current_context()
            sample = exemplars.should_sample(value, time_ns(), self.attributes, context)
        measurement: Any = None
        for match in self.matches:
            vim = match.vim
            if vim._reset_on_collect:
                # A delta collection swaps the aggregations out: aggregate under its lock.
                with vim._lock:
                    table = vim._attributes_aggregation
                    hit = table is match.table
                    aggregation = match.aggregation if hit else match.find(table)
                    if measurement is None:
                        measurement = self._measurement(value, context or current_context())
                    aggregation.aggregate(measurement, sample)
                continue
            # A cumulative table never drops an aggregation: the one found before holds.
            table = vim._attributes_aggregation
            hit = table is match.table
            aggregation = match.aggregation if hit else match.find(table)
            kind = type(aggregation)
            if kind is _SUM:
                # _SumAggregation.aggregate, inline.
                with aggregation._lock:
                    total = aggregation._value
                    aggregation._value = value if total is None else total + value
            elif kind is _HISTOGRAM:
                # _ExplicitBucketHistogramAggregation.aggregate, inline.
                with aggregation._lock:
                    counts = aggregation._value
                    if counts is None:
                        counts = aggregation._value = aggregation._get_empty_bucket_counts()
                    aggregation._sum += value
                    if aggregation._record_min_max:
                        if value < aggregation._min:
                            aggregation._min = value
                        if value > aggregation._max:
                            aggregation._max = value
                    counts[bisect_left(aggregation._boundaries, value)] += 1
            else:
                if measurement is None:
                    measurement = self._measurement(value, context or current_context())
                aggregation.aggregate(measurement, sample)
                continue
            if sample:
                aggregation._reservoir.offer(value, time_ns(), self.attributes, context)

    def _measurement(self, value: Any, context: Any) -> Any:
        """The SDK's Measurement, built without re-cleaning the (clean) attributes."""
        measurement = _new(Measurement)
        _set(
            measurement,
            "__dict__",
            {
                "value": value,
                "time_unix_nano": time_ns(),
                "instrument": self.recorder.instrument,
                "context": context,
                "attributes": self.attributes,
            },
        )
        return measurement
