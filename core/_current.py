"""``with tracer.start_as_current_span(...)``: the current-span manager of sfumato's tracer."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind
from opentelemetry.trace.status import Status, StatusCode
from opentelemetry.util import types

from . import _otel
from ._strict import strict

if TYPE_CHECKING:
    from ._otel import FastTracer

__all__ = ["CurrentSpan"]

log = logging.getLogger("sfumato")

_new = object.__new__
_current_context = _otel.current_context
_attach = _otel.attach
_detach = _otel.detach_token
_SPAN_KEY = _otel.SPAN_KEY


class CurrentSpan:
    """Start a span, make it current, end it: a small class rather than the SDK's generator
    wrapped in a decorator. Also a decorator of sync and async functions, a fresh span per
    call (as the SDK's)."""

    __slots__ = (
        "_args",
        "_end_on_exit",
        "_records_exception",
        "_set_status",
        "_span",
        "_token",
        "_tracer",
    )

    def __init__(
        self,
        tracer: FastTracer,
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
        self._records_exception = record_exception
        self._set_status = set_status_on_exception
        self._end_on_exit = end_on_exit

    def __enter__(self) -> trace_api.Span:
        name, context, kind, attributes, links, start_time = self._args
        current = context if context is not None else _current_context()
        span = self._span = self._tracer.start_span(
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            self._records_exception,
            self._set_status,
            current=current,
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
            _detach(self._token)
        except Exception:
            log.debug("sfumato: failed to detach the context", exc_info=True)
        span = self._span
        try:
            if exc is not None and isinstance(exc, Exception) and span.is_recording():
                if self._records_exception:
                    span.record_exception(exc)
                if self._set_status:
                    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            if self._end_on_exit:
                span.end()
        except Exception:
            if strict():
                raise  # SFUMATO_STRICT=1: e.g. a processor's on_end exception
            log.debug("sfumato: failed to end a span", exc_info=True)

    def _recreate(self) -> CurrentSpan:
        fresh = _new(CurrentSpan)
        fresh._tracer = self._tracer
        fresh._args = self._args
        fresh._records_exception = self._records_exception
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
