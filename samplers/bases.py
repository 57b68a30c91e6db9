"""The protocol for writing a sampler: decide at start, and optionally again at trace end.

Subclass ``HeadSampler`` and return a keep probability from ``probability(start)``; sfumato
turns it into a consistent decision (R >= T), writes ``th`` into tracestate, records the
adjusted count and policy on the span, makes children of a local parent follow it, and turns
any exception into a counted, logged-once safe decision. Subclass ``TraceEndSampler`` and
also implement ``keep_trace(trace)`` to keep whole traces when they end (kept with
probability 1, so with adjusted count 1); it must then be the root sampler.

docs/samplers.md walks through writing, registering and testing one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from opentelemetry.context import Context
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanContext, SpanKind, get_current_span
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes
from sfumato._guards import Guard

from ._consistent import (
    MAX_THRESHOLD,
    drop_result,
    follow_parent,
    keep_result,
    randomness,
    threshold,
)
from ._tail import FinishedTrace, TailProcessor

if TYPE_CHECKING:
    from sfumato._stats import Stats

__all__ = ["FinishedTrace", "HeadSampler", "SpanStart", "TraceEndSampler"]

_EMPTY: Mapping[str, Any] = {}


@dataclass(frozen=True)
class SpanStart:
    """What a head decision can see about a span being started."""

    name: str
    kind: SpanKind
    attributes: Mapping[str, Any]
    trace_id: int
    parent: SpanContext | None  # None for a root span
    context: Context | None  # the parent context (baggage, context variables' values)


class HeadSampler(Sampler):
    """Base class of a custom sampler that decides at span start."""

    guarded = True
    policy: ClassVar[str] = "custom"
    follow_parent: ClassVar[bool] = True  # a span with a local parent follows the parent

    def __init__(self, stats: Stats | None = None) -> None:
        self._guard = Guard(self.policy, stats, record_only=self._record_drops)

    _record_drops: ClassVar[bool] = False

    def probability(self, start: SpanStart) -> float:
        """The probability of keeping this span's trace, in [0, 1]."""
        raise NotImplementedError

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        try:
            parent_span = get_current_span(parent_context)
            parent = parent_span.get_span_context()
            ts = parent.trace_state
            if parent.is_valid and self.follow_parent and not parent.is_remote:
                result = follow_parent(parent, attributes, self.policy, parent_span)
            else:
                start = SpanStart(
                    name,
                    kind or SpanKind.INTERNAL,
                    attributes or _EMPTY,
                    trace_id,
                    parent if parent.is_valid else None,
                    parent_context,
                )
                t = threshold(float(self.probability(start)))
                r = randomness(trace_id, ts)
                if t < MAX_THRESHOLD and r >= t:
                    return keep_result(self.policy, t, attributes, ts, r)
                result = drop_result(ts)
            if self._record_drops and result.decision is Decision.DROP:
                return drop_result(result.trace_state, Decision.RECORD_ONLY, attributes)
            return result
        except Exception:
            return self._guard.fallback(parent_context, attributes)

    def get_description(self) -> str:
        return type(self).__name__


class TraceEndSampler(HeadSampler):
    """Base class of a custom sampler that also decides when the trace's local root ends.

    Every span is recorded (RECORD_ONLY where the head drops); at trace end ``keep_trace``
    sees the finished trace. True keeps it whole, re-marked sampled with adjusted count 1;
    False leaves the head decision. It must be the root of the sampler tree.
    """

    _record_drops: ClassVar[bool] = True
    max_traces: ClassVar[int] = 10_000
    max_spans_per_trace: ClassVar[int] = 1_000
    max_age_ms: ClassVar[int] = 120_000

    def keep_trace(self, trace: FinishedTrace) -> bool:
        return False

    def _tail_reason(self, trace: FinishedTrace) -> str | None:
        return "kept" if self.keep_trace(trace) else None

    def tail_processor(self, downstream: SpanProcessor, stats: Stats) -> SpanProcessor:
        return TailProcessor(
            downstream,
            stats,
            self._tail_reason,
            name=self.policy,
            max_traces=self.max_traces,
            max_spans_per_trace=self.max_spans_per_trace,
            max_age_ms=self.max_age_ms,
            keep_late_errors=False,
        )
