"""``error-always``: keep every trace that holds an error (or is slow); otherwise defer to a
nested sampler. The decision is taken in-process when the trace's local root span ends."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from opentelemetry.context import Context
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.sdk.trace.sampling import Sampler, SamplingResult
from opentelemetry.trace import Link, SpanContext, SpanKind
from opentelemetry.util.types import Attributes
from pydantic import BaseModel, ConfigDict, Field
from sfumato._errors import ConfigError
from sfumato._guards import Guard
from sfumato.plugin import SamplerContext, SamplerPlugin, SamplerSpec, SpanSampler

from ._consistent import Delegate, Markable, promises_plain
from ._parent_first import ParentFirstSampler
from ._rules import Rule, tail_policy
from ._tail import FinishedTrace, TailProcessor

if TYPE_CHECKING:
    from sfumato._stats import Stats

__all__ = ["ErrorAlways", "ErrorAlwaysOptions", "ErrorAlwaysSampler", "TailBufferOptions"]

ROOT_PATH = "telemetry.sampler"


class TailBufferOptions(BaseModel):
    """The buffer of the samplers that decide when a local unit ends."""

    model_config = ConfigDict(extra="forbid")

    max_traces: int = Field(default=10_000, ge=1, description="Open traces buffered at most.")
    max_spans_per_trace: int = Field(default=1_000, ge=1, description="Spans buffered per trace.")
    max_age_ms: int = Field(default=120_000, ge=1, description="A trace open longer is decided.")
    decision_wait_ms: int = Field(
        default=1_000,
        ge=0,
        le=600_000,
        description="How long a unit decided at its root's end waits for a late error that "
        "would keep it whole: a dropped unit keeps its spans, one kept at p < 1 is sent after "
        "it (0: no wait).",
    )
    decision_cache_size: int = Field(
        default=100_000,
        ge=1,
        description="Decided traces remembered for their late spans (the last half at least).",
    )


class ErrorAlwaysOptions(TailBufferOptions):
    otherwise: SamplerSpec = Field(
        default_factory=lambda: SamplerSpec(type="always_off"),
        description="Decides the traces without an error (default: always_off, errors only).",
    )
    slow_ms: float | None = Field(
        default=None, gt=0, description="Also keep every trace whose local root lasts this long."
    )
    keep: Literal["trace", "error-path"] = Field(
        default="trace",
        description="'trace': the whole kept trace; 'error-path': the error spans and their "
        "ancestors (plus whatever the head kept).",
    )
    rules: list[Rule] = Field(
        default_factory=list,
        description="Rules for the units without an error (and not slow), first match "
        "first: each rule's 'when' and its 'sample' probability or 'drop' (see the tail "
        "sampler).",
    )
    max_per_second: float | None = Field(
        default=None, gt=0, description="Units the rules keep per second at most, all together."
    )


class ErrorAlwaysSampler(ParentFirstSampler):
    """Head: the nested sampler's decision, but RECORD_ONLY where it would drop, so the tail
    processor sees every span. Tail: see ``TailProcessor``; its policy keeps a unit with an
    error (``errors``), then one that was slow, then asks the rules (``tail_policy``).

    A nested sampler of sfumato's own that can be ``marked()`` makes its drops RECORD_ONLY
    itself; its ``sample_span`` is then this sampler's, with no step in between on the
    tracer's path (its own guard falls back to RECORD_ONLY too). Any other is called through
    a ``Delegate`` that turns its DROP into RECORD_ONLY. The ``tail`` sampler is this
    sampler with ``errors=False`` and rules alone.
    """

    guarded = True

    def __init__(
        self,
        otherwise: Sampler,
        options: TailBufferOptions,
        stats: Stats | None = None,
        *,
        name: str = "error-always",
        errors: bool = True,
        build: Callable[[SamplerSpec], Sampler] | None = None,
    ) -> None:
        self.otherwise = otherwise
        self.options = options
        self.name = name
        self.errors = errors
        self._otherwise = Delegate(otherwise, record_only=True)
        slow_ms = getattr(options, "slow_ms", None)
        self._slow_ns = int(slow_ms * 1_000_000) if slow_ms else None
        self._rules: list[Rule] = list(getattr(options, "rules", ()))
        self._policy = tail_policy(options, name, errors=errors, slow_ns=self._slow_ns, build=build)
        self._guard = Guard(name, stats, record_only=True)
        self.plain_attributes = promises_plain(otherwise)
        if isinstance(otherwise, Markable):
            marked = otherwise.marked()
            if isinstance(marked, SpanSampler):
                self.sample_span = marked.sample_span  # type: ignore[method-assign]

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
            return self._otherwise.decide_parent(
                parent, parent_context, trace_id, name, kind, attributes, links
            )
        except Exception:
            return self._guard.fallback(parent_context, attributes)

    def keep_reason(self, trace: FinishedTrace) -> Any:
        """The policy: "error", "slow", a rule's verdict, or None (the head decides)."""
        return self._policy(trace)

    def tail_processor(self, downstream: SpanProcessor, stats: Stats) -> SpanProcessor:
        o = self.options
        return TailProcessor(
            downstream,
            stats,
            self.keep_reason,
            name=self.name,
            keep=getattr(o, "keep", "trace"),
            max_traces=o.max_traces,
            max_spans_per_trace=o.max_spans_per_trace,
            max_age_ms=o.max_age_ms,
            decision_cache_size=o.decision_cache_size,
            decision_wait_ms=o.decision_wait_ms,
            keep_late_errors=getattr(o, "keep_late_errors", True),
            # keep_reason without slow_ms or rules keeps exactly the traces with an error
            errors_only=self.errors
            and self._slow_ns is None
            and not self._rules
            and type(self).keep_reason is _KEEP_REASON,
        )

    def replace_policy_of(self, processor: TailProcessor) -> None:
        """Have the running ``processor`` (built by the tree this one replaces) decide with
        this sampler's policy and bounds from its next decision on (a reload). ValueError
        when ``processor`` is another kind of tail stage (that needs a restart)."""
        if not isinstance(processor, TailProcessor):
            raise ValueError(f"the running tail stage is a {type(processor).__name__}")
        o = self.options
        processor.replace_policy(
            self.keep_reason,
            name=self.name,
            keep=getattr(o, "keep", "trace"),
            keep_late_errors=getattr(o, "keep_late_errors", True),
            errors_only=self.errors
            and self._slow_ns is None
            and not self._rules
            and type(self).keep_reason is _KEEP_REASON,
            max_traces=o.max_traces,
            max_spans_per_trace=o.max_spans_per_trace,
            max_age_ms=o.max_age_ms,
            decision_wait_ms=o.decision_wait_ms,
        )

    def get_description(self) -> str:
        label = "ErrorAlways" if self.errors else "Tail"
        return f"{label}{{otherwise:{self.otherwise.get_description()}}}"


_KEEP_REASON = ErrorAlwaysSampler.keep_reason


class ErrorAlways(SamplerPlugin):
    Options: ClassVar[type[BaseModel]] = ErrorAlwaysOptions

    def build(self, options: Any, context: SamplerContext) -> Sampler:
        if context.path != ROOT_PATH:
            raise ConfigError(
                "error-always decides when a trace ends, so it must be the root of the sampler "
                "tree ([telemetry.sampler]); nest the other samplers under its 'otherwise'",
                key=context.path,
            )
        return ErrorAlwaysSampler(
            context.build(options.otherwise), options, context.stats, build=context.build
        )
