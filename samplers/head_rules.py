"""``rules``: head sampling rules, as Datadog's: the first rule that matches a new trace's
root span decides it, at its rate and within its ``max_per_second``; a span with a parent
follows the parent. ``span_rules`` keep single spans of the traces dropped (Datadog's span
sampling), each marked and counted apart.

    [telemetry.sampler]
    type = "rules"
    otherwise = { type = "ratio", rate = 0.1 }    # roots no rule matches

    [[telemetry.sampler.rules]]
    name = "health"
    span = "GET /health*"                        # globs on the span name
    attributes = { "http.route" = "/health*" }   # and on the root's start attributes
    sample = 0.0

    [[telemetry.sampler.rules]]
    name = "checkout"
    service = "shop-*"                           # and on service.name
    resource = { "deployment.environment" = "prod*" }
    sample = 1.0
    max_per_second = 50

    [[telemetry.sampler.span_rules]]
    name = "charges"
    span = "charge *"
    sample = 1.0
    max_per_second = 20

``service`` and ``resource`` are matched once, when the tree is built, against the
configuration's service name, version, environment and ``[telemetry.resource]``: a rule
for another service is left out and costs nothing.
"""

from __future__ import annotations

import fnmatch
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanContext, SpanKind
from opentelemetry.util.types import Attributes
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sfumato._decisions import drop_result, follow_parent, keep_result, randomness
from sfumato._guards import Guard
from sfumato._otel import attributes_of
from sfumato._otel import is_sampled as _sampled
from sfumato._threshold import MAX_THRESHOLD, probability, threshold
from sfumato.plugin import SamplerContext, SamplerPlugin, SamplerSpec

from ._consistent import Delegate, promises_plain
from ._parent_first import ParentFirstSampler
from ._rules import Cap, Verdict, capped_threshold
from ._tail import _decision, forced_copy

if TYPE_CHECKING:
    from sfumato._stats import Stats

__all__ = ["HeadRule", "HeadRules", "HeadRulesOptions", "HeadRulesSampler", "SpanRule"]

POLICY = "rules"
_RECORD_ONLY = Decision.RECORD_ONLY


class _Match(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="The rule's label: kept spans carry sampling.policy = 'rules:<name>'.",
    )
    span: str | None = Field(default=None, description="A glob on the span name.")
    attributes: dict[str, str] = Field(
        default_factory=dict,
        description="Globs on the span's start attributes (numbers and booleans compared as "
        "their text); every one must match.",
    )
    sample: float = Field(default=1.0, ge=0.0, le=1.0, description="The rate kept.")
    max_per_second: float | None = Field(
        default=None,
        gt=0,
        description="Kept at most this many a second: beyond it, the next second's rate is "
        "lowered and the weights raised to match.",
    )


class HeadRule(_Match):
    service: str | None = Field(default=None, description="A glob on service.name.")
    resource: dict[str, str] = Field(
        default_factory=dict, description="Globs on resource attributes; every one must match."
    )


class SpanRule(_Match):
    @model_validator(mode="after")
    def _names_something(self) -> SpanRule:
        if self.span is None and not self.attributes:
            raise ValueError("a span rule names the spans it keeps: give span or attributes")
        return self


class HeadRulesOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[HeadRule] = Field(
        default_factory=list, description="First match decides a new trace's root."
    )
    span_rules: list[SpanRule] = Field(
        default_factory=list,
        description="Single spans kept from the traces the rules drop (each span decided on "
        "its own, marked sampling.policy = 'rules:span:<name>').",
    )
    otherwise: SamplerSpec = Field(
        default_factory=lambda: SamplerSpec(type="always_on"),
        description="Decides the roots no rule matches.",
    )


def _glob(pattern: str) -> Callable[[str], bool]:
    compiled = re.compile(fnmatch.translate(pattern))
    return lambda text: compiled.match(text) is not None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


class _Compiled:
    """A rule's span name and attribute globs as functions, its threshold and its cap."""

    __slots__ = ("attributes", "cap", "capped", "label", "lock", "name", "span", "t")

    def __init__(
        self,
        rule: _Match,
        label: str,
        clock: Callable[[], float],
        capped: Any = None,
    ) -> None:
        self.name = rule.name
        self.capped = capped  # the counter of what a burst past twice the cap refused
        self.label = label
        self.span = _glob(rule.span) if rule.span is not None else None
        self.attributes = [(key, _glob(pattern)) for key, pattern in rule.attributes.items()]
        self.t = threshold(rule.sample) if rule.sample > 0 else MAX_THRESHOLD
        self.cap = Cap(rule.max_per_second, clock) if rule.max_per_second else None
        self.lock = threading.Lock()

    def matches(self, name: str, attributes: Mapping[str, Any] | None) -> bool:
        if self.span is not None and not self.span(name):
            return False
        for key, test in self.attributes:
            text = _text(attributes.get(key)) if attributes else None
            if text is None or not test(text):
                return False
        return True

    def threshold_for(self, r: int) -> int | None:
        """The threshold a unit of randomness ``r`` is kept at, or None: the rule's rate,
        lowered by its cap; a burst past twice the cap is refused and counted."""
        t = self.t
        if t >= MAX_THRESHOLD:
            return None
        cap = self.cap
        if cap is None:
            return t if r >= t else None
        with self.lock:
            kept, refused = capped_threshold(probability(t), r, (cap,))
        if refused and self.capped is not None:
            self.capped.incr()
        return kept


def _resource_of(settings: Any) -> dict[str, str]:
    found = {str(k): str(v) for k, v in (settings.resource or {}).items()}
    found["service.name"] = settings.service_name
    if settings.service_version:
        found.setdefault("service.version", settings.service_version)
    if settings.environment:
        found.setdefault("deployment.environment", settings.environment)
        found.setdefault("deployment.environment.name", settings.environment)
    return found


def _for_this_service(rule: HeadRule, resource: Mapping[str, str]) -> bool:
    if rule.service is not None and not _glob(rule.service)(resource["service.name"]):
        return False
    return all(
        key in resource and _glob(pattern)(resource[key]) for key, pattern in rule.resource.items()
    )


class HeadRulesSampler(ParentFirstSampler):
    """Roots: the first matching rule, else ``otherwise``. Children: the parent's decision.
    With span rules, a span that a span rule could keep is recorded (RECORD_ONLY) in a
    dropped trace, and ``SpanRulesProcessor`` decides it when it ends."""

    guarded = True

    def __init__(
        self,
        rules: Sequence[_Compiled],
        span_rules: Sequence[_Compiled],
        otherwise: Sampler,
        stats: Stats | None = None,
    ) -> None:
        self.rules = list(rules)
        self.span_rules = list(span_rules)
        self.otherwise = otherwise
        self._otherwise = Delegate(otherwise, record_only=False)
        self._guard = Guard(POLICY, stats)
        self.plain_attributes = promises_plain(otherwise)
        self._stats = stats

    def _recorded(self, name: str, attributes: Mapping[str, Any] | None) -> bool:
        return any(rule.matches(name, attributes) for rule in self.span_rules)

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
        try:
            if parent is not None:
                result = follow_parent(parent, attributes, POLICY)
            else:
                result = self._root(parent_context, trace_id, name, kind, attributes, links)
            if (
                self.span_rules
                and result.decision is not Decision.RECORD_AND_SAMPLE
                and self._recorded(name, attributes)
            ):
                return drop_result(result.trace_state, _RECORD_ONLY, attributes)
            return result
        except Exception:
            return self._guard.fallback(parent_context, attributes)

    def _root(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None,
        attributes: Attributes,
        links: Sequence[Link] | None,
    ) -> SamplingResult:
        for rule in self.rules:
            if not rule.matches(name, attributes):
                continue
            r = randomness(trace_id, None)
            t = rule.threshold_for(r)
            if t is None:
                return drop_result(None)
            return keep_result(rule.label, t, attributes, None, r)
        return self._otherwise.decide_parent(
            None, parent_context, trace_id, name, kind, attributes, links
        )

    def get_description(self) -> str:
        names = ", ".join(r.name for r in self.rules)
        return f"Rules{{[{names}], otherwise:{self.otherwise.get_description()}}}"


class SpanRulesProcessor(SpanProcessor):
    """In front of the export processors: sampled spans go on; a span of a dropped trace
    that a span rule keeps goes on alone, as a copy marked sampled at the rule's weight
    (``sampling.policy = 'rules:span:<name>'``), counted ``rules.spans.kept.<name>``."""

    def __init__(self, downstream: SpanProcessor, rules: Sequence[_Compiled], stats: Stats) -> None:
        self.downstream = downstream
        self.rules = list(rules)
        self._stats = stats

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass  # the export processors behind it take nothing at the start (as TailProcessor)

    def on_end(self, span: ReadableSpan) -> None:
        if _sampled(span):
            self.downstream.on_end(span)
            return
        try:
            attributes = attributes_of(span)
            for rule in self.rules:
                if not rule.matches(span.name, attributes):
                    continue
                ctx = span.context
                assert ctx is not None
                t = rule.threshold_for(randomness(ctx.trace_id, ctx.trace_state))
                if t is None:
                    self._stats.counter(f"rules.spans.dropped.{rule.name}").incr()
                    return
                decision = _decision(POLICY, Verdict(f"span:{rule.name}", True, t))
                self._stats.counter(f"rules.spans.kept.{rule.name}").incr()
                self.downstream.on_end(forced_copy(span, decision))
                return
        except Exception:
            self._stats.counter("rules.spans.errors").incr()

    def shutdown(self) -> None:
        self.downstream.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.downstream.force_flush(timeout_millis)


class HeadRulesWithSpans(HeadRulesSampler):
    """``HeadRulesSampler`` with span rules: a tail stage of one light processor."""

    def tail_processor(self, downstream: SpanProcessor, stats: Stats) -> SpanProcessor:
        return SpanRulesProcessor(downstream, self.span_rules, stats)

    def replace_policy_of(self, processor: SpanProcessor) -> None:
        """The running processor keeps single spans by these span rules from now on (a
        reload). ValueError when it is another kind of tail stage."""
        if not isinstance(processor, SpanRulesProcessor):
            raise ValueError(f"the running tail stage is a {type(processor).__name__}")
        processor.rules = list(self.span_rules)


class HeadRules(SamplerPlugin):
    Options: ClassVar[type[BaseModel]] = HeadRulesOptions

    def build(self, options: Any, context: SamplerContext) -> Sampler:
        import time

        resource = _resource_of(context.settings)
        stats = context.stats

        def capped(name: str) -> Any:
            return stats.counter(f"rules.capped.{name}") if stats is not None else None

        rules = [
            _Compiled(rule, f"{POLICY}:{rule.name}", time.monotonic, capped(rule.name))
            for rule in options.rules
            if _for_this_service(rule, resource)
        ]
        spans = [
            _Compiled(rule, f"{POLICY}:span:{rule.name}", time.monotonic, capped(rule.name))
            for rule in options.span_rules
        ]
        otherwise = context.build(options.otherwise)
        cls = HeadRulesWithSpans if spans else HeadRulesSampler
        return cls(rules, spans, otherwise, context.stats)
