"""Consistent probability sampling's decisions: what is known of a trace state (cached),
and the ``SamplingResult`` objects a sampler returns, built once per (policy, threshold).

Everything a hot path needs is precomputed and cached here: the tracestate, the weight
attributes and the whole ``SamplingResult`` for a (policy, threshold) pair.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision, SamplingResult
from opentelemetry.trace import Span, SpanContext
from opentelemetry.trace.span import TraceState

from ._otel import TUPLE_LAYOUT, live_attributes
from ._threshold import (
    _OT,
    MALFORMED,
    MAX_THRESHOLD,
    POLICY,
    RANDOM_MASK,
    _malformed,
    parse_ot,
    rounded_weights,
    th_hex,
    weight_attributes,
)

__all__ = [
    "DROP",
    "RECORD_ONLY",
    "Consistent",
    "drop_result",
    "facts_of",
    "follow_parent",
    "keep_result",
    "randomness",
    "state_with_th",
    "unflagged",
]

_new_result = object.__new__
DROP = SamplingResult(Decision.DROP)
RECORD_ONLY = SamplingResult(Decision.RECORD_ONLY)
_SAMPLE = Decision.RECORD_AND_SAMPLE
_RECORD_ONLY = Decision.RECORD_ONLY
_DROP = Decision.DROP


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
    down, rounded_up, _ = rounded_weights(policy, t)
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
        return _cached_keep(policy, t, r < rounded_weights(policy, t)[2])
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
    if TUPLE_LAYOUT:
        # A SpanContext (or subclass) is (trace_id, span_id, is_remote, flags, state,
        # is_valid): no property calls.
        ts: TraceState | None = parent[4]
        sampled = parent[3] & 1
        remote = parent[2]
    else:
        ts = parent.trace_state
        sampled = parent.trace_flags.sampled
        remote = parent.is_remote
    if not sampled:
        return drop_result(ts)
    t = 0
    r = (parent[0] if TUPLE_LAYOUT else parent.trace_id) & RANDOM_MASK
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
        try:
            recorded = live_attributes(parent_span).get(POLICY)
        except Exception:
            recorded = None
        if type(recorded) is str:
            policy = recorded
    weights = weight_attributes(policy, t, r)
    result = _new_result(SamplingResult)
    result.decision = _SAMPLE
    merged: Any = {**attributes, **weights} if attributes else MappingProxyType(weights)
    result.attributes = merged
    result.trace_state = ts
    return result


_log = logging.getLogger("sfumato")
_unflagged_warned = False


def unflagged(parent: SpanContext | None) -> None:
    """A decision is about to use the trace id's bits as its randomness: warn, once per
    process, when the trace's W3C random flag is not set (the id may not be random, and two
    services may then disagree), as the SDK specification asks."""
    global _unflagged_warned
    if _unflagged_warned or parent is None:
        return
    flags = parent[3] if TUPLE_LAYOUT else parent.trace_flags
    if flags & 2:
        return
    _unflagged_warned = True
    _log.warning(
        "sfumato: a sampling decision took its randomness from a trace id without the W3C "
        "random flag (trace %032x); services whose trace ids are not random may decide "
        "differently for the same trace. Logged once.",
        parent[0] if TUPLE_LAYOUT else parent.trace_id,
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


class Consistent:
    """A fixed threshold decided from the parent's trace state with one cached lookup: what
    ``randomness`` + ``keep_result`` / ``drop_result`` do, for a sampler that decides every
    span at the same threshold.

    ``record_only`` (under a tail stage such as ``error-always``): a span not kept is
    RECORD_ONLY with its own attributes instead of DROP, so the tail still sees it.
    """

    __slots__ = ("cut", "policy", "record_only", "root_keep", "root_keep_up", "t", "weights")

    plain_attributes = True  # see sfumato.plugin.SpanSampler

    def __init__(self, t: int, policy: str, record_only: bool = False) -> None:
        self.t = t
        self.policy = policy
        self.record_only = record_only
        down, up, self.cut = rounded_weights(policy, t)
        self.weights = (down, up)  # SampleRate rounded down, up (R < cut)
        self.root_keep = _cached_keep(policy, t)  # kept root, no attributes of its own
        self.root_keep_up = _cached_keep(policy, t, True)

    def marked(self) -> Consistent:
        """The same threshold, RECORD_ONLY where it does not keep."""
        return Consistent(self.t, self.policy, record_only=True)

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
        tracer has already looked up (see ``sfumato.plugin.SpanSampler``)."""
        ts: TraceState | None = None
        if parent is not None:
            # A SpanContext (or a subclass) is the tuple (trace_id, span_id, is_remote, flags,
            # state, is_valid).
            ts = parent[4] if TUPLE_LAYOUT else parent.trace_state
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
