"""The SDK's own tracer and spans (the path taken when ``_otel.FAST`` is False), held to
sfumato's promises through the public API: arguments of the wrong type are mended or
dropped at the call and counted, and no span call raises into the application.

``SafeTracer`` wraps an SDK tracer and ``SafeSpan`` each span it starts; the span
processors and exporters get the SDK's spans as they are.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind
from opentelemetry.trace.status import Status, StatusCode
from opentelemetry.util import types

from ._mending import TIME_LIMIT, mend_kind, mend_time, rejected, safe_text
from ._strict import strict

__all__ = ["SafeSpan", "SafeTracer"]

log = logging.getLogger("sfumato")

_INTERNAL = SpanKind.INTERNAL


def _time(errors: Any, call: str, value: Any) -> int | None:
    if value is None or (type(value) is int and 0 <= value < TIME_LIMIT):
        return value
    return mend_time(errors, call, value)


class SafeSpan(trace_api.Span):
    """An SDK span whose every call is guarded (see the module docstring)."""

    __slots__ = ("_errors", "span")

    def __init__(self, span: trace_api.Span, errors: Any) -> None:
        self.span = span
        self._errors = errors

    def _failed(self, call: str, exc: Exception) -> None:
        if strict():
            raise exc
        rejected(self._errors, call, exc)

    def get_span_context(self) -> trace_api.SpanContext:
        return self.span.get_span_context()

    def is_recording(self) -> bool:
        try:
            return self.span.is_recording()
        except Exception:
            return False

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        try:
            self.span.set_attribute(key, value)
        except Exception as exc:
            self._failed("set_attribute", exc)

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        try:
            self.span.set_attributes(attributes)
        except Exception as exc:
            self._failed("set_attributes", exc)

    def add_event(
        self, name: str, attributes: types.Attributes = None, timestamp: int | None = None
    ) -> None:
        try:
            name = name if type(name) is str else safe_text(name)
            self.span.add_event(name, attributes, _time(self._errors, "add_event", timestamp))
        except Exception as exc:
            self._failed("add_event", exc)

    def add_link(self, context: trace_api.SpanContext, attributes: types.Attributes = None) -> None:
        try:
            self.span.add_link(context, attributes)
        except Exception as exc:
            self._failed("add_link", exc)

    def update_name(self, name: str) -> None:
        try:
            self.span.update_name(name if type(name) is str else safe_text(name))
        except Exception as exc:
            self._failed("update_name", exc)

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        try:
            self.span.set_status(status, description)
        except Exception as exc:
            self._failed("set_status", exc)

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        try:
            self.span.record_exception(
                exception, attributes, _time(self._errors, "record_exception", timestamp), escaped
            )
        except Exception as exc:
            self._failed("record_exception", exc)

    def end(self, end_time: int | None = None) -> None:
        try:
            self.span.end(_time(self._errors, "end", end_time))
        except Exception:
            if strict():
                raise
            log.debug("sfumato: failed to end a span", exc_info=True)

    def __getattr__(self, name: str) -> Any:
        # What the SDK's span has beyond the API (name, attributes, ...): read through.
        return getattr(self.span, name)

    def __repr__(self) -> str:
        return f"SafeSpan({self.span!r})"


class SafeTracer(trace_api.Tracer):
    """An SDK tracer whose spans are ``SafeSpan`` objects (see the module docstring)."""

    def __init__(self, tracer: trace_api.Tracer, errors: Any) -> None:
        self.tracer = tracer
        self.errors = errors
        self._failed = False

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
        try:
            if type(name) is not str:
                name = safe_text(name)
            if type(kind) is not SpanKind:
                kind = mend_kind(self.errors, kind)
            span = self.tracer.start_span(
                name,
                context,
                kind,
                attributes,
                links,
                _time(self.errors, "start_span", start_time),
                record_exception,
                set_status_on_exception,
            )
        except Exception:
            if strict():
                raise
            if not self._failed:
                self._failed = True
                log.warning(
                    "sfumato: could not start span %r; it records nothing (logged once)",
                    name,
                    exc_info=True,
                )
            return trace_api.INVALID_SPAN
        return SafeSpan(span, self.errors)

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
    ) -> _SafeCurrent:
        args = (name, context, kind, attributes, links, start_time, record_exception)
        return _SafeCurrent(self, (*args, set_status_on_exception), end_on_exit)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tracer, name)


class _SafeCurrent:
    """``with tracer.start_as_current_span(...)`` on the SDK's path; also a decorator of
    sync and async functions, a fresh span per call (as the SDK's)."""

    __slots__ = ("_args", "_end_on_exit", "_scope", "_tracer")

    def __init__(self, tracer: SafeTracer, args: tuple[Any, ...], end_on_exit: bool) -> None:
        self._tracer = tracer
        self._args = args
        self._end_on_exit = end_on_exit
        self._scope: Any = None

    def __enter__(self) -> trace_api.Span:
        args = self._args
        span = self._tracer.start_span(*args)
        self._scope = trace_api.use_span(
            span,
            end_on_exit=self._end_on_exit,
            record_exception=args[6],
            set_status_on_exception=args[7],
        )
        return self._scope.__enter__()  # type: ignore[no-any-return]

    def __exit__(self, *exc: Any) -> Any:
        scope, self._scope = self._scope, None
        return scope.__exit__(*exc)

    def __call__(self, func: Callable[..., Any]) -> Callable[..., Any]:
        def fresh() -> _SafeCurrent:
            return _SafeCurrent(self._tracer, self._args, self._end_on_exit)

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with fresh():
                    return await func(*args, **kwargs)

            return run_async

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            with fresh():
                return func(*args, **kwargs)

        return run
