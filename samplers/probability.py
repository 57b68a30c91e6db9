"""Head samplers: ``always_on``, ``always_off``, ``ratio`` and ``parent_based``.

All of them speak OpenTelemetry's consistent probability sampling (see ``_consistent``):
a kept span carries ``ot=th:<hex>`` in its tracestate and its weight as attributes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanContext, SpanKind, get_current_span
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes
from pydantic import BaseModel, ConfigDict, Field
from sfumato._guards import Guard
from sfumato._otel import SPAN_KEY, TUPLE_LAYOUT, current_context
from sfumato.plugin import SamplerContext, SamplerPlugin, SamplerSpec

from ._consistent import (
    MAX_THRESHOLD,
    Delegate,
    Precision,
    drop_result,
    facts_of,
    follow_parent,
    keep_result,
    promises_plain,
    randomness,
    threshold,
    unflagged,
)
from ._parent_first import ParentFirstSampler

_RECORD_ONLY = Decision.RECORD_ONLY

if TYPE_CHECKING:
    from sfumato._stats import Stats

__all__ = [
    "AlwaysOff",
    "AlwaysOffSampler",
    "AlwaysOn",
    "AlwaysOnSampler",
    "ParentBased",
    "ParentBasedSampler",
    "Ratio",
    "RatioSampler",
    "counters",
]


class _Noop:
    """Stands in for a stats counter when a sampler is built without stats."""

    __slots__ = ()

    def incr(self) -> None:
        pass


def counters(stats: Stats | None, policy: str) -> tuple[Any, Any]:
    """(kept, dropped) counters of a policy: ``sampler.<policy>.kept`` / ``.dropped``."""
    if stats is None:
        return _Noop(), _Noop()
    return stats.counter(f"sampler.{policy}.kept"), stats.counter(f"sampler.{policy}.dropped")


class AlwaysOnSampler(ParentFirstSampler):
    """Keeps every span: threshold 0, adjusted count 1."""

    guarded = True
    plain_attributes = True  # see sfumato.plugin.SpanSampler

    def __init__(self, policy: str = "always_on") -> None:
        self.policy = policy
        self._guard = Guard(policy, None)

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
        """``should_sample`` given the parent span context (``sfumato.plugin.SpanSampler``)."""
        try:
            ts = None if parent is None else parent[4] if TUPLE_LAYOUT else parent.trace_state
            return keep_result(self.policy, 0, attributes, ts)
        except Exception:
            return self._guard.fallback(parent_context, attributes)

    def get_description(self) -> str:
        return "AlwaysOn"


class AlwaysOffSampler(Sampler):
    """Drops every span."""

    guarded = True
    plain_attributes = True
    policy = "always_off"

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
        return drop_result(get_current_span(parent_context).get_span_context().trace_state)

    def get_description(self) -> str:
        return "AlwaysOff"


class RatioSampler(Sampler):
    """Consistent probability sampling: keep when R >= T, T = (1 - rate) * 2**56.

    R is the incoming ``rv`` or the trace id's low 56 bits, so every span of a trace (and
    every service using the same rule) reaches the same decision at the same rate.
    """

    guarded = True
    plain_attributes = True

    def __init__(
        self,
        rate: float,
        policy: str = "ratio",
        stats: Stats | None = None,
        precision: int | None = None,
    ) -> None:
        self.rate = rate
        self.policy = policy
        self.threshold = threshold(rate, precision)
        self._guard = Guard(policy, stats)
        kept, dropped = counters(stats, policy)
        self._kept = kept.incr
        self._dropped = dropped.incr

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
            parent = get_current_span(parent_context).get_span_context()
            ts = parent.trace_state
            t = self.threshold
            r = randomness(trace_id, ts)
            if parent.is_valid and (not ts or facts_of(ts).rv < 0):
                unflagged(parent)
            if t < MAX_THRESHOLD and r >= t:
                self._kept()
                return keep_result(self.policy, t, attributes, ts, r)
            self._dropped()
            return drop_result(ts)
        except Exception:
            return self._guard.fallback(parent_context, attributes)

    def get_description(self) -> str:
        return f"ConsistentRatio{{{self.rate}}}"


class ParentBasedSampler(ParentFirstSampler):
    """Roots go to ``root``; a child goes to the delegate for its parent's kind, or, by
    default, follows its parent: same flag, same tracestate, the parent's weight."""

    guarded = True

    def __init__(
        self,
        root: Sampler,
        remote_parent_sampled: Sampler | None = None,
        remote_parent_not_sampled: Sampler | None = None,
        local_parent_sampled: Sampler | None = None,
        local_parent_not_sampled: Sampler | None = None,
        stats: Stats | None = None,
        record_only: bool = False,
    ) -> None:
        self.root = root
        self.delegates = (
            remote_parent_sampled,
            remote_parent_not_sampled,
            local_parent_sampled,
            local_parent_not_sampled,
        )
        self.record_only = record_only
        self._stats = stats
        self._guard = Guard("parent_based", stats, record_only=record_only)
        self._root = Delegate(root)
        self._delegates = tuple(Delegate(d) if d is not None else None for d in self.delegates)
        self.plain_attributes = all(
            promises_plain(s) for s in (root, *self.delegates) if s is not None
        )

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
        """``should_sample`` given the parent span context (``sfumato.plugin.SpanSampler``)."""
        try:
            if parent is None:
                return self._root.decide_parent(
                    parent, parent_context, trace_id, name, kind, attributes, links
                )
            if TUPLE_LAYOUT:  # (trace_id, span_id, is_remote, flags, state, is_valid)
                remote = parent[2]
                sampled = parent[3] & 1
            else:
                remote = parent.is_remote
                sampled = parent.trace_flags.sampled
            delegate = self._delegates[(0 if remote else 2) + (0 if sampled else 1)]
            if delegate is not None:
                return delegate.decide_parent(
                    parent, parent_context, trace_id, name, kind, attributes, links
                )
            if not sampled:
                ts = parent[4] if TUPLE_LAYOUT else parent.trace_state
                if self.record_only:
                    return drop_result(ts, _RECORD_ONLY, attributes)
                return drop_result(ts)
            if not remote:
                context = parent_context if parent_context is not None else current_context()
                parent_span: Any = context.get(SPAN_KEY)
                return follow_parent(parent, attributes, "parent", parent_span)
            return follow_parent(parent, attributes, "parent")
        except Exception:
            return self._guard.fallback(parent_context, attributes)

    def marked(self) -> ParentBasedSampler:
        """The same sampler, RECORD_ONLY (with the span's attributes) where it would drop:
        what ``error-always`` needs of the sampler under it, so that it calls this one's
        ``sample_span`` directly, with no step in between."""
        copy = ParentBasedSampler(self.root, *self.delegates, stats=self._stats, record_only=True)
        copy._root = self._root.marked()
        copy._delegates = tuple(d.marked() if d is not None else None for d in self._delegates)
        return copy

    def get_description(self) -> str:
        return f"ParentBased{{root:{self.root.get_description()}}}"


# -- plugins -------------------------------------------------------------------------------


class AlwaysOn(SamplerPlugin):
    def build(self, options: Any, context: SamplerContext) -> Sampler:
        return AlwaysOnSampler()


class AlwaysOff(SamplerPlugin):
    def build(self, options: Any, context: SamplerContext) -> Sampler:
        return AlwaysOffSampler()


class RatioOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rate: float = Field(ge=0.0, le=1.0, description="Probability of keeping a trace.")
    precision: Precision = 4


class Ratio(SamplerPlugin):
    Options: ClassVar[type[BaseModel]] = RatioOptions

    def build(self, options: Any, context: SamplerContext) -> Sampler:
        return RatioSampler(options.rate, stats=context.stats, precision=options.precision)


class ParentBasedOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    root: SamplerSpec = Field(
        default_factory=lambda: SamplerSpec(type="always_on"),
        description="Sampler for root spans; children follow their parent.",
    )
    remote_parent_sampled: SamplerSpec | None = Field(
        default=None, description="For a span whose remote parent is sampled (default: follow)."
    )
    remote_parent_not_sampled: SamplerSpec | None = Field(
        default=None, description="For a span whose remote parent is not sampled (default: drop)."
    )
    local_parent_sampled: SamplerSpec | None = Field(
        default=None, description="For a span whose local parent is sampled (default: follow)."
    )
    local_parent_not_sampled: SamplerSpec | None = Field(
        default=None, description="For a span whose local parent is not sampled (default: drop)."
    )


class ParentBased(SamplerPlugin):
    Options: ClassVar[type[BaseModel]] = ParentBasedOptions

    def build(self, options: Any, context: SamplerContext) -> Sampler:
        def nested(spec: SamplerSpec | None) -> Sampler | None:
            return context.build(spec) if spec is not None else None

        return ParentBasedSampler(
            context.build(options.root),
            nested(options.remote_parent_sampled),
            nested(options.remote_parent_not_sampled),
            nested(options.local_parent_sampled),
            nested(options.local_parent_not_sampled),
            stats=context.stats,
        )
