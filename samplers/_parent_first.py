"""The base of sfumato's samplers that decide from the parent's span context."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Sampler, SamplingResult
from opentelemetry.trace import Link, SpanContext, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes
from sfumato._guards import Guard
from sfumato._otel import span_context_in
from sfumato.plugin import SpanSampler

__all__ = ["ParentFirstSampler"]


class ParentFirstSampler(Sampler, SpanSampler):
    """A sfumato sampler that decides from its parent's span context: ``sample_span`` is the
    decision (the tracer calls it with the parent it has already looked up), and
    ``should_sample``, the SDK's entry, finds the parent and hands it on. Finding it is the
    one step outside ``sample_span``'s own guard, so it falls back here."""

    _guard: Guard
    # Set by each sampler: True when its decisions add only plain attribute values (see
    # sfumato.plugin.SpanSampler).
    plain_attributes: bool = False

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
            parent = span_context_in(parent_context)
        except Exception:
            return self._guard.fallback(parent_context, attributes)
        return self.sample_span(parent, parent_context, trace_id, name, kind, attributes, links)

    def sample_span(
        self,
        parent: SpanContext | None,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
    ) -> SamplingResult:
        """``should_sample`` given the valid parent span context (None for a root)."""
        raise NotImplementedError
