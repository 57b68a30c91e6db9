"""Samplers never raise into the application: a failing decision falls back, counted and
logged once."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanContext, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from ._consistent import MALFORMED, drop_result, follow_parent, parent_span_context

if TYPE_CHECKING:
    from sfumato._stats import Stats

__all__ = ["Guard", "GuardedSampler", "ParentFirstSampler"]

log = logging.getLogger("sfumato")


class Guard:
    """The safe decision a sampler falls back to when its own code raises.

    Safe means: follow the parent's flag when there is a parent (the trace stays whole),
    drop a root (an exception must never turn into keeping everything). ``record_only``
    makes the drop RECORD_ONLY, for samplers under a tail stage that may still rescue it.
    Each failure bumps ``sampler.errors`` and ``sampler.<policy>.errors``; the first is logged
    with its traceback, the rest are only counted so a broken sampler cannot flood the log.
    """

    __slots__ = ("_errors", "_logged", "_policy_errors", "_strict", "policy", "record_only")

    def __init__(self, policy: str, stats: Stats | None, record_only: bool = False) -> None:
        from sfumato._guards import strict

        self.policy = policy
        self.record_only = record_only
        self._logged = False
        # SFUMATO_STRICT=1 (CI): the sampler's exception reaches the caller, once counted.
        self._strict = strict()
        if stats is not None:
            stats.adopt("sampling.tracestate.invalid", MALFORMED)
            self._errors: Any = stats.counter("sampler.errors")
            self._policy_errors: Any = stats.counter(f"sampler.{policy}.errors")
        else:
            self._errors = self._policy_errors = None

    def fallback(
        self, parent_context: Context | None, attributes: Attributes = None
    ) -> SamplingResult:
        """Call from the ``except`` block that caught the sampler's exception."""
        if self._strict:
            if self._errors is not None:
                self._errors.incr()
                self._policy_errors.incr()
            raise  # the exception the caller is handling
        try:
            if self._errors is not None:
                self._errors.incr()
                self._policy_errors.incr()
            if not self._logged:
                self._logged = True
                log.warning(
                    "sfumato: sampler %r raised; falling back to a safe decision "
                    "(counted as sampler.errors, logged once)",
                    self.policy,
                    exc_info=True,
                )
            parent = parent_span_context(parent_context)
            if parent is not None and parent.trace_flags.sampled:
                return follow_parent(parent, attributes, f"{self.policy}:fallback")
            decision = Decision.RECORD_ONLY if self.record_only else Decision.DROP
            ts = parent.trace_state if parent is not None else None
            return drop_result(ts, decision, attributes)
        except Exception:  # the fallback itself must not raise either
            return drop_result(None)


class ParentFirstSampler(Sampler):
    """A sfumato sampler that decides from its parent's span context: ``sample_span`` is the
    decision (the tracer calls it with the parent it has already looked up), and
    ``should_sample``, the SDK's entry, finds the parent and hands it on. Finding it is the
    one step outside ``sample_span``'s own guard, so it falls back here."""

    _guard: Guard

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
            parent = parent_span_context(parent_context)
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


class GuardedSampler(Sampler):
    """Wraps a sampler that is not sfumato's own (an OpenTelemetry sampler, a plugin's) so
    that its exceptions become the guard's safe decision."""

    guarded = True

    def __init__(self, inner: Sampler, policy: str, stats: Stats | None) -> None:
        self.inner = inner
        self._guard = Guard(policy, stats)
        self._should_sample = inner.should_sample

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
            return self._should_sample(
                parent_context, trace_id, name, kind, attributes, links, trace_state
            )
        except Exception:
            return self._guard.fallback(parent_context, attributes)

    def get_description(self) -> str:
        try:
            return f"Guarded{{{self.inner.get_description()}}}"
        except Exception:
            return "Guarded{?}"

    def __getattr__(self, name: str) -> Any:
        # tail_processor and friends of the wrapped sampler stay reachable.
        # (not the tracer's fast path or a marked variant: those would skip the guard)
        if name in ("inner", "sample_span", "marked"):
            raise AttributeError(name)
        return getattr(self.inner, name)
