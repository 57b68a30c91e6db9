"""Samplers' building blocks for consistent probability sampling: a fixed threshold decided
from the parent's trace state (``Consistent``), a nested sampler's label (``Delegate``), and
the ``precision`` option. The arithmetic is in ``sfumato._threshold``, the decisions in
``sfumato._decisions``; both are re-exported here for the samplers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Protocol, runtime_checkable

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import SpanContext
from opentelemetry.trace.span import TraceState
from pydantic import Field
from sfumato._decisions import (
    DROP,
    RECORD_ONLY,
    Consistent,
    drop_result,
    facts_of,
    follow_parent,
    keep_result,
    randomness,
    state_with_th,
    unflagged,
)
from sfumato._otel import span_context_in
from sfumato._threshold import (
    ADJUSTED_COUNT,
    MALFORMED,
    MAX_THRESHOLD,
    POLICY,
    PRECISION,
    RANDOM_MASK,
    SAMPLE_RATE,
    adjusted_count,
    parse_ot,
    probability,
    th_hex,
    threshold,
    weight_attributes,
)
from sfumato.plugin import SpanSampler

__all__ = [
    "ADJUSTED_COUNT",
    "DROP",
    "MALFORMED",
    "MAX_THRESHOLD",
    "POLICY",
    "PRECISION",
    "RANDOM_MASK",
    "RECORD_ONLY",
    "SAMPLE_RATE",
    "Consistent",
    "Delegate",
    "Markable",
    "Precision",
    "adjusted_count",
    "consistent",
    "drop_result",
    "facts_of",
    "follow_parent",
    "keep_result",
    "parent_span_context",
    "parse_ot",
    "probability",
    "promises_plain",
    "randomness",
    "state_with_th",
    "th_hex",
    "threshold",
    "unflagged",
    "weight_attributes",
]

# The option those samplers take.
Precision = Annotated[
    int,
    Field(
        ge=1,
        le=14,
        description="Hex digits of the thresholds written to tracestate (th), 4 as the "
        "specification recommends (more near probability 0).",
    ),
]


# The parent's span context when it is valid, else None (a root span).
parent_span_context = span_context_in


@runtime_checkable
class Markable(Protocol):
    """A sampler with a marked form: the same decisions, but RECORD_ONLY (with the span's
    own attributes) where it would drop: what a tail stage needs of the sampler under it,
    so that it sees every span."""

    def marked(self) -> Sampler: ...


def promises_plain(sampler: object) -> bool:
    """Whether ``sampler`` is a ``SpanSampler`` whose decisions add only plain attributes."""
    return isinstance(sampler, SpanSampler) and sampler.plain_attributes is True


class Delegate:
    """Another sampler in a sfumato sampler's tree: called through ``sample_span`` when it
    has one (the parent span context handed on), else through ``should_sample``.
    ``record_only`` turns its DROP into RECORD_ONLY with the span's own attributes."""

    __slots__ = ("fast", "label", "record_only", "sampler", "slow")

    def __init__(self, sampler: Any, record_only: bool = False, label: str | None = None) -> None:
        self.sampler = sampler
        self.record_only = record_only
        self.label = label  # recorded before the nested policy: "<label>/<policy>"
        self.fast = sampler.sample_span if isinstance(sampler, SpanSampler) else None
        self.slow = sampler.should_sample

    @property
    def plain_attributes(self) -> bool:
        return promises_plain(self.sampler)

    def decide_parent(
        self,
        parent: SpanContext | None,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: Any,
        attributes: Mapping[str, Any] | None,
        links: Any,
    ) -> SamplingResult:
        fast = self.fast
        if fast is not None:
            result: SamplingResult = fast(
                parent, parent_context, trace_id, name, kind, attributes, links
            )
        else:
            result = self.slow(parent_context, trace_id, name, kind, attributes, links)
        if self.record_only and result.decision is Decision.DROP:
            return drop_result(result.trace_state, Decision.RECORD_ONLY, attributes)
        label = self.label
        if label is not None and result.attributes:
            policy = result.attributes.get(POLICY)
            if policy is not None and not str(policy).startswith(label):
                labelled = dict(result.attributes)
                labelled[POLICY] = f"{label}/{policy}"
                return SamplingResult(result.decision, labelled, result.trace_state)
        return result

    def marked(self) -> Delegate:
        """RECORD_ONLY where it would drop: the sampler's own marked form when it has one."""
        if isinstance(self.sampler, Markable):
            return Delegate(self.sampler.marked(), label=self.label)
        return Delegate(self.sampler, record_only=True, label=self.label)


def consistent(
    t: int,
    policy: str,
    trace_id: int,
    attributes: Mapping[str, Any] | None,
    trace_state: TraceState | None,
) -> SamplingResult:
    """Keep when R >= t, recording th and the weight; drop otherwise."""
    if t < MAX_THRESHOLD and randomness(trace_id, trace_state) >= t:
        return keep_result(policy, t, attributes, trace_state, randomness(trace_id, trace_state))
    return drop_result(trace_state)
