"""Narrative, act and LLM-call spans: context managers and decorators, sync and async.

    with narrative("content_generation", "daily_post", attributes={"bot.topic": "cats"}) as run:
        with act("draft"):
            with llm_call("gpt-4o-mini") as call:
                reply = client.complete(prompt)
                call.record_tokens(reply.prompt_tokens, reply.completion_tokens)
            data = parse_json(reply.text)

    @narrative("curation")               # the span name defaults to the function's name
    async def curate(item): ...

The narrative's span gets ``narrative.type`` and ``narrative.name`` as start attributes (so a
head sampler sees them), and the narrative type is put in the context (baggage) so every child
span and every downstream stage inherits it. An exception sets the span's status to ERROR,
records it as an event and propagates unchanged. Durations go into the
``narrative.execution.duration`` and ``narrative.act.duration`` histograms. The telemetry
itself never raises into the caller.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, ClassVar, Generic, TypeVar, cast

from opentelemetry import trace as trace_api
from opentelemetry.context import Context, create_key
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode
from sfumato import _otel
from sfumato._otel import VAR_TOKENS

from . import _context as _ctx
from . import conventions as conv
from . import metrics as _metrics_module
from ._context import SAMPLER_NARRATIVE_TYPE, current_narrative_type, tracer
from .metrics import BotMetrics, default_metrics
from .propagation import _LINKS_KEY, extract_context, link_from, pending_links

__all__ = [
    "ActSpan",
    "LlmCall",
    "NarrativeSpan",
    "act",
    "current_narrative",
    "llm_call",
    "narrative",
    "parse_json",
]

log = logging.getLogger("sfumato.botticelli")
_clock = time.perf_counter
_new = object.__new__
_INTERNAL = SpanKind.INTERNAL
_CLIENT = SpanKind.CLIENT
# The runtime context's own get/set (the context ContextVar's when it is the default one).
_current_context = _otel.current_context
_attach = _otel.attach
_detach = _otel.detach
_SPAN_KEY = _otel.SPAN_KEY
_BAGGAGE_KEY = _otel.BAGGAGE_KEY
# The metrics the helpers record, by name (BotMetrics._record takes the values in the
# instrument's key order).
_NARRATIVE_DURATION = "narrative.execution.duration"
_ACT_DURATION = "narrative.act.duration"
_PARSE_SUCCESS = "narrative.json.parse.success"
_SUCCESS = "success"
_INPUT_TOKENS = conv.INPUT_TOKENS
_OUTPUT_TOKENS = conv.OUTPUT_TOKENS
_FAILURE = "failure"

F = TypeVar("F", bound=Callable[..., Any])

_current_narrative: ContextVar[NarrativeSpan | None] = ContextVar(
    "sfumato_botticelli_narrative", default=None
)
# The running act's name lives in the OpenTelemetry context the act makes current (set in
# the same new context as its span, so leaving the block restores it with the span).
_ACT_KEY = create_key("sfumato-botticelli-act")


def current_narrative() -> NarrativeSpan | None:
    """The innermost running narrative of this thread or task."""
    return _current_narrative.get()


class _Handle:
    """What a ``with`` block gets: the span plus a few helpers."""

    __slots__ = ("_started", "span")

    def __init__(self, span: Span) -> None:
        self.span = span
        self._started = _clock()

    def set_attribute(self, key: str, value: Any) -> None:
        try:
            self.span.set_attribute(key, value)
        except Exception:
            log.debug("sfumato: set_attribute failed", exc_info=True)

    @property
    def trace_id(self) -> str:
        """The trace id as 32 hex digits."""
        return format(self.span.get_span_context().trace_id, "032x")

    @property
    def span_id(self) -> str:
        return format(self.span.get_span_context().span_id, "016x")

    @property
    def elapsed(self) -> float:
        """Seconds since the block started."""
        return _clock() - self._started


class NarrativeSpan(_Handle):
    """A running narrative: its span, type, name, and the tokens its LLM calls used."""

    __slots__ = ("name", "tokens", "type")

    def __init__(self, span: Span, narrative_type: str, name: str) -> None:
        self.span = span
        self._started = _clock()
        self.type = narrative_type
        self.name = name
        self.tokens = 0


class _StepHandle(_Handle):
    """A running act or LLM call: its label (the act's name, the model), the narrative type
    it ran under, and the tokens an LLM call used."""

    __slots__ = ("input_tokens", "label", "narrative_type", "output_tokens")

    def __init__(self, span: Span, label: str, narrative_type: str | None = None) -> None:
        self.span = span
        self._started = _clock()
        self.label = label
        self.narrative_type = narrative_type
        self.input_tokens = 0
        self.output_tokens = 0


class ActSpan(_StepHandle):
    """A running act."""

    __slots__ = ()

    @property
    def name(self) -> str:
        return self.label


class LlmCall(_StepHandle):
    """A running LLM call; ``record_tokens`` puts the usage on the span and on the narrative."""

    __slots__ = ()

    @property
    def model(self) -> str:
        return self.label

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def record_tokens(self, prompt: int, completion: int) -> None:
        """Tokens of the prompt and of the completion (added up when called again)."""
        self.input_tokens += prompt
        self.output_tokens += completion
        try:
            span = self.span  # two set_attribute calls: less work than a dict and set_attributes
            span.set_attribute(_INPUT_TOKENS, self.input_tokens)
            span.set_attribute(_OUTPUT_TOKENS, self.output_tokens)
            running = _current_narrative.get()
            if running is not None:
                running.tokens += prompt + completion
        except Exception:
            log.debug("sfumato: record_tokens failed", exc_info=True)

    def record_messages(self, prompt: str, reply: str | None = None) -> None:
        """The prompt and the reply as ``gen_ai.input.messages`` and ``gen_ai.output.messages``
        (the GenAI conventions' JSON), only when message content capture is on
        (``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=SPAN_ONLY``); off by default,
        it records nothing."""
        try:
            if not _ctx.conventions().content:
                return
            span = self.span
            span.set_attribute(
                conv.INPUT_MESSAGES,
                json.dumps([{"role": "user", "parts": [{"type": "text", "content": prompt}]}]),
            )
            if reply is not None:
                output = [
                    {
                        "role": "assistant",
                        "parts": [{"type": "text", "content": reply}],
                        "finish_reason": "stop",
                    }
                ]
                span.set_attribute(conv.OUTPUT_MESSAGES, json.dumps(output))
        except Exception:
            log.debug("sfumato: record_messages failed", exc_info=True)


def _mark_error(span: Span, exc: BaseException) -> None:
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
    span.set_attribute("error.type", type(exc).__qualname__)
    kind = getattr(exc, "error_kind", None)
    if isinstance(kind, str):
        span.set_attribute(conv.ERROR_KIND, kind)


def _undo_context(token: Any) -> None:
    """Undo an ``attach``: the token is a ContextVar token when ``VAR_TOKENS``."""
    try:
        if VAR_TOKENS:
            token.var.reset(token)
        else:
            _detach(token)
    except Exception:
        log.debug("sfumato: could not restore the context", exc_info=True)


def _undo_var(token: Token[Any]) -> None:
    try:
        token.var.reset(token)
    except Exception:
        log.debug("sfumato: could not restore the context", exc_info=True)


def _metrics(given: BotMetrics | None) -> BotMetrics:
    if given is not None:
        return given
    made = _metrics_module._default
    return made if made is not None else default_metrics()


class _Scope:
    """A span block usable as ``with``, ``async with`` and as a decorator of either kind of
    function.

    The state of the open block (its handle and the context tokens to undo) lives in slots
    of the scope object itself: no list or tuple is allocated per span. A scope entered
    again while open (a shared scope object in a recursive function) hands the inner block
    to a fresh copy kept in ``_inner``, so spans never get mixed up; a decorator makes a
    fresh scope per call.
    """

    __slots__ = ("_handle", "_inner", "_token")

    def __init__(self) -> None:
        self._handle: Any = None
        self._token: Any = None  # the OpenTelemetry context token of the open block
        self._inner: list[_Scope] | None = None

    # Subclasses: open a span (storing tokens as they are taken), close it, undo the rest.
    def _open(self) -> Any:
        raise NotImplementedError

    def _close(self, handle: Any, exc: BaseException | None) -> None:
        raise NotImplementedError

    def _undo(self) -> None:
        token = self._token
        if token is not None:
            self._token = None
            _undo_context(token)

    def _copy(self, func: Callable[..., Any] | None) -> _Scope:
        raise NotImplementedError

    def _fallback(self) -> Any:
        raise NotImplementedError

    def _enter_again(self) -> Any:
        """Entered while open: a fresh copy takes the inner block."""
        inner = self._copy(None)
        if self._inner is None:
            self._inner = []
        self._inner.append(inner)
        return inner.__enter__()

    def __enter__(self) -> Any:
        if self._handle is not None:
            return self._enter_again()
        try:
            handle = self._open()
        except Exception:
            # Give the block a handle anyway, on a span that records nothing.
            log.debug("sfumato: could not start a span", exc_info=True)
            handle = self._fallback()
        self._handle = handle
        return handle

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        inner = self._inner
        if inner:
            inner.pop().__exit__(exc_type, exc, tb)
            return
        handle = self._handle
        self._handle = None
        try:
            if handle is not None:
                self._close(handle, exc)
        except Exception:
            log.debug("sfumato: could not end a span", exc_info=True)
        finally:
            self._undo()

    async def __aenter__(self) -> Any:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, func: F) -> F:
        # A fresh scope per call: calls from many threads or tasks never share one.
        template = self._copy(func)
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with template._copy(func):
                    return await func(*args, **kwargs)

            return cast(F, run_async)

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            with template._copy(func):
                return func(*args, **kwargs)

        return cast(F, run)


class narrative(_Scope):  # lower case: used like a function, `with narrative(...)`
    """The root span of one narrative run.

    ``parent`` continues the trace of a carrier (see :mod:`.propagation`); ``links`` adds
    links to the spans other carriers point at. ``metrics=None`` records into the process's
    default ``BotMetrics``; ``record_metrics=False`` records no metrics at all.
    """

    __slots__ = (
        "_named",
        "_narrative_token",
        "_type_token",
        "attributes",
        "links",
        "metrics",
        "name",
        "parent",
        "record_metrics",
        "type",
    )

    def __init__(
        self,
        type: str,
        name: str | None = None,
        *,
        attributes: Mapping[str, Any] | None = None,
        parent: Mapping[str, str] | None = None,
        links: Sequence[Mapping[str, str]] = (),
        metrics: BotMetrics | None = None,
        record_metrics: bool = True,
    ) -> None:
        self._handle = None
        self._token = None
        self._inner = None
        self._type_token: Token[Any] | None = None
        self._narrative_token: Token[Any] | None = None
        self.type = type
        self.name = name or type
        self._named = name is not None
        self.attributes = dict(attributes) if attributes else {}
        self.parent = parent
        self.links = tuple(links)
        self.metrics = metrics
        self.record_metrics = record_metrics

    def _copy(self, func: Callable[..., Any] | None) -> narrative:
        return narrative(
            self.type,
            self.name if self._named or func is None else func.__name__,
            attributes=self.attributes,
            parent=self.parent,
            links=self.links,
            metrics=self.metrics,
            record_metrics=self.record_metrics,
        )

    def _fallback(self) -> NarrativeSpan:
        return NarrativeSpan(trace_api.INVALID_SPAN, self.type, self.name)

    def _open(self) -> NarrativeSpan:
        ctx: Context = (
            extract_context(self.parent) if self.parent is not None else _current_context()
        )
        # pending_links(ctx) only when linked_to() left some in the context.
        links: list[Link] = list(pending_links(ctx)) if _LINKS_KEY in ctx else []
        for carrier in self.links:
            link = link_from(carrier)
            if link is not None:
                links.append(link)
        # The type goes into the context once, on the root: children read it from there
        # (the samplers' variable and the baggage the propagators carry downstream).
        # baggage.set_baggage(BAGGAGE_NARRATIVE_TYPE, type, ctx), without its lookups.
        entries = ctx.get(_BAGGAGE_KEY)
        entries = dict(entries) if isinstance(entries, dict) else {}
        entries[conv.BAGGAGE_NARRATIVE_TYPE] = self.type
        ctx = Context(ctx)
        dict.__setitem__(ctx, _BAGGAGE_KEY, entries)
        if SAMPLER_NARRATIVE_TYPE is not None:
            self._type_token = SAMPLER_NARRATIVE_TYPE.set(self.type)
        attributes = {conv.NARRATIVE_TYPE: self.type, conv.NARRATIVE_NAME: self.name}
        if self.attributes:
            attributes.update(self.attributes)
        # _ctx.fast_tracer(), inline (pinned to it by a test)
        t = (
            c[2]
            if (c := _ctx._cached) is not None and c[0] == _otel.GENERATION
            else _ctx.fast_tracer()
        )
        if t is not None:  # sfumato's tracer: its span path, the attributes known clean
            span = t.start_span(
                conv.NARRATIVE_SPAN_PREFIX + self.name,
                ctx,
                _INTERNAL,
                attributes,
                links,
                # string keys, and values that are plain strings
                trusted=not self.attributes and type(self.type) is str and type(self.name) is str,
            )
        else:
            span = tracer().start_span(
                conv.NARRATIVE_SPAN_PREFIX + self.name, ctx, attributes=attributes, links=links
            )
        # One attach: the baggage and the span in the same new context.
        new = Context(ctx)
        dict.__setitem__(new, _SPAN_KEY, span)
        if ctx.get(_ACT_KEY) is not None:  # a narrative started inside an act
            dict.__setitem__(new, _ACT_KEY, None)
        self._token = _attach(new)
        handle = NarrativeSpan(span, self.type, self.name)
        self._narrative_token = _current_narrative.set(handle)
        return handle

    def _undo(self) -> None:
        token = self._token
        if token is not None:
            self._token = None
            _undo_context(token)
        narrative_token = self._narrative_token
        if narrative_token is not None:
            self._narrative_token = None
            _undo_var(narrative_token)
        type_token = self._type_token
        if type_token is not None:
            self._type_token = None
            _undo_var(type_token)

    def _close(self, handle: NarrativeSpan, exc: BaseException | None) -> None:
        duration = _clock() - handle._started
        span = handle.span
        failed = exc is not None and isinstance(exc, Exception)
        if failed:
            _mark_error(span, cast(Exception, exc))
        if handle.tokens:
            span.set_attribute(conv.TOKENS_USED, handle.tokens)
        span.end()
        if self.record_metrics:
            _metrics(self.metrics)._record(
                _NARRATIVE_DURATION, duration, (self.type, _FAILURE if failed else _SUCCESS)
            )


H = TypeVar("H", bound="_StepHandle")


class _Step(_Scope, Generic[H]):
    """An act or an LLM call: a child span of the running narrative, named ``<prefix>
    <label>``, with the narrative's type. One implementation for both, its ``__enter__`` and
    ``__exit__`` written out (no _open/_close/_undo calls): several a narrative, and every
    call saved is one frame less per span. What differs is in class attributes."""

    __slots__ = ("attributes", "kind", "label", "metrics", "record_metrics", "span_name")
    # Set by each subclass's __init__ (written out there: no super() call per span).
    label: str
    span_name: str
    kind: SpanKind
    attributes: dict[str, Any] | None
    metrics: BotMetrics | None
    record_metrics: bool
    _key: ClassVar[str]  # the attribute that holds the label
    # An act: its name goes into the context (parse_json reads it), a new root takes the
    # links linked_to() left, and its duration is recorded.
    _is_act: ClassVar[bool]
    _handle_class: ClassVar[type[_StepHandle]]  # H

    def _fallback(self) -> H:
        return self._handle_class(trace_api.INVALID_SPAN, self.label)  # type: ignore[return-value]

    def _record_call(self, handle: Any, ended: float, exc: BaseException | None) -> None:
        raise NotImplementedError

    def __enter__(self) -> H:
        if self._handle is not None:
            return self._enter_again()  # type: ignore[no-any-return]
        try:
            ctx = _current_context()
            label = self.label
            running = _current_narrative.get()
            narrative_type = running.type if running is not None else current_narrative_type(ctx)
            attributes: dict[str, Any] = {self._key: label}
            if narrative_type is not None:
                attributes[conv.NARRATIVE_TYPE] = narrative_type
            if self.attributes:
                attributes.update(self.attributes)
            # _ctx.fast_tracer(), inline (pinned to it by a test)
            t = (
                c[2]
                if (c := _ctx._cached) is not None and c[0] == _otel.GENERATION
                else _ctx.fast_tracer()
            )
            # Only a new root takes pending links: inside a narrative there are none.
            links = pending_links(ctx) if self._is_act and running is None else ()
            if t is not None:  # sfumato's tracer: its span path, the attributes known clean
                span = t.start_span(
                    self.span_name,
                    ctx,
                    self.kind,
                    attributes,
                    links,
                    # string keys, and values that are plain strings
                    trusted=self.attributes is None
                    and type(label) is str
                    and (narrative_type is None or type(narrative_type) is str),
                )
            else:
                span = tracer().start_span(
                    self.span_name, ctx, self.kind, attributes=attributes, links=links
                )
            new = Context(ctx)
            dict.__setitem__(new, _SPAN_KEY, span)
            if self._is_act:
                dict.__setitem__(new, _ACT_KEY, label)
            self._token = _attach(new)
            handle: Any = _new(self._handle_class)
            handle.span = span
            handle.label = label
            handle.narrative_type = narrative_type
            handle.input_tokens = handle.output_tokens = 0
            handle._started = _clock()
        except Exception:
            log.debug("sfumato: could not start a span", exc_info=True)
            handle = self._fallback()
        self._handle = handle
        return handle  # type: ignore[no-any-return]

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._inner:
            self._inner.pop().__exit__(exc_type, exc, tb)
            return
        handle: _StepHandle = self._handle
        self._handle = None
        try:
            ended = _clock() if self.record_metrics else 0.0  # an act's duration
            failed = exc is not None and isinstance(exc, Exception)
            if failed:
                _mark_error(handle.span, cast(Exception, exc))
            handle.span.end()
            if self.record_metrics:
                if self._is_act:
                    (self.metrics or _metrics_module._default or default_metrics())._record(
                        _ACT_DURATION,
                        ended - handle._started,
                        (handle.narrative_type, self.label, _FAILURE if failed else _SUCCESS),
                    )
                else:  # an LLM call under the GenAI conventions
                    self._record_call(handle, ended, exc if failed else None)
        except Exception:
            log.debug("sfumato: could not end a span", exc_info=True)
        finally:
            token = self._token
            if token is not None:
                self._token = None
                try:  # _undo_context, inline (pinned to it by a test)
                    if VAR_TOKENS:
                        token.var.reset(token)
                    else:
                        _detach(token)
                except Exception:
                    log.debug("sfumato: could not restore the context", exc_info=True)


class act(_Step[ActSpan]):
    """One act of the running narrative: span ``act <name>``, duration in
    ``narrative.act.duration``."""

    __slots__ = ()
    _key = conv.ACT
    _is_act = True
    _handle_class = ActSpan

    def __init__(
        self,
        name: str,
        *,
        attributes: Mapping[str, Any] | None = None,
        metrics: BotMetrics | None = None,
        record_metrics: bool = True,
    ) -> None:
        self._handle = None
        self._token = None
        self._inner = None
        self.label = name
        self.span_name = conv.ACT_SPAN_PREFIX + name
        self.kind = _INTERNAL
        self.attributes = dict(attributes) if attributes else None
        self.metrics = metrics
        self.record_metrics = record_metrics

    @property
    def name(self) -> str:
        return self.label

    def _copy(self, func: Callable[..., Any] | None) -> act:
        return act(
            self.label,
            attributes=self.attributes,
            metrics=self.metrics,
            record_metrics=self.record_metrics,
        )


class llm_call(_Step[LlmCall]):
    """One call to a model: span ``llm <model>`` with the model and, through
    ``record_tokens``, the tokens used (also added to the narrative's total).

    Under OpenTelemetry's GenAI conventions (``OTEL_SEMCONV_STABILITY_OPT_IN`` holds
    ``gen_ai_latest_experimental``) the span is ``{operation} {model}`` of kind CLIENT with
    ``gen_ai.operation.name`` and ``gen_ai.provider.name`` (when ``provider`` is given), and
    the call is recorded in ``gen_ai.client.operation.duration`` and
    ``gen_ai.client.token.usage``. ``record_messages`` puts the prompt and the reply on the
    span only when ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` asks for it.
    """

    __slots__ = ("operation", "provider")

    _key = conv.MODEL
    _is_act = False
    _handle_class = LlmCall

    def __init__(
        self,
        model: str,
        *,
        provider: str | None = None,
        operation: str = conv.CHAT,
        attributes: Mapping[str, Any] | None = None,
        metrics: BotMetrics | None = None,
    ) -> None:
        self._handle = None
        self._token = None
        self._inner = None
        self.label = model
        self.provider = provider
        self.operation = operation
        self.metrics = metrics
        given = dict(attributes) if attributes else None
        genai = _ctx.conventions().genai
        # record_metrics: the GenAI client metrics, recorded at the end (an LLM call has no
        # duration of its own in the plan).
        self.record_metrics = genai
        if genai:
            self.span_name = f"{operation} {model}"
            self.kind = _CLIENT
            named = {conv.OPERATION_NAME: operation}
            if provider is not None:
                named[conv.PROVIDER_NAME] = provider
            self.attributes = {**named, **given} if given else named
        else:
            self.span_name = conv.LLM_SPAN_PREFIX + model
            self.kind = _INTERNAL
            self.attributes = given

    @property
    def model(self) -> str:
        return self.label

    def _copy(self, func: Callable[..., Any] | None) -> llm_call:
        return llm_call(
            self.label,
            provider=self.provider,
            operation=self.operation,
            attributes=self.attributes,
            metrics=self.metrics,
        )

    def _record_call(self, handle: Any, ended: float, exc: BaseException | None) -> None:
        _metrics(self.metrics).record_genai_call(
            ended - handle._started,
            self.label,
            operation=self.operation,
            provider=self.provider,
            input_tokens=handle.input_tokens,
            output_tokens=handle.output_tokens,
            error_type=type(exc).__qualname__ if exc is not None else None,
        )


def parse_json(
    text: str | bytes,
    *,
    metrics: BotMetrics | None = None,
    record_metrics: bool = True,
) -> Any:
    """``json.loads(text)`` in a ``json.parse`` span, counted in
    ``narrative.json.parse.success`` or ``narrative.json.parse.failures`` under the running
    narrative's type and act. A parse error marks the span and propagates."""
    running = _current_narrative.get()
    ctx = _current_context()
    narrative_type = running.type if running is not None else current_narrative_type(ctx)
    act_name: Any = ctx.get(_ACT_KEY)  # a str or None
    try:
        attributes: dict[str, Any] = {"json.size": len(text)}
        if narrative_type is not None:
            attributes[conv.NARRATIVE_TYPE] = narrative_type
        # _ctx.fast_tracer(), inline (pinned to it by a test)
        t = (
            c[2]
            if (c := _ctx._cached) is not None and c[0] == _otel.GENERATION
            else _ctx.fast_tracer()
        )
        span: Span
        if t is not None:  # sfumato's tracer: its span path, the attributes known clean
            span = t.start_span(
                conv.JSON_PARSE_SPAN,
                None,
                _INTERNAL,
                attributes,
                (),
                current=ctx,
                # string keys, an int and a plain string
                trusted=narrative_type is None or type(narrative_type) is str,
            )
        else:
            span = tracer().start_span(conv.JSON_PARSE_SPAN, attributes=attributes)
    except Exception:
        log.debug("sfumato: could not start a span", exc_info=True)
        span = trace_api.INVALID_SPAN
    try:
        value = json.loads(text)
    except Exception as exc:
        try:
            _mark_error(span, exc)
            span.set_attribute(conv.ERROR_KIND, "json_parse")
            span.end()
            if record_metrics:
                _metrics(metrics).record_json_parse(False, narrative_type, act_name)
        except Exception:
            log.debug("sfumato: could not record a parse failure", exc_info=True)
        raise
    try:
        span.end()
        if record_metrics:
            (metrics or _metrics_module._default or default_metrics())._record(
                _PARSE_SUCCESS, 1, (narrative_type, act_name)
            )
    except Exception:
        log.debug("sfumato: could not record a parse", exc_info=True)
    return value
