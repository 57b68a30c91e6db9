"""sfumato's tracer: the SDK's span model on a shorter path.

Spans are SDK ``Span`` objects (so every exporter and processor takes them as they are), but
starting and ending one does less than the SDK's generic path:

- ``start_as_current_span`` is a small class, not a generator wrapped in a decorator;
- the current context is read once per span, straight from the runtime's ContextVar;
- what is the same for every span of a tracer (resource, scope, limits, processors) lives
  on a per-tracer span class instead of being copied onto each span;
- a small dict of plain attribute values becomes the span's attributes without being
  cleaned key by key; anything else goes through the SDK's ``BoundedAttributes``;
- no lock, event list or link list is allocated per span: one shared lock guards span state
  (as the SDK's per-span lock does), and events and links get their list when the first one
  is added;
- processors whose ``on_start`` / ``_on_ending`` do nothing are not called, and the ended
  span itself (already immutable through the API) goes to ``on_end`` instead of a copy;
- two optional sampler attributes, which sfumato's own samplers have: ``sample_span(parent,
  context, trace_id, name, kind, attributes, links)`` takes the parent span context the
  tracer has already looked up (None for a root) instead of finding it again in the context;
  ``plain_attributes = True`` promises that a decision adds only plain values to the span's
  attributes and that a dict it returns, other than the caller's, is new. With it the tracer
  checks the caller's attributes alone and keeps that dict as the span's own. A sampler
  without them is called through ``should_sample`` and its attributes are cleaned as the SDK
  would.

The OpenTelemetry API behaves as with the SDK's tracer: context propagation, the sampler's
decision, attributes and their limits, events, links, status, exceptions recorded on exit.
No call raises into the application: a failure while starting a span gives a non-recording
span, a failing span processor is counted, logged once, and skipped.
"""

from __future__ import annotations

import dis
import functools
import inspect
import logging
import os
import random
import sys
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from time import time_ns
from types import TracebackType
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace._tracer_metrics import NoOpTracerMetrics
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import (
    INVALID_SPAN_CONTEXT,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    TraceFlags,
    TraceState,
)
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.trace.status import Status, StatusCode
from opentelemetry.util import types

from ._guards import strict

__all__ = ["SfumatoTracer", "SfumatoTracerProvider", "follow_global"]

log = logging.getLogger("sfumato")

_SIMPLE = frozenset((str, int, float, bool))
_SAMPLE = Decision.RECORD_AND_SAMPLE
_RECORD_ONLY = Decision.RECORD_ONLY
_INTERNAL = SpanKind.INTERNAL
# Times are nanoseconds since the epoch in an unsigned 64-bit field of OTLP.
_TIME_LIMIT = 2**64
_ApiSpan = trace_api.Span
# (sampled, random trace id) -> flags; TraceFlags are immutable ints, so they are shared.
_FLAGS = {
    (False, False): TraceFlags(TraceFlags.DEFAULT),
    (True, False): TraceFlags(TraceFlags.SAMPLED),
    (False, True): TraceFlags(TraceFlags.RANDOM_TRACE_ID),
    (True, True): TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID),
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
_RANDOM = TraceFlags.RANDOM_TRACE_ID
_EMPTY_STATE = TraceState()


def _tuple_layout() -> bool:
    """SpanContext is a tuple (trace_id, span_id, is_remote, flags, state, is_valid)."""
    try:
        probe = SpanContext(3, 5, False, _FLAGS[True, True], _EMPTY_STATE)
        return tuple(probe) == (3, 5, False, _FLAGS[True, True], _EMPTY_STATE, True) and (
            probe.trace_id == 3 and probe.trace_flags.sampled and probe.is_valid
        )
    except Exception:  # pragma: no cover
        return False


_TUPLE_LAYOUT = _tuple_layout()
# Span classes made by sfumato's tracers: their ``_context`` is valid by construction.
_OWN_SPANS: set[type] = set()

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


# The default runtime context keeps the current Context in one ContextVar: read and set it
# directly. Any other runtime context goes through the API functions.
_runtime = context_api._RUNTIME_CONTEXT
if type(_runtime) is ContextVarsRuntimeContext:
    _var = _runtime._current_context
    _get_current: Callable[[], Context] = _var.get
    _attach: Callable[[Context], Any] = _var.set
    _reset: Callable[[Any], None] = _var.reset
    # attach() returns a plain ContextVar token: ``token.var.reset(token)`` undoes it.
    VAR_TOKENS = True
else:  # pragma: no cover - a custom OTEL_PYTHON_CONTEXT
    _get_current = context_api.get_current
    _attach = context_api.attach
    _reset = context_api.detach
    VAR_TOKENS = False


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
    """The SDK's container, cleaning and bounding ``given`` (what ``_start`` falls back to
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
    _tracer: SfumatoTracer
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
        super().update_name(name if type(name) is str else _safe_text(name))

    def add_event(
        self, name: str, attributes: types.Attributes = None, timestamp: int | None = None
    ) -> None:
        try:
            if type(name) is not str:
                name = _safe_text(name)
            if timestamp is not None and not (
                type(timestamp) is int and 0 <= timestamp < _TIME_LIMIT
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
        if end_time is not None and not (type(end_time) is int and 0 <= end_time < _TIME_LIMIT):
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
        buffering = [p for p in source if callable(getattr(p, "open_trace", None))]
        self.buffering: Any = buffering[0] if len(buffering) == 1 else None
        self.on_end_others = [p.on_end for p in source if p is not self.buffering]


class SfumatoTracer(sdk_trace.Tracer):
    """An SDK tracer with a shorter span path (see the module docstring)."""

    _span_cls: type[_Span]
    _processors: _Processors | None
    _failed = False

    # Counts calls on this tracer's spans that raised inside the SDK (a value whose str()
    # raises, record_exception of a non-exception): set by the pipeline, see _rejected.
    _api_errors: Any = None

    def _rejected(self, call: str, exc: Exception) -> None:
        """A span method the application called raised: drop what it gave, count it, say so
        once per kind of call; never let it reach the application."""
        if self._api_errors is not None:
            self._api_errors.incr()
        if call not in _WARNED_CALLS:
            _WARNED_CALLS.add(call)
            log.warning(
                "sfumato: span.%s() failed (%s: %s): what it was given is dropped; such calls "
                "are counted as spans.api_errors in stats(), this warning is not repeated",
                call,
                type(exc).__name__,
                _safe_text(exc),
            )

    def _mend_kind(self, kind: object) -> SpanKind:
        """A ``SpanKind`` for what was given: its name (``"server"``) is mended, anything
        else is INTERNAL and counted."""
        if isinstance(kind, SpanKind):
            return kind
        if isinstance(kind, str) and kind.upper() in SpanKind.__members__:
            return SpanKind[kind.upper()]
        what = f"kind must be a SpanKind, got {type(kind).__name__}"
        self._rejected("start_span", TypeError(what))
        return _INTERNAL

    def _mend_time(self, call: str, value: object) -> int | None:
        """A time in nanoseconds for what was given: a number is made an int, anything else
        is dropped (the time of the call is used) and counted."""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                time = int(value)
            except (OverflowError, ValueError):
                time = -1  # an infinity or NaN
            if 0 <= time < _TIME_LIMIT:
                return time
        what = f"a time in ns since the epoch (0 to 2**64), got {type(value).__name__}"
        self._rejected(call, TypeError(what))
        return None

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
        _OWN_SPANS.add(self._span_cls)
        self._should_sample = self.sampler.should_sample
        # A sampler of sfumato's own also takes the parent span context the tracer has
        # already looked up: sample_span(parent, context, trace_id, name, kind, attributes,
        # links), ``parent`` the valid parent span context or None for a root.
        self._sample_span: Callable[..., Any] | None = getattr(self.sampler, "sample_span", None)
        # plain_attributes (sfumato's samplers): what a decision adds to the span's own
        # attributes is plain values, and a dict it returns that is not the caller's is new.
        self._plain = (
            getattr(self.sampler, "plain_attributes", False) is True
            and self._span_limits.max_span_attribute_length is None
        )
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
        self._max_attributes = limits.max_span_attributes
        # Attributes a span may start with before the SDK's container takes over.
        room = limits.max_span_attributes
        self._room = sys.maxsize if room is None else room
        self._max_value_len = limits.max_span_attribute_length
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

    def _start(
        self,
        name: str,
        context: Context | None,
        kind: SpanKind,
        attributes: types.Attributes,
        links: Sequence[trace_api.Link] | None,
        start_time: int | None,
        record_exception: bool,
        set_status_on_exception: bool,
        current: Context,
        checked: bool = False,
    ) -> trace_api.Span:
        """start_span's body; ``current`` is the context the parent is read from, and
        ``checked`` says the caller built ``attributes`` from non-empty string keys and plain
        values (sfumato's own helpers), so they need no second look."""
        # One frame and a zero-cost try: whatever goes wrong, the caller gets a span.
        try:
            # Arguments the exporter could not encode are mended or dropped here, on the
            # caller's thread, not found later by the export worker (a batch lost for one).
            if type(name) is not str:
                name = _safe_text(name)
            if kind is not _INTERNAL and type(kind) is not SpanKind:
                kind = self._mend_kind(kind)
            if start_time is not None and not (
                type(start_time) is int and 0 <= start_time < _TIME_LIMIT
            ):
                start_time = self._mend_time("start_span", start_time)
            parent_span = current.get(_SPAN_KEY)
            parent: SpanContext | None = None
            own_parent = False
            if parent_span is not None:
                if type(parent_span) in _OWN_SPANS:
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
            elif _TUPLE_LAYOUT:
                trace_id = parent[0]
                random_bit = parent[3] & _RANDOM
            else:  # pragma: no cover - a SpanContext of another shape
                trace_id = parent.trace_id
                random_bit = parent.trace_flags & _RANDOM
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
            if bits is not None and _TUPLE_LAYOUT:
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
                    # check the caller's attributes alone (unless ``checked``), and take that
                    # new dict as the span's own.
                    plain = True
                    if attributes and not checked:
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
                elif parent is None or (parent[2] if _TUPLE_LAYOUT else parent.is_remote):
                    span._buffer = buffering.open_trace(span, trace_id)
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
    ) -> trace_api.Span:
        return self._start(
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
            context if context is not None else _get_current(),
        )

    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = _INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[trace_api.Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> _CurrentSpan:
        return _CurrentSpan(
            self,
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
            end_on_exit,
        )


class _CurrentSpan:
    """``with tracer.start_as_current_span(...)``: start a span, make it current, end it.

    Also a decorator of sync and async functions, a fresh span per call (as the SDK's).
    """

    __slots__ = (
        "_args",
        "_end_on_exit",
        "_record_exception",
        "_set_status",
        "_span",
        "_token",
        "_tracer",
    )

    def __init__(
        self,
        tracer: SfumatoTracer,
        name: str,
        context: Context | None,
        kind: SpanKind,
        attributes: types.Attributes,
        links: Sequence[trace_api.Link] | None,
        start_time: int | None,
        record_exception: bool,
        set_status_on_exception: bool,
        end_on_exit: bool,
    ) -> None:
        self._tracer = tracer
        self._args = (name, context, kind, attributes, links, start_time)
        self._record_exception = record_exception
        self._set_status = set_status_on_exception
        self._end_on_exit = end_on_exit

    def __enter__(self) -> trace_api.Span:
        name, context, kind, attributes, links, start_time = self._args
        current = context if context is not None else _get_current()
        span = self._span = self._tracer._start(
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            self._record_exception,
            self._set_status,
            current,
        )
        new = Context(current)
        dict.__setitem__(new, _SPAN_KEY, span)
        self._token = _attach(new)
        return span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            _reset(self._token)
        except Exception:
            log.debug("sfumato: failed to detach the context", exc_info=True)
        span = self._span
        try:
            if exc is not None and isinstance(exc, Exception) and span.is_recording():
                if self._record_exception:
                    span.record_exception(exc)
                if self._set_status:
                    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            if self._end_on_exit:
                span.end()
        except Exception:
            if strict():
                raise  # SFUMATO_STRICT=1: e.g. a processor's on_end exception
            log.debug("sfumato: failed to end a span", exc_info=True)

    def _recreate(self) -> _CurrentSpan:
        fresh = _new(_CurrentSpan)
        fresh._tracer = self._tracer
        fresh._args = self._args
        fresh._record_exception = self._record_exception
        fresh._set_status = self._set_status
        fresh._end_on_exit = self._end_on_exit
        return fresh

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with self._recreate():
                    return await func(*args, **kwargs)

            return run_async

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            with self._recreate():
                return func(*args, **kwargs)

        return run


# Every tracer handed out by a provider that was installed globally (the API's
# ``trace.get_tracer`` and its proxy tracers cache them): each follows the provider
# installed last, see ``follow_global``.
_GLOBAL_TRACERS: weakref.WeakSet[SfumatoTracer] = weakref.WeakSet()


def _safe_text(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__} that cannot be shown>"


# The span calls that were reported once already (see SfumatoTracer._rejected).
_WARNED_CALLS: set[str] = set()


class SfumatoTracerProvider(sdk_trace.TracerProvider):
    """The SDK's provider, handing out ``SfumatoTracer`` objects."""

    _global = False  # installed as the global provider (follow_global) at least once
    # The counter of span calls that raised (stats ``spans.api_errors``), set by the pipeline.
    api_errors: Any = None

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace_api.Tracer:
        tracer = super().get_tracer(*args, **kwargs)
        if type(tracer) is sdk_trace.Tracer:
            with self._tracers_lock:
                if type(tracer) is sdk_trace.Tracer:
                    tracer.__class__ = SfumatoTracer
                    tracer._api_errors = self.api_errors  # type: ignore[attr-defined]
                    tracer._prepare()  # type: ignore[attr-defined]
                    if self._global:
                        _GLOBAL_TRACERS.add(tracer)  # type: ignore[arg-type]
        return tracer

    def add_span_processor(self, span_processor: sdk_trace.SpanProcessor) -> None:
        super().add_span_processor(span_processor)
        # The tracers keep the processors as lists of bound methods: have them made again
        # (the SDK keeps every tracer it handed out, one per instrumentation scope).
        with self._tracers_lock:
            for tracer in self._tracers.values():
                tracer._processors = None  # type: ignore[attr-defined]


def follow_global(provider: Any) -> None:
    """``provider`` is now the global tracer provider: every tracer an earlier global
    provider handed out becomes this one's tracer for the same instrumentation scope.

    Applications keep the tracers they got (``tracer = trace.get_tracer(__name__)`` at import,
    the API's proxy tracers keep the first real one they found): after ``shutdown()`` and a
    new ``configure()``, or in a forked child whose pipelines were re-created, those spans
    go to the pipeline running now instead of a shut-down one. An old tracer takes the new
    one's attribute dict itself (shared, not copied), so it stays the same as the new tracer
    whatever changes later, and the span path does exactly what it did before.
    """
    if not isinstance(provider, SfumatoTracerProvider):
        return
    try:
        with provider._tracers_lock:
            provider._global = True
            mine = list(provider._tracers.values())
            _GLOBAL_TRACERS.update(mine)  # type: ignore[arg-type]
        own = {id(t) for t in mine}
        for old in list(_GLOBAL_TRACERS):
            if id(old) in own:
                continue
            scope = old._instrumentation_scope
            new = provider.get_tracer(
                scope.name, scope.version or None, scope.schema_url, scope.attributes
            )
            if type(new) is SfumatoTracer and new is not old:
                old.__dict__ = new.__dict__
    except Exception:
        log.warning("sfumato: tracers taken earlier may still feed the old pipeline", exc_info=True)


# -- for sfumato's own span helpers ----------------------------------------------------------


def attach(context: Context) -> Any:
    """``opentelemetry.context.attach`` without the indirection: the token for ``detach``."""
    return _attach(context)


def attach_span(span: trace_api.Span, context: Context) -> Any:
    """Make ``span`` current in a copy of ``context``; the token for ``detach``."""
    new = Context(context)
    dict.__setitem__(new, _SPAN_KEY, span)
    return _attach(new)


def detach(token: Any) -> None:
    """``opentelemetry.context.detach``: never raises (a token of another context is logged)."""
    try:
        _reset(token)
    except Exception:
        log.debug("sfumato: failed to detach a context", exc_info=True)


def current_context() -> Context:
    return _get_current()
