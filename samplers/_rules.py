"""Trace-scope rules for the tail samplers: conditions on a finished local unit (its spans,
its local root), and first-match rules that keep a unit at a probability, or drop it.

A condition is one table with one test::

    { status = "error" }                                    any span's status
    { latency_ms = { gte = 500 } }                          the local root's duration
    { span_count = { gt = 100 } }                           spans in the unit
    { attribute = "http.route", glob = "/health*" }         any span's attribute
    { attribute = "root.user.tier", equals = "gold" }       the local root's attribute
    { attribute = "db.rows", gte = 1000 }                   numbers: gt, gte, lt, lte
    { attribute = "url.path", regex = "^/api/v[12]/" }
    { attribute = "feature.flag", exists = true }
    { all = [ ... ] }, { any = [ ... ] }, { not = { ... } }

Each is compiled once into a plain function of the unit, so a rule costs at the root's end
what its tests cost, no more.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence
from typing import Any, Literal

from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import StatusCode
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sfumato._decisions import facts_of, randomness
from sfumato._otel import attributes_of
from sfumato._threshold import probability, threshold
from sfumato.plugin import SamplerSpec

__all__ = ["Range", "Rule", "Unit", "When", "compile_when"]

ROOT = "root."
_NUMBER = (int, float)


class Range(BaseModel):
    """Bounds on a number: any of gt, gte, lt, lte (all given must hold)."""

    model_config = ConfigDict(extra="forbid")

    gt: float | None = Field(default=None, description="Above this.")
    gte: float | None = Field(default=None, description="At least this.")
    lt: float | None = Field(default=None, description="Below this.")
    lte: float | None = Field(default=None, description="At most this.")

    @model_validator(mode="after")
    def _some_bound(self) -> Range:
        if self.gt is None and self.gte is None and self.lt is None and self.lte is None:
            raise ValueError("give at least one of gt, gte, lt, lte")
        return self

    def test(self) -> Callable[[float], bool]:
        gt, gte, lt, lte = self.gt, self.gte, self.lt, self.lte

        def within(x: float) -> bool:
            return (
                (gt is None or x > gt)
                and (gte is None or x >= gte)
                and (lt is None or x < lt)
                and (lte is None or x <= lte)
            )

        return within


_KINDS = ("status", "latency_ms", "span_count", "attribute", "all", "any", "not_")
_ATTRIBUTE_TESTS = ("equals", "not_equals", "glob", "regex", "exists", "gt", "gte", "lt", "lte")


class When(BaseModel):
    """One condition: exactly one of status, latency_ms, span_count, attribute (with one
    test), all, any, not."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    status: Literal["error", "ok", "unset"] | None = Field(
        default=None,
        description="Any span of the unit has this status ('error' also: an exception event).",
    )
    latency_ms: Range | None = Field(default=None, description="The local root's duration.")
    span_count: Range | None = Field(default=None, description="Spans in the local unit.")
    attribute: str | None = Field(
        default=None,
        description="An attribute of any span of the unit; 'root.<key>': of the local root.",
    )
    equals: str | float | bool | None = Field(
        default=None, description="The attribute has this value (booleans are not numbers)."
    )
    not_equals: str | float | bool | None = Field(
        default=None, description="The attribute is present with another value."
    )
    glob: str | None = Field(default=None, description="A string attribute matches this glob.")
    regex: str | None = Field(
        default=None, description="A string attribute holds a match of this regular expression."
    )
    exists: bool | None = Field(default=None, description="The attribute is present (or not).")
    gt: float | None = Field(default=None, description="A number attribute is above this.")
    gte: float | None = Field(default=None, description="A number attribute is at least this.")
    lt: float | None = Field(default=None, description="A number attribute is below this.")
    lte: float | None = Field(default=None, description="A number attribute is at most this.")
    all: list[When] | None = Field(
        default=None, min_length=1, description="Every condition of the list holds."
    )
    any: list[When] | None = Field(
        default=None, min_length=1, description="One condition of the list holds at least."
    )
    not_: When | None = Field(default=None, alias="not", description="The condition fails.")

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"{value!r} is not a regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _one_test(self) -> When:
        kinds = [k for k in _KINDS if getattr(self, k) is not None]
        names = [k.rstrip("_") for k in kinds]
        tests = [t for t in _ATTRIBUTE_TESTS if getattr(self, t) is not None]
        if tests and self.attribute is None:
            raise ValueError(f"{', '.join(tests)} apply to an attribute: add attribute = '...'")
        if len(kinds) != 1:
            raise ValueError(
                "a condition holds exactly one of status, latency_ms, span_count, attribute, "
                f"all, any, not (found: {', '.join(names) or 'none'})"
            )
        if kinds[0] == "attribute" and len(tests) != 1:
            raise ValueError(
                f"attribute {self.attribute!r} needs exactly one test of "
                f"{', '.join(_ATTRIBUTE_TESTS)} (found: {', '.join(tests) or 'none'})"
            )
        return self


class Rule(BaseModel):
    """One rule: the units matching ``when`` (every unit, without it) are kept with
    probability ``sample``, or dropped (``drop``); the first rule that matches decides."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=r"^[A-Za-z0-9_.-]{1,64}$",
        description="The rule's label: kept spans carry sampling.policy = '<sampler>:<name>'.",
    )
    when: When | None = Field(default=None, description="The condition; none: every unit.")
    sample: float = Field(
        default=1.0,
        gt=0.0,
        le=1.0,
        description="Probability of keeping a matching unit (consistent on the trace's "
        "randomness; kept spans weigh 1/p).",
    )
    drop: bool = Field(default=False, description="Never keep a matching unit.")
    sampler: SamplerSpec | None = Field(
        default=None,
        description="A sampler that decides the matching units instead of 'sample' (the "
        "general form, as Refinery's rules nest samplers): asked with the local root's "
        "name, kind and attributes; a consistent one's threshold weighs what it keeps.",
    )
    max_per_second: float | None = Field(
        default=None,
        gt=0,
        description="Units this rule keeps per second at most; beyond it, the probability is "
        "lowered for the next second and the weights raised to match.",
    )

    @model_validator(mode="after")
    def _drop_alone(self) -> Rule:
        if self.drop and (
            self.sample != 1.0 or self.max_per_second is not None or self.sampler is not None
        ):
            raise ValueError(
                "a rule that drops keeps nothing: leave out sample, sampler and max_per_second"
            )
        if self.sampler is not None and self.sample != 1.0:
            raise ValueError("give a rule 'sample' or 'sampler', not both")
        return self


class Unit:
    """What a rule sees of a finished local unit: its spans, its local root (None when a
    bound decided it early), whether it holds an error."""

    __slots__ = ("_root_attributes", "has_error", "root", "spans")

    def __init__(self, spans: Sequence[Any], root: Any, has_error: bool) -> None:
        self.spans = spans
        self.root = root
        self.has_error = has_error
        self._root_attributes: Any = None

    @property
    def duration_ms(self) -> float:
        root = self.root
        if root is not None and root.start_time is not None and root.end_time is not None:
            return float(root.end_time - root.start_time) / 1e6
        starts = [s.start_time for s in self.spans if s.start_time is not None]
        ends = [s.end_time for s in self.spans if s.end_time is not None]
        return float(max(ends) - min(starts)) / 1e6 if starts and ends else 0.0

    def root_attributes(self) -> Any:
        if self._root_attributes is None:
            self._root_attributes = attributes_of(self.root) if self.root is not None else {}
        return self._root_attributes


Predicate = Callable[[Unit], bool]


def compile_when(when: When | None) -> Predicate:
    """``when`` as a function of the unit (None: every unit matches)."""
    if when is None:
        return _always
    if when.all is not None:
        parts = [compile_when(w) for w in when.all]
        return lambda unit: all(p(unit) for p in parts)
    if when.any is not None:
        parts = [compile_when(w) for w in when.any]
        return lambda unit: any(p(unit) for p in parts)
    if when.not_ is not None:
        inner = compile_when(when.not_)
        return lambda unit: not inner(unit)
    if when.status is not None:
        return _status(when.status)
    if when.latency_ms is not None:
        within = when.latency_ms.test()
        return lambda unit: within(unit.duration_ms)
    if when.span_count is not None:
        counted = when.span_count.test()
        return lambda unit: counted(len(unit.spans))
    assert when.attribute is not None
    return _attribute(when)


def _always(unit: Unit) -> bool:
    return True


def _status(status: str) -> Predicate:
    if status == "error":
        return lambda unit: unit.has_error
    code = StatusCode.OK if status == "ok" else StatusCode.UNSET
    return lambda unit: any(s.status.status_code is code for s in unit.spans)


def _attribute(when: When) -> Predicate:
    key = when.attribute
    assert key is not None
    test = _value_test(when)
    if key.startswith(ROOT):
        name = key[len(ROOT) :]

        def on_root(unit: Unit) -> bool:
            attributes = unit.root_attributes()
            return test(attributes.get(name, _MISSING))

        return on_root

    def on_any(unit: Unit) -> bool:
        return any(test(attributes_of(span).get(key, _MISSING)) for span in unit.spans)

    return on_any


_MISSING: Any = object()


def _value_test(when: When) -> Callable[[Any], bool]:
    missing = _MISSING
    if when.exists is not None:
        wanted = when.exists
        return lambda v: (v is not missing) is wanted
    if when.equals is not None:
        expected = when.equals
        return lambda v: v is not missing and _same(v, expected)
    if when.not_equals is not None:
        other = when.not_equals
        return lambda v: v is not missing and not _same(v, other)
    if when.glob is not None:
        pattern = re.compile(fnmatch.translate(when.glob))
        return lambda v: type(v) is str and pattern.match(v) is not None
    if when.regex is not None:
        regex = re.compile(when.regex)
        return lambda v: type(v) is str and regex.search(v) is not None
    within = Range(gt=when.gt, gte=when.gte, lt=when.lt, lte=when.lte).test()
    return lambda v: type(v) in _NUMBER and within(v)


def _same(value: Any, expected: Any) -> bool:
    """Equality as a config means it: booleans are not numbers, 1 and 1.0 are the same."""
    if isinstance(expected, bool) or isinstance(value, bool):
        return type(value) is type(expected) and value == expected
    if type(expected) in _NUMBER:
        return type(value) in _NUMBER and value == expected
    return bool(value == expected)


# -- deciding ------------------------------------------------------------------------------------


class Cap:
    """About ``per_second`` kept units a second, honestly weighted.

    Each second's probability factor is set from the second before: the units that would
    have been kept then (``offered``), against the cap. A unit kept at the lowered
    probability weighs accordingly, so the estimates stay unbiased, and the kept units
    average ``per_second``. A second that keeps twice the cap (a burst the second before
    did not foresee) drops the rest outright, counted: those are the only units a cap drops
    that no weight accounts for.
    """

    __slots__ = ("_clock", "_kept", "_offered", "_window_end", "factor", "per_second")

    def __init__(self, per_second: float, clock: Callable[[], float]) -> None:
        self.per_second = per_second
        self._clock = clock
        self.factor = 1.0
        self._offered = 0.0
        self._kept = 0
        self._window_end = clock() + 1.0

    def roll(self) -> None:
        """Start a new second when the current one is over (under the caller's lock)."""
        now = self._clock()
        if now < self._window_end:
            return
        seconds = 1.0 + max(0.0, now - self._window_end)  # idle seconds count as empty
        rate = self._offered / seconds
        self.factor = 1.0 if rate <= self.per_second else self.per_second / rate
        self._offered = 0.0
        self._kept = 0
        self._window_end = now + 1.0

    def offer(self, p: float) -> None:
        """A unit that would be kept with probability ``p`` without the cap."""
        self._offered += p

    def full(self) -> bool:
        return self._kept >= 2 * self.per_second

    def took(self) -> None:
        self._kept += 1


def capped_threshold(p: float, r: int, caps: Sequence[Cap]) -> tuple[int | None, bool]:
    """The threshold a unit of randomness ``r`` is kept at, offered at probability ``p``
    through ``caps`` in turn (each lowers it by its factor), and whether a cap refused it
    outright (a burst past twice the cap). None: not kept. Under the caller's lock."""
    for cap in caps:
        cap.roll()
        cap.offer(p)
        p *= cap.factor
    th = threshold(p)
    if r < th:
        return None, False
    if any(cap.full() for cap in caps):
        return None, True
    for cap in caps:
        cap.took()
    return th, False


class Verdict:
    """A rule's decision on a unit: kept at threshold ``th`` (0: probability 1), or dropped
    (``final``: by a ``drop`` rule, late errors included; otherwise by probability or a cap,
    and a late error is still kept). ``capped``: a cap dropped it outright."""

    __slots__ = ("capped", "final", "kept", "rule", "th")

    def __init__(
        self, rule: str, kept: bool, th: int = 0, final: bool = False, capped: bool = False
    ) -> None:
        self.rule = rule
        self.kept = kept
        self.th = th
        self.final = final
        self.capped = capped


class RuleSet:
    """First-match rules with their caps, and a cap over all of them (``max_per_second``).
    ``decide`` is called under the tail processor's lock."""

    def __init__(
        self,
        rules: Sequence[Rule],
        max_per_second: float | None = None,
        clock: Callable[[], float] | None = None,
        build: Callable[[SamplerSpec], Any] | None = None,
    ) -> None:
        import time

        tick = clock or time.monotonic
        # Each rule's own sampler, built (by the sampler tree's builder) when it has one.
        self.samplers: dict[str, Any] = {}
        for rule in rules:
            if rule.sampler is not None:
                if build is None:
                    raise ValueError(f"rule {rule.name!r} nests a sampler: no builder given")
                self.samplers[rule.name] = build(rule.sampler)
        overall = [Cap(max_per_second, tick)] if max_per_second else []
        # (rule, its condition, its caps and then the overall one)
        self.rules = [
            (
                rule,
                compile_when(rule.when),
                ([Cap(rule.max_per_second, tick)] if rule.max_per_second else []) + overall,
            )
            for rule in rules
        ]
        self.capped: dict[str, int] = {}  # units a cap dropped outright, by rule

    def decide(self, unit: Unit, trace_id: int, trace_state: Any) -> Verdict | None:
        """The first matching rule's verdict, or None when no rule matches."""
        for rule, matches, caps in self.rules:
            if not matches(unit):
                continue
            if rule.drop:
                return Verdict(rule.name, False, final=True)
            p = rule.sample
            nested = self.samplers.get(rule.name)
            if nested is not None:
                p = _nested_probability(nested, unit, trace_id)
                if p <= 0.0:
                    return Verdict(rule.name, False)
            th, refused = capped_threshold(p, randomness(trace_id, trace_state), caps)
            if refused:
                self.capped[rule.name] = self.capped.get(rule.name, 0) + 1
                return Verdict(rule.name, False, capped=True)
            if th is None:
                return Verdict(rule.name, False)
            return Verdict(rule.name, True, th)
        return None


def _nested_probability(sampler: Any, unit: Unit, trace_id: int) -> float:
    """The probability a rule's own sampler kept the unit at (0: it did not keep it), asked
    as a head sampler is, for the local root: its threshold when it is consistent (``th``),
    else 1 (the probability is unknown, and weight 1 never over-counts)."""
    root = unit.root if unit.root is not None else unit.spans[-1]
    result = sampler.should_sample(
        None, trace_id, root.name, root.kind, dict(unit.root_attributes()) or None, None
    )
    if result.decision is not Decision.RECORD_AND_SAMPLE:
        return 0.0
    state = result.trace_state
    th = facts_of(state).th if state is not None else -1
    return probability(th) if th >= 0 else 1.0


def tail_policy(
    options: Any,
    name: str,
    *,
    errors: bool = False,
    slow_ns: int | None = None,
    clock: Callable[[], float] | None = None,
    build: Callable[[SamplerSpec], Any] | None = None,
) -> Callable[[Any], str | Verdict | None]:
    """The tail processor's policy for ``options.rules`` (and ``options.max_per_second``):
    with ``errors``, a unit with an error is kept first (reason ``error``), then one whose
    root lasted ``slow_ns`` (``slow``); then the first matching rule; None: no rule matched,
    the head decision stands."""
    rules = RuleSet(options.rules, getattr(options, "max_per_second", None), clock, build)

    def policy(trace: Any) -> str | Verdict | None:
        if errors and trace.has_error:
            return "error"
        root = trace.root
        if (
            slow_ns is not None
            and root is not None
            and root.end_time is not None
            and root.start_time is not None
            and root.end_time - root.start_time >= slow_ns
        ):
            return "slow"
        if not rules.rules:
            return None
        spans = trace.spans
        ctx = (root if root is not None else spans[-1]).context
        return rules.decide(Unit(spans, root, trace.has_error), ctx.trace_id, ctx.trace_state)

    policy.rules = rules  # type: ignore[attr-defined]
    return policy
