"""``per-narrative-type``: a rate per value of an attribute (default ``narrative.type``), with
first-match rules as the general form, and the context that carries the type to child spans.

The type of a span is read, first found wins, from: the span's attributes at start, the
``narrative_type`` context variable (``narrative_type_context("curation")``) and the W3C
baggage entry of the same name (which also carries it across processes). A span with no type
and a local parent follows its parent, so a narrative is never split.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from opentelemetry import baggage
from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanContext, SpanKind, get_current_span
from opentelemetry.util.types import Attributes
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sfumato._guards import Guard
from sfumato._otel import TUPLE_LAYOUT
from sfumato.plugin import SamplerContext, SamplerPlugin, SamplerSpec

from ._consistent import (
    DROP,
    RANDOM_MASK,
    RECORD_ONLY,
    Consistent,
    Delegate,
    Precision,
    drop_result,
    facts_of,
    follow_parent,
    threshold,
    unflagged,
)
from ._parent_first import ParentFirstSampler

if TYPE_CHECKING:
    from sfumato._stats import Stats

__all__ = [
    "NARRATIVE_TYPE",
    "PerNarrativeType",
    "PerNarrativeTypeSampler",
    "narrative_type",
    "narrative_type_context",
    "resolve_type",
]

NARRATIVE_TYPE = "narrative.type"

narrative_type: ContextVar[str | None] = ContextVar("sfumato.narrative_type", default=None)
"""The running narrative's type; set it with ``narrative_type_context``."""


@contextmanager
def narrative_type_context(value: str) -> Iterator[None]:
    """Within the block, spans started in this context count as narratives of type ``value``.

    Set it before the narrative's root span starts, so the root is sampled at its type's rate.
    """
    token = narrative_type.set(value)
    try:
        yield
    finally:
        narrative_type.reset(token)


def resolve_type(
    attribute: str,
    parent_context: Context | None,
    attributes: Attributes,
    use_baggage: bool = True,
) -> Any:
    """The span's type: attributes, context variable, local parent, then baggage."""
    if attributes:
        value = attributes.get(attribute)
        if value is not None:
            return value
    if attribute == NARRATIVE_TYPE:
        value = narrative_type.get()
        if value is not None:
            return value
    parent_attrs = getattr(get_current_span(parent_context), "attributes", None)
    if parent_attrs:
        value = parent_attrs.get(attribute)
        if value is not None:
            return value
    if use_baggage:
        return baggage.get_baggage(attribute, parent_context)
    return None


def _type_of(
    attribute: str, attributes: Attributes, parent_context: Context | None, use_baggage: bool
) -> Any:
    """A local root's type: its attributes, the context variable, then baggage."""
    value: Any = attributes.get(attribute) if attributes else None
    if value is None and attribute == NARRATIVE_TYPE:
        value = narrative_type.get()
    if value is None and use_baggage:
        value = baggage.get_baggage(attribute, parent_context)
    return value


# -- options -------------------------------------------------------------------------------

Scalar = str | int | float | bool
_KINDS = {k.name.lower(): k for k in SpanKind}


class Rule(BaseModel):
    """One rule: every condition given must hold; the first matching rule decides."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, description="Span name glob, e.g. 'llm.*'.")
    kind: Literal["internal", "server", "client", "producer", "consumer"] | None = Field(
        default=None, description="Span kind."
    )
    attributes: dict[str, Scalar | list[Scalar]] = Field(
        default_factory=dict,
        description="Attribute equals a value, or is in a list. The narrative type counts as "
        "an attribute even when it comes from context.",
    )
    rate: float | None = Field(default=None, ge=0.0, le=1.0, description="Keep probability.")
    sampler: SamplerSpec | None = Field(default=None, description="Or a nested sampler.")
    scope: Literal["root", "span"] = Field(
        default="root",
        description="'root': the rule decides local roots, their children follow them (a "
        "trace is never split). 'span': it decides every span it matches, a child too, "
        "apart from its parent.",
    )

    @model_validator(mode="after")
    def _one_action(self) -> Rule:
        if (self.rate is None) == (self.sampler is None):
            raise ValueError("a rule needs exactly one of 'rate' or 'sampler'")
        return self


class PerNarrativeTypeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attribute: str = Field(default=NARRATIVE_TYPE, description="Attribute naming the type.")
    rates: dict[str, float | SamplerSpec] = Field(
        default_factory=dict, description="Keep probability (or a nested sampler) per type."
    )
    default: float | SamplerSpec = Field(
        default=1.0, description="For types not in 'rates' and spans without a type."
    )
    rules: list[Rule] = Field(default_factory=list, description="First match wins, before 'rates'.")
    baggage: bool = Field(default=True, description="Also read the type from W3C baggage.")
    precision: Precision = 4

    @model_validator(mode="after")
    def _rates_in_range(self) -> PerNarrativeTypeOptions:
        for key, value in [*self.rates.items(), ("default", self.default)]:
            if isinstance(value, float) and not 0.0 <= value <= 1.0:
                raise ValueError(f"rate for {key!r} must be between 0 and 1, got {value}")
        return self


# -- the sampler ---------------------------------------------------------------------------


def _fixed(rate: float, policy: str, precision: int | None = None) -> Consistent:
    """A fixed keep probability, decided consistently from the trace's randomness."""
    return Consistent(threshold(rate, precision), policy)


_DROP = Decision.DROP
_RECORD_ONLY = Decision.RECORD_ONLY
_new_result = object.__new__


_Choice = Consistent | Delegate


class _CompiledRule:
    __slots__ = ("attributes", "choice", "kind", "name", "span_scope")

    def __init__(self, rule: Rule, choice: _Choice) -> None:
        self.name = re.compile(fnmatch.translate(rule.name)).match if rule.name else None
        self.kind = _KINDS[rule.kind] if rule.kind else None
        self.attributes = tuple(
            (key, frozenset(value) if isinstance(value, list) else frozenset((value,)))
            for key, value in rule.attributes.items()
        )
        self.choice = choice
        self.span_scope = rule.scope == "span"

    def marked(self) -> _CompiledRule:
        copy = _CompiledRule.__new__(_CompiledRule)
        copy.name, copy.kind, copy.attributes = self.name, self.kind, self.attributes
        copy.span_scope = self.span_scope
        copy.choice = self.choice.marked()
        return copy

    def matches(
        self,
        name: str,
        kind: SpanKind | None,
        attributes: Mapping[str, Any],
        type_key: str,
        type_value: Any,
    ) -> bool:
        if self.kind is not None and (kind or SpanKind.INTERNAL) is not self.kind:
            return False
        if self.name is not None and not self.name(name):
            return False
        for key, allowed in self.attributes:
            value = attributes.get(key) if attributes else None
            if value is None and key == type_key:
                value = type_value
            try:
                if value not in allowed:
                    return False
            except TypeError:  # an unhashable attribute value (a list) never matches
                return False
        return True


class PerNarrativeTypeSampler(ParentFirstSampler):
    guarded = True
    policy = "per-narrative-type"

    def __init__(
        self,
        attribute: str,
        rates: Mapping[str, _Choice],
        default: _Choice,
        rules: Sequence[_CompiledRule] = (),
        use_baggage: bool = True,
        stats: Stats | None = None,
        record_only: bool = False,
    ) -> None:
        self.attribute = attribute
        self.rates = dict(rates)
        self.default = default
        self.rules = tuple(rules)
        # Rules with scope = "span": the only ones a local child is checked against.
        self.span_rules = tuple(rule for rule in self.rules if rule.span_scope)
        self.use_baggage = use_baggage
        self.record_only = record_only
        self._stats = stats
        self._guard = Guard(self.policy, stats, record_only=record_only)
        self.plain_attributes = all(
            c.plain_attributes for c in (*self.rates.values(), default, *(r.choice for r in rules))
        )

    @classmethod
    def from_rates(
        cls, rates: Mapping[str, float], default: float = 1.0, **kwargs: Any
    ) -> PerNarrativeTypeSampler:
        """A sampler from plain rates (no plugin host needed: tests, code configuration)."""
        base = cls.policy
        return cls(
            kwargs.pop("attribute", NARRATIVE_TYPE),
            {k: _fixed(v, f"{base}:{k}") for k, v in rates.items()},
            _fixed(default, f"{base}:default"),
            **kwargs,
        )

    def marked(self) -> PerNarrativeTypeSampler:
        """The same sampler, RECORD_ONLY (with the span's attributes) where it would drop:
        what ``error-always`` needs of the sampler under it, decided in one place."""
        return PerNarrativeTypeSampler(
            self.attribute,
            {k: c.marked() for k, c in self.rates.items()},
            self.default.marked(),
            [rule.marked() for rule in self.rules],
            self.use_baggage,
            self._stats,
            record_only=True,
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
        """``should_sample`` given the valid parent span context (None for a root), as
        sfumato's tracer has it at hand."""
        try:
            attr = self.attribute
            if parent is not None and not (parent[2] if TUPLE_LAYOUT else parent.is_remote):
                # A local child follows its local parent, which was decided at the local
                # root with the narrative's type and the rules: a trace is never split.
                # Only a rule with scope = "span" decides a child on its own.
                rules = self.span_rules
                if rules:
                    value = _type_of(attr, attributes, parent_context, self.use_baggage)
                    for rule in rules:
                        if rule.matches(name, kind, attributes or {}, attr, value):
                            return rule.choice.decide_parent(
                                parent, parent_context, trace_id, name, kind, attributes, links
                            )
                if not (parent[3] if TUPLE_LAYOUT else parent.trace_flags) & 1:
                    # An unsampled parent: dropped (RECORD_ONLY under a tail stage), in one call.
                    ts = parent[4] if TUPLE_LAYOUT else parent.trace_state
                    if self.record_only:
                        return drop_result(ts, _RECORD_ONLY, attributes)
                    return drop_result(ts)
                return follow_parent(
                    parent, attributes, self.policy, get_current_span(parent_context)
                )
            value = _type_of(attr, attributes, parent_context, self.use_baggage)
            for rule in self.rules:
                if rule.matches(name, kind, attributes or {}, attr, value):
                    return rule.choice.decide_parent(
                        parent, parent_context, trace_id, name, kind, attributes, links
                    )
            choice = self.rates.get(value, self.default) if value is not None else self.default
            if type(choice) is not Consistent:
                return choice.decide_parent(
                    parent, parent_context, trace_id, name, kind, attributes, links
                )
            # Consistent.decide_parent, inline up to the decision (one frame less for each span
            # it does not keep, most of them under error-always); a kept span takes the call.
            # test_per_narrative_type_decides_as_its_rates_do holds the two together.
            facts: Any = None
            if parent is None:
                r = trace_id & RANDOM_MASK
            else:
                ts = parent[4] if TUPLE_LAYOUT else parent.trace_state
                if ts is None:
                    r = trace_id & RANDOM_MASK
                else:
                    facts = facts_of(ts)
                    r = facts.rv if facts.rv >= 0 else trace_id & RANDOM_MASK
                if facts is None or facts.rv < 0:
                    unflagged(parent)
            if r >= choice.t:
                return choice.decide_parent(
                    parent, parent_context, trace_id, name, kind, attributes, links
                )
            if not choice.record_only:
                return DROP if facts is None else facts.drop  # type: ignore[no-any-return]
            if not attributes and (facts is None or facts.empty):
                return RECORD_ONLY
            result = _new_result(SamplingResult)
            result.decision = _RECORD_ONLY
            result.attributes = attributes  # type: ignore[assignment]
            result.trace_state = None if facts is None or facts.empty else facts.without_th
            return result
        except Exception:
            return self._guard.fallback(parent_context, attributes)

    def get_description(self) -> str:
        return (
            f"PerNarrativeType{{{self.attribute}, {len(self.rates)} rates, "
            f"{len(self.rules)} rules}}"
        )


class PerNarrativeType(SamplerPlugin):
    Options: ClassVar[type[BaseModel]] = PerNarrativeTypeOptions

    def build(self, options: Any, context: SamplerContext) -> Sampler:
        base = "per-narrative-type"

        def choice(value: float | SamplerSpec, label: str) -> _Choice:
            if isinstance(value, SamplerSpec):
                # A nested sampler's policy is recorded under this one's label:
                # per-narrative-type:curation/ratio.
                return Delegate(context.build(value), label=f"{base}:{label}")
            return _fixed(value, f"{base}:{label}", options.precision)

        rules = [
            _CompiledRule(
                rule, choice(rule.rate if rule.rate is not None else rule.sampler, f"rule{i}")
            )  # type: ignore[arg-type]
            for i, rule in enumerate(options.rules)
        ]
        return PerNarrativeTypeSampler(
            options.attribute,
            {k: choice(v, k) for k, v in options.rates.items()},
            choice(options.default, "default"),
            rules,
            options.baggage,
            context.stats,
        )
