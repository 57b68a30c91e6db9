"""``load-adaptive`` and ``rate-limit``: keep a target number of traces per second.

Both predict a keep probability per key from the arrival rate and decide consistently with
it, so every kept trace records an honest adjusted count (1/p, with ``th`` in tracestate):
the probability depends only on arrivals *before* the trace, never on the trace itself.

Once per interval each key's arrival rate feeds an exponential moving average; the target
probability is ``target / rate``. It falls at once (using the higher of the last interval's
rate and the average), rises by at most ``max_increase`` per interval, and never goes under
``floor``. Inside an interval a burst is caught early: every 64 arrivals the projected rate
is checked and the probability lowered right away. A key seen for the first time is kept
(p = 1) until its first interval ends, so new and rare keys are never starved; keys beyond
``max_keys`` share one overflow key; keys idle for 10 intervals are forgotten.

Both decide at the trace's local root; spans with a local parent follow the parent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes
from pydantic import BaseModel, ConfigDict, Field
from sfumato._guards import Guard
from sfumato._otel import SPAN_KEY, TUPLE_LAYOUT, current_context, span_context_in
from sfumato.plugin import SamplerContext, SamplerPlugin

from ._consistent import (
    Precision,
    drop_result,
    follow_parent,
    keep_result,
    randomness,
    threshold,
)
from .narrative import NARRATIVE_TYPE, resolve_type
from .probability import counters

if TYPE_CHECKING:
    from sfumato._stats import Stats

__all__ = [
    "AdaptiveSampler",
    "LoadAdaptive",
    "LoadAdaptiveOptions",
    "RateLimit",
    "RateLimitOptions",
]

OVERFLOW_KEY = ("__overflow__",)
_IDLE_INTERVALS = 10


class _KeyState:
    __slots__ = ("arrivals", "ema", "idle", "p", "t")

    def __init__(self) -> None:
        self.arrivals = 0
        self.ema: float | None = None
        self.idle = 0
        self.p = 1.0
        self.t = 0


KeyFn = Callable[[str, SpanKind | None, Context | None, Attributes], tuple[Any, ...]]


def key_function(fields: Sequence[str]) -> KeyFn:
    """The key of a root span: "name", "kind", or any attribute (narrative type included,
    read from context as ``per-narrative-type`` does)."""
    fields = tuple(fields)
    if not fields:
        return lambda name, kind, ctx, attributes: ()
    if fields == ("name", NARRATIVE_TYPE):
        return lambda name, kind, ctx, attributes: (
            name,
            resolve_type(NARRATIVE_TYPE, ctx, attributes),
        )

    def key(
        name: str, kind: SpanKind | None, ctx: Context | None, attributes: Attributes
    ) -> tuple[Any, ...]:
        parts: list[Any] = []
        for f in fields:
            if f == "name":
                parts.append(name)
            elif f == "kind":
                parts.append(kind)
            else:
                parts.append(resolve_type(f, ctx, attributes))
        return tuple(parts)

    return key


class AdaptiveSampler(Sampler):
    plain_attributes = True  # see sfumato.plugin.SpanSampler
    guarded = True

    def __init__(
        self,
        target_per_second: float,
        *,
        key: KeyFn | None = None,
        interval_s: float = 5.0,
        ema_weight: float = 0.5,
        max_increase: float = 1.5,
        floor: float = 0.0,
        max_keys: int = 1000,
        burst_factor: float = 2.0,
        policy: str = "load-adaptive",
        stats: Stats | None = None,
        precision: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target_per_second
        self.precision = precision
        self.key = key or key_function(("name", NARRATIVE_TYPE))
        self.interval = interval_s
        self.weight = ema_weight
        self.max_increase = max_increase
        self.floor = floor
        self.max_keys = max_keys
        self.burst_factor = burst_factor
        self.policy = policy
        self.clock = clock
        self.keys: dict[tuple[Any, ...], _KeyState] = {}
        self._started = clock()
        self._next_roll = self._started + interval_s
        self._roll_lock = threading.Lock()
        self._guard = Guard(policy, stats)
        kept, dropped = counters(stats, policy)
        self._kept = kept.incr
        self._dropped = dropped.incr
        self._overflow = (
            stats.counter(f"sampler.{policy}.keys_overflow").incr if stats else (lambda: None)
        )

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
            context = parent_context if parent_context is not None else current_context()
            parent = span_context_in(context)
            if parent is not None and not (parent[2] if TUPLE_LAYOUT else parent.is_remote):
                # A child of a local span (the common case) follows it.
                parent_span: Any = context.get(SPAN_KEY)
                return follow_parent(parent, attributes, self.policy, parent_span)
            now = self.clock()
            if now >= self._next_roll:
                self.roll(now)
            key = self.key(name, kind, parent_context, attributes)
            state = self.keys.get(key)
            if state is None:
                state = self._new_key(key)
            state.arrivals += 1
            if not state.arrivals & 63:
                self._check_burst(state, now)
            t = state.t
            ts = parent.trace_state if parent is not None else None
            r = randomness(trace_id, ts)
            if r >= t:
                self._kept()
                return keep_result(self.policy, t, attributes, ts, r)
            self._dropped()
            return drop_result(ts)
        except Exception:
            return self._guard.fallback(parent_context, attributes)

    def _new_key(self, key: tuple[Any, ...]) -> _KeyState:
        keys = self.keys
        if len(keys) >= self.max_keys:
            self._overflow()
            state = keys.get(OVERFLOW_KEY)
            if state is None:
                state = keys[OVERFLOW_KEY] = _KeyState()
            return state
        return keys.setdefault(key, _KeyState())

    def _check_burst(self, state: _KeyState, now: float) -> None:
        # Within the interval: lower p at once when the projected keep rate overshoots.
        elapsed = now - (self._next_roll - self.interval)
        if elapsed < self.interval * 0.05:
            return
        projected = state.arrivals / elapsed
        if projected * state.p > self.target * self.burst_factor:
            p = max(self.floor, self.target / projected)
            if p < state.p:
                state.p = p
                state.t = threshold(p, self.precision)

    def roll(self, now: float) -> None:
        """Close the interval: update every key's average and probability."""
        if not self._roll_lock.acquire(blocking=False):
            return  # another thread is rolling; this span uses the current probabilities
        try:
            if now < self._next_roll:
                return
            start = self._next_roll - self.interval
            elapsed = max(now - start, 1e-9)
            # Missed intervals (no traffic at all) are folded into one.
            self._next_roll = now + self.interval
            w = self.weight
            forget = []
            for key, state in list(self.keys.items()):
                arrivals = state.arrivals
                state.arrivals = 0
                rate = arrivals / elapsed
                ema = rate if state.ema is None else w * rate + (1.0 - w) * state.ema
                state.ema = ema
                if arrivals == 0:
                    state.idle += 1
                    if state.idle >= _IDLE_INTERVALS:
                        forget.append(key)
                        continue
                else:
                    state.idle = 0
                basis = max(ema, rate)
                desired = 1.0 if basis <= self.target else self.target / basis
                desired = max(desired, self.floor)
                p = desired if desired < state.p else min(desired, state.p * self.max_increase)
                state.p = p
                state.t = threshold(p, self.precision)
            for key in forget:
                self.keys.pop(key, None)
        finally:
            self._roll_lock.release()

    def probability(self, key: tuple[Any, ...]) -> float:
        state = self.keys.get(key)
        return state.p if state is not None else 1.0

    def get_description(self) -> str:
        return f"{self.policy}{{target={self.target}/s}}"


class LoadAdaptiveOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target_per_second: float = Field(gt=0, description="Kept traces per second, per key.")
    key: list[str] = Field(
        default_factory=lambda: ["name", NARRATIVE_TYPE],
        description="What a key is made of: 'name', 'kind' or attribute names.",
    )
    interval_ms: int = Field(default=5_000, ge=10, description="How often rates are updated.")
    ema_weight: float = Field(default=0.5, gt=0, le=1, description="Weight of the newest interval.")
    max_increase: float = Field(
        default=1.5, ge=1, description="Most a probability rises per interval."
    )
    floor: float = Field(default=0.001, ge=0, le=1, description="Lowest keep probability of a key.")
    max_keys: int = Field(default=1000, ge=1, description="Keys tracked; others share one key.")
    precision: Precision = 4


class LoadAdaptive(SamplerPlugin):
    Options: ClassVar[type[BaseModel]] = LoadAdaptiveOptions

    def build(self, options: Any, context: SamplerContext) -> Sampler:
        return AdaptiveSampler(
            options.target_per_second,
            key=key_function(options.key),
            interval_s=options.interval_ms / 1000,
            ema_weight=options.ema_weight,
            max_increase=options.max_increase,
            floor=options.floor,
            max_keys=options.max_keys,
            stats=context.stats,
            precision=options.precision,
        )


class RateLimitOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    traces_per_second: float = Field(
        gt=0, description="Kept traces per second, all roots together."
    )
    interval_ms: int = Field(default=1_000, ge=10, description="How often the rate is updated.")


class RateLimit(SamplerPlugin):
    """A traces/s cap by a predicted probability rather than a token bucket, so every kept
    trace keeps an honest adjusted count; overshoot inside an interval is caught every 64
    roots (at 1.25x the cap)."""

    Options: ClassVar[type[BaseModel]] = RateLimitOptions

    def build(self, options: Any, context: SamplerContext) -> Sampler:
        return AdaptiveSampler(
            options.traces_per_second,
            key=key_function(()),
            interval_s=options.interval_ms / 1000,
            ema_weight=0.7,
            max_increase=2.0,
            floor=0.0,
            max_keys=1,
            burst_factor=1.25,
            policy="rate-limit",
            stats=context.stats,
        )
