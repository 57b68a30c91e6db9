"""Plugin code isolated from the application: raising hooks, span processors and samplers are
counted and logged once, and ``SFUMATO_STRICT=1`` turns them into errors (for CI).

What a plugin runs on the application's thread (a span processor's ``on_start`` /
``on_end``) or while sfumato starts (a hook) must not break the application. Each failure
bumps ``plugins.errors`` and ``plugins.<name>.errors``; the first of each plugin is logged
with its traceback. In strict mode the exception is re-raised after it is counted (hooks at
configure time as a ConfigError), so a test suite sees it at once.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from ._decisions import drop_result, follow_parent
from ._errors import ConfigError
from ._otel import OnEndingForwarder, on_ending_of, span_context_in
from ._stats import Stats
from ._strict import strict
from ._threshold import MALFORMED

__all__ = [
    "Guard",
    "GuardedSampler",
    "GuardedSpanProcessor",
    "PluginErrors",
    "call_hook",
    "strict",
]

log = logging.getLogger("sfumato")


class PluginErrors:
    """Counts and logs (once per plugin) the failures of one plugin."""

    __slots__ = ("_errors", "_logged", "_mine", "name")

    def __init__(self, name: str, stats: Stats) -> None:
        self.name = name
        self._errors = stats.counter("plugins.errors")
        self._mine = stats.counter(f"plugins.{name}.errors")
        self._logged = False

    def record(self, what: str) -> None:
        """Count a failure, logging the first; from an ``except`` block the log line has the
        traceback, elsewhere (a plugin that failed to import, described in ``what``) not."""
        self._errors.incr()
        self._mine.incr()
        if not self._logged:
            self._logged = True
            log.warning(
                "sfumato: plugin %r raised in %s; isolated (counted as plugins.errors, "
                "logged once; SFUMATO_STRICT=1 makes it an error)",
                self.name,
                what,
                exc_info=sys.exc_info()[0] is not None,
            )


class GuardedSpanProcessor(OnEndingForwarder, SpanProcessor):
    """A plugin's span processor whose exceptions never reach the application.

    The SDK calls every processor's ``on_start`` and ``on_end`` on the application's thread
    without catching anything, so an unguarded processor's bug is the application's crash.
    """

    def __init__(self, processor: SpanProcessor, name: str, stats: Stats) -> None:
        self.processor = processor
        self.errors = PluginErrors(name, stats)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            self.processor.on_start(span, parent_context=parent_context)
        except Exception:
            self.errors.record("on_start")
            if strict():
                raise

    def on_ending(self, span: Span) -> None:
        try:
            on_ending = on_ending_of(self.processor)
            if on_ending is not None:
                on_ending(span)
        except Exception:
            self.errors.record("on_ending")
            if strict():
                raise

    def on_end(self, span: ReadableSpan) -> None:
        try:
            self.processor.on_end(span)
        except Exception:
            self.errors.record("on_end")
            if strict():
                raise

    def shutdown(self) -> None:
        try:
            self.processor.shutdown()
        except Exception:
            self.errors.record("shutdown")

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        try:
            return bool(self.processor.force_flush(timeout_millis))
        except Exception:
            self.errors.record("force_flush")
            return False


def call_hook(pm: Any, hook: str, stats: Stats, **kwargs: Any) -> list[Any]:
    """Call each implementation of ``hook`` on its own, as pluggy would (last registered
    first), so one raising plugin does not take the others' results with it.

    A raising implementation is counted and logged once and left out; in strict mode it is a
    ConfigError naming the plugin.
    """
    results: list[Any] = []
    for impl in reversed(getattr(pm.hook, hook).get_hookimpls()):
        try:
            result = impl.function(**{name: kwargs[name] for name in impl.argnames})
        except Exception as exc:
            name = impl.plugin_name
            if strict():
                raise ConfigError(
                    f"plugin {name!r} raised in {hook}: {type(exc).__name__}: {exc} "
                    "(SFUMATO_STRICT is set)"
                ) from None
            PluginErrors(name, stats).record(hook)
            continue
        if result is not None:
            results.append(result)
    return results


# -- samplers ------------------------------------------------------------------------------------


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
            parent = span_context_in(parent_context)
            if parent is not None and parent.trace_flags.sampled:
                return follow_parent(parent, attributes, f"{self.policy}:fallback")
            decision = Decision.RECORD_ONLY if self.record_only else Decision.DROP
            ts = parent.trace_state if parent is not None else None
            return drop_result(ts, decision, attributes)
        except Exception:  # the fallback itself must not raise either
            return drop_result(None)


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
