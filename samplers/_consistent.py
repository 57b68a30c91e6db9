"""Consistent probability sampling: thresholds, randomness, tracestate and recorded weights.

OpenTelemetry's tracestate probability sampling: the randomness R is the trace id's low 56
bits (or an explicit ``rv`` in the ``ot`` tracestate entry), a probability p becomes the
rejection threshold T = (1 - p) * 2**56, and a span is kept when R >= T. A kept span carries
``ot=th:<T in hex, trailing zeros trimmed>`` so any later stage can tell its adjusted count,
2**56 / (2**56 - T).

Everything a hot path needs is precomputed and cached here: the tracestate, the weight
attributes and the whole ``SamplingResult`` for a (policy, threshold) pair are built once.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Annotated, Any

from opentelemetry.context import Context, get_current
from opentelemetry.sdk.trace.sampling import Decision, SamplingResult
from opentelemetry.trace import Span, SpanContext, get_current_span
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.trace.span import TraceState
from pydantic import Field
from sfumato._stats import Counter
from sfumato._tracer import _TUPLE_LAYOUT, _get_current

__all__ = [
    "ADJUSTED_COUNT",
    "DROP",
    "MAX_THRESHOLD",
    "POLICY",
    "RANDOM_MASK",
    "SAMPLE_RATE",
    "Consistent",
    "Delegate",
    "Precision",
    "adjusted_count",
    "consistent",
    "drop_result",
    "facts_of",
    "follow_parent",
    "keep_result",
    "parent_policy",
    "parent_span_context",
    "parent_trace_state",
    "parse_ot",
    "probability",
    "randomness",
    "state_with_th",
    "state_without_th",
    "th_hex",
    "threshold",
    "unflagged",
    "weight_attributes",
]

# Attribute names every exported span carries (documented in docs/samplers.md).
ADJUSTED_COUNT = "sampling.adjusted_count"
POLICY = "sampling.policy"
SAMPLE_RATE = "SampleRate"  # Honeycomb's name for the same weight, an integer

RANDOM_BITS = 56
MAX_THRESHOLD = 1 << RANDOM_BITS  # T = 2**56: nothing is kept
RANDOM_MASK = MAX_THRESHOLD - 1
_SCALE = float(MAX_THRESHOLD)
_OT = "ot"

_new_result = object.__new__
DROP = SamplingResult(Decision.DROP)
RECORD_ONLY = SamplingResult(Decision.RECORD_ONLY)
_SAMPLE = Decision.RECORD_AND_SAMPLE
_RECORD_ONLY = Decision.RECORD_ONLY
_DROP = Decision.DROP


# Hex digits of precision a threshold is written with: the spec recommends 4 by default, more
# for probabilities near 0 (one more per leading "f"). The samplers that turn a probability
# into a threshold (ratio, per-narrative-type, load-adaptive) take a ``precision`` option.
PRECISION = 4

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


def threshold(p: float, precision: int | None = None) -> int:
    """The rejection threshold for probability ``p`` (clamped to [0, 1]), rounded to
    ``precision`` hex digits (default ``PRECISION``) as the tracestate probability sampling
    spec does, so that the threshold a span is decided at is the one its ``th`` says."""
    if p >= 1.0:
        return 0
    if p <= 0.0:
        return MAX_THRESHOLD
    exact = MAX_THRESHOLD - round(p * _SCALE)
    _, exponent = math.frexp(p)
    digits = max(1, min(14, (PRECISION if precision is None else precision) + exponent // -4))
    quantum = 1 << (4 * (14 - digits))
    return min((exact + quantum // 2) // quantum * quantum, MAX_THRESHOLD - quantum)


def probability(t: int) -> float:
    """The keep probability a threshold stands for."""
    return (MAX_THRESHOLD - t) / _SCALE


def adjusted_count(t: int) -> float:
    """How many spans one kept span stands for: 1 / p (0 when nothing is kept)."""
    kept = MAX_THRESHOLD - t
    return _SCALE / kept if kept > 0 else 0.0


def th_hex(t: int) -> str:
    """``th`` encoding: 14 hex digits with trailing zeros removed, "0" for keep-all."""
    if t <= 0:
        return "0"
    return f"{t:014x}".rstrip("0") or "0"


# The spec's forms: th is 1-14 lowercase hex digits, rv exactly 14. (int(x, 16) alone would
# also read "+c", "0xc", "f_f" and " c", each as some other threshold.)
_TH = re.compile(r"[0-9a-f]{1,14}")
_RV = re.compile(r"[0-9a-f]{14}")


@lru_cache(maxsize=1024)
def parse_ot(value: str) -> tuple[int, int, tuple[str, ...]]:
    """(th, rv, other members) of an ``ot`` tracestate value; -1 where absent or invalid.
    An invalid th or rv is left out of the other members too: it is erased on output."""
    th = rv = -1
    rest: list[str] = []
    for member in value.split(";"):
        if member.startswith("th:"):
            digits = member[3:]
            if _TH.fullmatch(digits):
                th = int(digits, 16) << (4 * (14 - len(digits)))
        elif member.startswith("rv:"):
            digits = member[3:]
            if _RV.fullmatch(digits):
                rv = int(digits, 16)
        elif member:
            rest.append(member)
    return th, rv, tuple(rest)


def _malformed(value: str) -> bool:
    """Whether an ``ot`` value carries a th or rv that is not in the spec's form."""
    for member in value.split(";"):
        if member.startswith("th:") and not _TH.fullmatch(member[3:]):
            return True
        if member.startswith("rv:") and not _RV.fullmatch(member[3:]):
            return True
    return False


# Trace states that arrived with a malformed th or rv (erased on output): counted once per
# trace state, as stats()' sampling.tracestate.invalid.
MALFORMED = Counter()


def parent_trace_state(parent_context: Context | None) -> TraceState | None:
    """The trace state of the parent span in ``parent_context`` (default: the current
    context), read without the API's lookup chain; None for a root."""
    ctx = parent_context if parent_context is not None else get_current()
    span = ctx.get(_SPAN_KEY)
    if span is None:
        return None
    sc = getattr(span, "_context", None)
    if type(sc) is SpanContext:
        # SpanContext is a tuple: (trace_id, span_id, is_remote, flags, state, is_valid).
        return sc[4] if sc[5] else None
    sc = get_current_span(parent_context).get_span_context()
    return sc.trace_state if sc.is_valid else None


def parent_span_context(parent_context: Context | None) -> SpanContext | None:
    """The parent's span context when it is valid, else None (a root span)."""
    ctx = parent_context if parent_context is not None else _get_current()
    span = ctx.get(_SPAN_KEY)
    if span is None:
        return None
    sc = getattr(span, "_context", None)  # an SDK span's own field: no method call
    if type(sc) is not SpanContext:
        sc = get_current_span(parent_context).get_span_context()
    return sc if sc.is_valid else None


_log = logging.getLogger("sfumato")
_unflagged_warned = False


def unflagged(parent: SpanContext | None) -> None:
    """A decision is about to use the trace id's bits as its randomness: warn, once per
    process, when the trace's W3C random flag is not set (the id may not be random, and two
    services may then disagree), as the SDK specification asks."""
    global _unflagged_warned
    if _unflagged_warned or parent is None:
        return
    flags = parent[3] if _TUPLE_LAYOUT else parent.trace_flags
    if flags & 2:
        return
    _unflagged_warned = True
    _log.warning(
        "sfumato: a sampling decision took its randomness from a trace id without the W3C "
        "random flag (trace %032x); services whose trace ids are not random may decide "
        "differently for the same trace. Logged once.",
        parent[0] if _TUPLE_LAYOUT else parent.trace_id,
    )


def randomness(trace_id: int, trace_state: TraceState | None) -> int:
    """R: the ``rv`` of the incoming tracestate, else the trace id's low 56 bits."""
    if trace_state is not None:
        facts = _FACTS.get(id(trace_state))
        if facts is None or facts.state is not trace_state:
            facts = _learn(trace_state)
        if facts.rv >= 0:
            return facts.rv
    return trace_id & RANDOM_MASK


@lru_cache(maxsize=4096)
def _weights(policy: str, t: int) -> tuple[Mapping[str, Any], Mapping[str, Any], int]:
    """The weight attributes of a span kept at threshold ``t`` by ``policy``: with
    ``SampleRate`` rounded down, rounded up, and the randomness below which it is rounded up.

    ``SampleRate`` is an integer, and 1/p often is not (p = 0.4: 2.5). Rounding it the same way
    for every span sums 20-30% off; rounding up with probability equal to the fraction is
    right on average. The draw is the trace's own randomness R: a kept span has R uniform in
    [t, 2**56), so R < t + frac * (2**56 - t) happens with probability frac. Every span of a
    trace (same R, same t) carries the same SampleRate.
    """
    count = adjusted_count(t)
    low = int(count)
    fraction = count - low
    if fraction < 1e-9 or fraction > 1 - 1e-9:  # an integer, up to float rounding
        exact = {ADJUSTED_COUNT: count, POLICY: policy, SAMPLE_RATE: max(1, round(count))}
        return exact, exact, t
    down = {ADJUSTED_COUNT: count, POLICY: policy, SAMPLE_RATE: max(1, low)}
    up = {ADJUSTED_COUNT: count, POLICY: policy, SAMPLE_RATE: low + 1}
    return down, up, t + int(fraction * (MAX_THRESHOLD - t))


def weight_attributes(policy: str, t: int, r: int = MAX_THRESHOLD) -> Mapping[str, Any]:
    """The weight attributes of a span kept at threshold ``t`` by ``policy``, for a trace of
    randomness ``r`` (which rounds ``SampleRate``; see ``_weights``)."""
    down, up, cut = _weights(policy, t)
    return up if r < cut else down


@lru_cache(maxsize=256)
def _root_state(t: int) -> TraceState:
    return TraceState(((_OT, f"th:{th_hex(t)}"),))


class _Facts:
    """What the hot path asks of one (immutable) TraceState, worked out once."""

    __slots__ = ("clean", "drop", "empty", "rv", "state", "th", "with_th", "without_th")

    state: TraceState
    empty: bool
    rv: int  # the ot rv value, -1 when absent
    th: int  # the ot th value, -1 when absent
    drop: SamplingResult
    without_th: TraceState | None
    with_th: dict[int, TraceState]
    clean: TraceState  # the state with a malformed th or rv erased (itself when none)


# id(state) -> facts. Trace states are shared between the spans of a trace (and the kept
# ones between traces: see _root_state), so a handful of entries serve nearly every span.
# The entry holds the state itself, so its id cannot be reused while it is cached.
_FACTS: dict[int, _Facts] = {}
_MAX_FACTS = 1024


def _learn(trace_state: TraceState) -> _Facts:
    facts = _new_result(_Facts)
    facts.state = trace_state
    facts.empty = not trace_state
    ot = None if facts.empty else trace_state.get(_OT)
    th, rv, rest = parse_ot(ot) if ot else (-1, -1, ())
    facts.rv = rv
    facts.th = th
    facts.clean = trace_state
    if ot and _malformed(ot):
        MALFORMED.incr()
        kept = ([f"th:{th_hex(th)}"] if th >= 0 else []) + ([f"rv:{rv:014x}"] if rv >= 0 else [])
        value = ";".join([*kept, *rest])
        facts.clean = trace_state.update(_OT, value) if value else trace_state.delete(_OT)
    facts.without_th = state_without_th(trace_state)
    facts.drop = SamplingResult(Decision.DROP, None, facts.without_th) if not facts.empty else DROP
    facts.with_th = {}
    if len(_FACTS) >= _MAX_FACTS:
        _FACTS.clear()
    _FACTS[id(trace_state)] = facts
    return facts


def facts_of(trace_state: TraceState) -> _Facts:
    """The cached facts of ``trace_state``."""
    facts = _FACTS.get(id(trace_state))
    if facts is None or facts.state is not trace_state:
        facts = _learn(trace_state)
    return facts


@lru_cache(maxsize=4096)
def _ot_with_th(ot: str, t: int) -> str:
    _, rv, rest = parse_ot(ot)
    parts = [f"th:{th_hex(t)}"]
    if rv >= 0:
        parts.append(f"rv:{rv:014x}")
    parts.extend(rest)
    return ";".join(parts)


def state_with_th(trace_state: TraceState | None, t: int) -> TraceState:
    """``trace_state`` with ``ot=th:<t>`` written (other members kept)."""
    if trace_state is None:
        return _root_state(t)
    facts = _FACTS.get(id(trace_state))
    if facts is None or facts.state is not trace_state:
        facts = _learn(trace_state)
    made = facts.with_th.get(t)
    if made is None:
        made = facts.with_th[t] = _with_th(trace_state, t)
    return made


def _with_th(trace_state: TraceState, t: int) -> TraceState:
    if not trace_state:
        return _root_state(t)
    ot = trace_state.get(_OT)
    new = _ot_with_th(ot, t) if ot else f"th:{th_hex(t)}"
    if ot == new:
        return trace_state  # a child of a span kept at the same threshold: nothing to change
    if ot is None:
        return trace_state.add(_OT, new)
    return trace_state.update(_OT, new)


@lru_cache(maxsize=1024)
def _ot_without_th(ot: str) -> str:
    _, rv, rest = parse_ot(ot)
    parts = [f"rv:{rv:014x}"] if rv >= 0 else []
    parts.extend(rest)
    return ";".join(parts)


def state_without_th(trace_state: TraceState | None) -> TraceState | None:
    """A dropped span must not claim a threshold: erase ``th`` from an incoming ``ot``."""
    if not trace_state:
        return trace_state
    ot = trace_state.get(_OT)
    if not ot or "th:" not in ot:
        return trace_state
    new = _ot_without_th(ot)
    return trace_state.update(_OT, new) if new else trace_state.delete(_OT)


@lru_cache(maxsize=4096)
def _cached_keep(policy: str, t: int, up: bool = False) -> SamplingResult:
    down, rounded_up, _ = _weights(policy, t)
    weights = rounded_up if up else down
    return SamplingResult(Decision.RECORD_AND_SAMPLE, weights, _root_state(t))


def keep_result(
    policy: str,
    t: int,
    attributes: Mapping[str, Any] | None,
    trace_state: TraceState | None,
    r: int = MAX_THRESHOLD,
) -> SamplingResult:
    """RECORD_AND_SAMPLE at threshold ``t``: th in tracestate, weight attributes merged in
    (``r``: the trace's randomness, which rounds ``SampleRate``).

    The common case (no caller attributes, no incoming tracestate) is one cached object.
    """
    if not attributes and (trace_state is None or facts_of(trace_state).empty):
        return _cached_keep(policy, t, r < _weights(policy, t)[2])
    weights = weight_attributes(policy, t, r)
    # Built field by field, as in drop_result: no read-only proxy the tracer copies anyway.
    result = _new_result(SamplingResult)
    result.decision = _SAMPLE
    merged: Any = {**attributes, **weights} if attributes else MappingProxyType(weights)
    result.attributes = merged
    result.trace_state = state_with_th(trace_state, t)
    return result


def drop_result(
    trace_state: TraceState | None,
    decision: Decision = Decision.DROP,
    attributes: Mapping[str, Any] | None = None,
) -> SamplingResult:
    """DROP, or RECORD_ONLY with the span's own ``attributes`` (the SDK starts a recorded span
    with the sampling result's attributes, so they must be passed through), keeping the
    incoming tracestate minus any ``th``."""
    if trace_state is None:
        if decision is _DROP:
            return DROP
        if not attributes:
            return RECORD_ONLY
        state = None
    else:
        facts = _FACTS.get(id(trace_state))
        if facts is None or facts.state is not trace_state:
            facts = _learn(trace_state)
        if decision is _DROP:
            return facts.drop
        if facts.empty:
            if not attributes:
                return RECORD_ONLY
            state = None
        else:
            state = facts.without_th
    # Built field by field: SamplingResult's constructor wraps the attributes in a read-only
    # proxy that the tracer copies from anyway (a span's attributes are its own dict).
    result = _new_result(SamplingResult)
    result.decision = decision
    result.attributes = attributes  # type: ignore[assignment]
    result.trace_state = state
    return result


def follow_parent(
    parent: SpanContext,
    attributes: Mapping[str, Any] | None,
    policy: str,
    parent_span: Span | None = None,
) -> SamplingResult:
    """A child following its parent: same flag, same tracestate, weight from the parent's th.

    A sampled parent without a ``th`` (a legacy upstream) gives adjusted count 1: the
    probability is unknown, and 1 never over-counts. Given the local ``parent_span``, its
    recorded policy is carried over (``policy`` is the default).
    """
    if _TUPLE_LAYOUT:
        # A SpanContext (or subclass) is (trace_id, span_id, is_remote, flags, state,
        # is_valid): no property calls.
        ts: TraceState | None = parent[4]
        sampled = parent[3] & 1
        remote = parent[2]
    else:  # pragma: no cover - a SpanContext of another shape
        ts = parent.trace_state
        sampled = parent.trace_flags.sampled
        remote = parent.is_remote
    if not sampled:
        return drop_result(ts)
    t = 0
    r = (parent[0] if _TUPLE_LAYOUT else parent.trace_id) & RANDOM_MASK
    if ts is not None:
        facts = _FACTS.get(id(ts))
        if facts is None or facts.state is not ts:
            facts = _learn(ts)
        if facts.rv >= 0:
            r = facts.rv
        if facts.th >= 0:
            if r >= facts.th:
                t = facts.th
                ts = facts.clean
            else:
                # Sampled, yet its randomness is below its threshold: the th is not what it
                # was kept at. Erased; the probability is unknown, and weight 1 never
                # over-counts.
                ts = facts.without_th
        else:
            ts = facts.clean
    if parent_span is not None and not remote:
        # A local parent's recorded policy carries over; looked up for kept spans only.
        try:  # an SDK span's attributes (BoundedAttributes), read without a proxy
            recorded = parent_span._attributes._dict.get(POLICY)  # type: ignore[attr-defined]
        except AttributeError:
            attrs = getattr(parent_span, "attributes", None)
            recorded = attrs.get(POLICY) if attrs else None
        if type(recorded) is str:
            policy = recorded
    weights = weight_attributes(policy, t, r)
    result = _new_result(SamplingResult)
    result.decision = _SAMPLE
    merged: Any = {**attributes, **weights} if attributes else MappingProxyType(weights)
    result.attributes = merged
    result.trace_state = ts
    return result


def parent_policy(parent_context: Context | None, default: str) -> str:
    """The policy recorded on a local, recording parent span; ``default`` otherwise."""
    attrs = getattr(get_current_span(parent_context), "attributes", None)
    if attrs:
        policy = attrs.get(POLICY)
        if isinstance(policy, str):
            return policy
    return default


class Consistent:
    """A fixed threshold decided from the parent's trace state with one cached lookup: what
    ``randomness`` + ``keep_result`` / ``drop_result`` do, for a sampler that decides every
    span at the same threshold.

    ``record_only`` (under a tail stage such as ``error-always``): a span not kept is
    RECORD_ONLY with its own attributes instead of DROP, so the tail still sees it.
    """

    __slots__ = ("cut", "policy", "record_only", "root_keep", "root_keep_up", "t", "weights")

    plain_attributes = True  # see SfumatoTracer._prepare

    def __init__(self, t: int, policy: str, record_only: bool = False) -> None:
        self.t = t
        self.policy = policy
        self.record_only = record_only
        down, up, self.cut = _weights(policy, t)
        self.weights = (down, up)  # SampleRate rounded down, up (R < cut)
        self.root_keep = _cached_keep(policy, t)  # kept root, no attributes of its own
        self.root_keep_up = _cached_keep(policy, t, True)

    def marked(self) -> Consistent:
        """The same threshold, RECORD_ONLY where it does not keep."""
        return Consistent(self.t, self.policy, record_only=True)

    def decide(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: Any,
        attributes: Mapping[str, Any] | None,
        links: Any,
    ) -> SamplingResult:
        """A span's decision (``should_sample``'s arguments, less the unused trace state)."""
        return self.decide_parent(
            parent_span_context(parent_context), parent_context, trace_id, name, kind, attributes
        )

    def decide_parent(
        self,
        parent: SpanContext | None,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: Any,
        attributes: Mapping[str, Any] | None,
        links: Any = None,
    ) -> SamplingResult:
        """``decide`` given the valid parent span context (None for a root): what the
        tracer has already looked up (see ``sample_span`` in ``sfumato._tracer``)."""
        ts: TraceState | None = None
        if parent is not None:
            # A SpanContext (or a subclass) is the tuple (trace_id, span_id, is_remote, flags,
            # state, is_valid).
            ts = parent[4] if _TUPLE_LAYOUT else parent.trace_state
        t = self.t
        facts: _Facts | None = None
        if ts is not None:
            facts = _FACTS.get(id(ts))
            if facts is None or facts.state is not ts:
                facts = _learn(ts)
            r = facts.rv if facts.rv >= 0 else trace_id & RANDOM_MASK
        else:
            r = trace_id & RANDOM_MASK
        if parent is not None and not _unflagged_warned and (facts is None or facts.rv < 0):
            unflagged(parent)
        if r >= t:  # r < 2**56 = MAX_THRESHOLD: never true at the threshold that keeps nothing
            state: TraceState | None
            up = r < self.cut
            if facts is None or facts.empty:
                if not attributes:
                    return self.root_keep_up if up else self.root_keep
                state = _root_state(t)
            else:
                state = facts.with_th.get(t)
                if state is None:
                    state = facts.with_th[t] = _with_th(facts.state, t)
            result = _new_result(SamplingResult)
            result.decision = _SAMPLE
            weights = self.weights[up]
            merged: Any = {**attributes, **weights} if attributes else MappingProxyType(weights)
            result.attributes = merged
            result.trace_state = state
            return result
        if not self.record_only:
            return DROP if facts is None else facts.drop
        # drop_result(ts, RECORD_ONLY, attributes), inline: the span's own attributes, the
        # incoming trace state less any th.
        if not attributes and (facts is None or facts.empty):
            return RECORD_ONLY
        result = _new_result(SamplingResult)
        result.decision = _RECORD_ONLY
        result.attributes = attributes  # type: ignore[assignment]
        result.trace_state = None if facts is None or facts.empty else facts.without_th
        return result


class Delegate:
    """Another sampler in a sfumato sampler's tree: called through ``sample_span`` when it
    has one (the parent span context handed on), else through ``should_sample``.
    ``record_only`` turns its DROP into RECORD_ONLY with the span's own attributes."""

    __slots__ = ("fast", "label", "record_only", "sampler", "slow")

    def __init__(self, sampler: Any, record_only: bool = False, label: str | None = None) -> None:
        self.sampler = sampler
        self.record_only = record_only
        self.label = label  # recorded before the nested policy: "<label>/<policy>"
        self.fast = getattr(sampler, "sample_span", None)
        self.slow = sampler.should_sample

    @property
    def plain_attributes(self) -> bool:
        return getattr(self.sampler, "plain_attributes", False) is True

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
        if self.record_only and result.decision is _DROP:
            return drop_result(result.trace_state, _RECORD_ONLY, attributes)
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
        mark = getattr(self.sampler, "marked", None)
        inner = mark() if mark is not None else None
        if inner is not None:
            return Delegate(inner, label=self.label)
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
