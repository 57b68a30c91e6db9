"""Span and log-record processors that hand items to an export queue."""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from ._export_queue import ExportQueue
from ._otel import (
    LogRecordProcessor,
    ReadableLogRecord,
    ReadWriteLogRecord,
    put_if_sampled,
    trace_id_of,
)
from ._stats import Stats

__all__ = [
    "FanOutSpanProcessor",
    "QueueLogProcessor",
    "QueueSpanProcessor",
    "SyncSpanProcessor",
    "UnitProcessor",
    "trace_id_of",
    "unit_taker",
]

log = logging.getLogger("sfumato")


@runtime_checkable
class UnitProcessor(Protocol):
    """A span processor that also takes whole units: the kept spans of one local trace,
    handed over at once by a tail sampler, with the tail policy that kept them (None: kept
    by probability). Under export overload a unit is kept or dropped whole, and one kept by
    a tail policy outranks one kept by probability."""

    def on_end_unit(self, spans: Sequence[ReadableSpan], policy: str | None) -> None: ...


def unit_taker(
    processor: SpanProcessor,
) -> Callable[[Sequence[ReadableSpan], str | None], None]:
    """``processor.on_end_unit``, or for a processor that takes spans one at a time, a call
    that hands it each span of the unit."""
    if isinstance(processor, UnitProcessor):
        return processor.on_end_unit
    on_end = processor.on_end

    def each(spans: Sequence[ReadableSpan], policy: str | None) -> None:
        for span in spans:
            on_end(span)

    return each


class QueueSpanProcessor(SpanProcessor):
    """Puts each ended, sampled span on a bounded export queue."""

    def __init__(self, queue: ExportQueue[ReadableSpan]) -> None:
        self.queue = queue
        # The span path calls this instance's on_end: the sampled-flag check and the put in
        # one frame (see _otel.put_if_sampled).
        self.__dict__["on_end"] = put_if_sampled(queue.put)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        self.__dict__["on_end"](span)

    def on_end_unit(self, spans: Sequence[ReadableSpan], policy: str | None) -> None:
        """A tail sampler's kept unit (every span of it sampled)."""
        self.queue.put_unit(spans, policy)

    def shutdown(self) -> None:
        # The handle shuts queues down with its deadline; the provider's call is a no-op then.
        self.queue.shutdown(timeout=5.0)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.queue.force_flush(timeout_millis / 1000)


class SyncSpanProcessor(SpanProcessor):
    """Exports each sampled span on the caller's thread (in-memory exporters for tests)."""

    def __init__(
        self,
        exporter: Any,
        stats: Stats,
        prepare: Callable[[list[Any]], list[Any]] | None = None,
    ) -> None:
        self.exporter = exporter
        self.prepare = prepare  # the scrubber (on the caller's thread here)
        self._exported = stats.counter("traces.exported")
        self._failed = stats.counter("traces.dropped.export_failed")
        self._queued = stats.counter("traces.queued")

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None or not context.trace_flags.sampled:
            return
        self._queued.incr()
        try:
            self.exporter.export(self.prepare([span]) if self.prepare else (span,))
            self._exported.incr()
        except Exception:
            self._failed.incr()

    def on_end_unit(self, spans: Sequence[ReadableSpan], policy: str | None) -> None:
        for span in spans:
            self.on_end(span)

    def shutdown(self) -> None:
        try:
            self.exporter.shutdown()
        except Exception:
            log.debug("sfumato: exporter shutdown raised", exc_info=True)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class FanOutSpanProcessor(SpanProcessor):
    """Hands each span to several processors; one processor's failure does not stop the rest."""

    def __init__(self, processors: Sequence[SpanProcessor]) -> None:
        self.processors = tuple(processors)
        self._units = [unit_taker(p) for p in self.processors]

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        for p in self.processors:
            p.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        for p in self.processors:
            try:
                p.on_end(span)
            except Exception:
                log.debug("sfumato: span processor raised", exc_info=True)

    def on_end_unit(self, spans: Sequence[ReadableSpan], policy: str | None) -> None:
        for take in self._units:
            try:
                take(spans, policy)
            except Exception:
                log.debug("sfumato: span processor raised", exc_info=True)

    def shutdown(self) -> None:
        for p in self.processors:
            p.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all([p.force_flush(timeout_millis) for p in self.processors])


class QueueLogProcessor(LogRecordProcessor):
    """Puts each emitted log record on a bounded export queue."""

    def __init__(self, queue: ExportQueue[ReadableLogRecord]) -> None:
        self.queue = queue

    def on_emit(self, log_record: ReadWriteLogRecord) -> None:
        # Same detachment as the SDK's batch processor: drop the (possibly large) context.
        record = copy.copy(log_record.log_record)
        record.context = Context()
        self.queue.put(
            ReadableLogRecord(
                log_record=record,
                resource=log_record.resource or Resource.get_empty(),
                instrumentation_scope=log_record.instrumentation_scope,
                limits=log_record.limits,
            )
        )

    def shutdown(self) -> None:
        self.queue.shutdown(timeout=5.0)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.queue.force_flush(timeout_millis / 1000)
