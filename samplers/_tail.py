"""The tail-decision processor: buffers each trace's recorded spans and decides when the
trace's local root ends.

It sits in front of the export processors and sees every recorded span (the head marks the
spans it would drop RECORD_ONLY rather than dropping them). At local-root end a policy looks
at the finished trace: a trace it keeps is forwarded whole, every span re-marked sampled with
adjusted count 1 and ``th:0``, because such a trace is kept with probability 1. Any other
trace follows the head: its head-sampled spans go on unchanged (they already carry their
weight), the rest are dropped. Nothing the head sampled out is ever exported as sampled.

Memory is bounded: at most ``max_traces`` open traces, ``max_spans_per_trace`` spans each,
``max_age_ms`` of age. Hitting a bound decides that trace early (counted by reason); its
later spans follow the decision through a bounded decision cache. A late span carrying an
error is always forwarded (as the single span kept with probability 1).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanContext, StatusCode, TraceFlags
from sfumato._otel import attributes_of, has_error, ids_of, unit_facts
from sfumato._otel import is_sampled as _sampled
from sfumato._processors import unit_taker
from sfumato.plugin import BufferingProcessor

from ._consistent import ADJUSTED_COUNT, randomness, state_with_th, weight_attributes
from ._rules import Verdict

if TYPE_CHECKING:
    from sfumato._stats import Stats, Tally

__all__ = ["FinishedTrace", "TailPolicy", "TailProcessor", "forced_copy", "span_has_error"]

log = logging.getLogger("sfumato")

_ERROR = StatusCode.ERROR
_SAMPLED = TraceFlags.SAMPLED
_HEAD = "head"  # decision-cache value: follow each span's head flag
_DROPPED = "dropped"  # decision: the head decision stands and sampled nothing
_ALL = "all"  # in a verdict, not cached: the head decision stands and sampled every span


@dataclass
class FinishedTrace:
    """What a trace-end policy sees: the buffered spans of one trace, root last."""

    spans: Sequence[ReadableSpan]
    root: ReadableSpan | None
    has_error: bool
    early: str | None = None  # set when a bound forced the decision before the root ended

    @property
    def duration_ms(self) -> float:
        root = self.root
        if root is None or root.start_time is None or root.end_time is None:
            return 0.0
        return (root.end_time - root.start_time) / 1e6


# Returns the reason the trace is kept with probability 1 ("error", "slow", a policy's
# name), a rule's Verdict (kept at its threshold, or dropped), or None to let the head
# decision stand.
TailPolicy = Callable[[FinishedTrace], "str | Verdict | None"]


class _Decision(str):
    """A policy's decision on a unit, ``<sampler>:<reason>``: kept at threshold ``th`` (0:
    probability 1), or dropped (``dropped``; ``final``: late errors are dropped too)."""

    th = 0
    dropped = False
    final = False


def _decision(name: str, verdict: Verdict) -> _Decision:
    made = _Decision(f"{name}:{verdict.rule}")
    made.th = verdict.th
    made.dropped = not verdict.kept
    made.final = verdict.final
    return made


def span_has_error(span: ReadableSpan) -> bool:
    """ERROR status or an ``exception`` event."""
    return has_error(span)


def forced_copy(span: ReadableSpan, policy: str) -> ReadableSpan:
    """A copy of ``span`` marked sampled, with the threshold of ``policy`` (0, probability 1,
    unless a rule kept the unit at a lower probability) and the weight it stands for.

    An ended span's attributes cannot change through the API, so the weight goes onto a
    copy; the original (and its RECORD_ONLY context) is left alone.
    """
    ctx = span.context
    assert ctx is not None
    th = getattr(policy, "th", 0)
    context = SpanContext(
        ctx.trace_id,
        ctx.span_id,
        is_remote=False,
        trace_flags=TraceFlags(ctx.trace_flags | _SAMPLED),
        trace_state=state_with_th(ctx.trace_state, th),
    )
    attributes = dict(span.attributes or {})
    if th:
        r = randomness(ctx.trace_id, ctx.trace_state)
        attributes.update(weight_attributes(str(policy), th, r))
    else:
        attributes.update(weight_attributes(str(policy), 0))
    return ReadableSpan(
        name=span.name,
        context=context,
        parent=span.parent,
        resource=span.resource,
        attributes=attributes,
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


# What _finish hands to _emit, for a unit with spans to forward: (spans, reason, decision,
# path). reason: why the unit is kept whole (None: the head decision stands); decision: what
# the unit remembers; path: under keep="error-path", the span ids kept with probability 1.
_Verdict = tuple["list[ReadableSpan]", "str | None", str, "set[int] | None"]
_new = object.__new__


class _Decided:
    """What ``on_end`` remembers of a unit of its own once decided: the decision, the span
    ids of its spans and of their parents (a later span of the trace belongs to the unit
    when its own id or its parent's is one of them), and the unit while it is held."""

    __slots__ = ("decision", "ids", "unit")

    def __init__(self, decision: str, spans: list[ReadableSpan]) -> None:
        self.decision = decision
        self.unit: _Trace | None = None
        ids: set[int] = set()
        for span in spans:
            found = ids_of(span)
            if found is not None:
                ids.add(found[1])
                if not found[3]:
                    ids.add(found[2])
        self.ids = ids


class _Trace:
    """One local unit: a local root span (a span with a remote parent, or a new root) and
    its local descendants. Two entries of one trace into the process are two units.

    ``spans``: its ended spans in end order, None once decided. ``root``: the local root
    span when sfumato's tracer opened the unit as that root started (``open_trace``); its
    local descendants then append themselves to ``spans`` as they end, while ``len(spans) <
    room``, without a call to ``on_end`` (see ``_Span.end`` in ``sfumato._otel``), and a
    span that ends after the decision finds the unit through its ``_buffer``.
    ``closed_at``: how many spans the decision covered; a span that finds the unit decided
    after appending itself asks ``included`` whether it was one of them. ``decision``: None
    while open. ``held``: after a head drop, the spans kept for ``decision_wait_ms`` (until
    ``until``) in case a late error turns the unit to keep.
    """

    __slots__ = (
        "closed_at",
        "decision",
        "deferred",
        "first_ns",
        "held",
        "key",
        "lock",
        "owner",
        "room",
        "root",
        "spans",
        "until",
    )

    spans: list[ReadableSpan] | None
    root: ReadableSpan | None
    room: int
    first_ns: int
    closed_at: int
    lock: threading.Lock
    owner: TailProcessor
    key: int
    decision: str | None
    held: list[ReadableSpan] | None
    until: int
    deferred: bool  # held whole, head-sampled spans included (see TailProcessor._finish)

    def included(self, span: ReadableSpan, spans: list[ReadableSpan]) -> bool:
        """Whether ``span``, appended to ``spans`` as the unit was being decided, was in the
        decision (else it goes through ``on_end`` as a late span)."""
        with self.lock:
            return spans.index(span) < self.closed_at


def _weighted(spans: list[ReadableSpan]) -> bool:
    """Whether the head kept ``spans`` (one unit's) at a weight other than 1."""
    for s in spans:
        if _sampled(s):
            count = attributes_of(s).get(ADJUSTED_COUNT)
            return count is not None and count != 1.0
    return False


def _descendants(spans: list[ReadableSpan], root: ReadableSpan) -> list[ReadableSpan]:
    """Those of ``spans`` (one trace's, buffered by ``on_end``) that descend from ``root``
    through local parents; the rest belong to another local root of the trace."""
    root_id = root.context.span_id  # type: ignore[union-attr]
    parent_of: dict[int, int | None] = {}
    for s in spans:
        p = s.parent
        parent_of[s.context.span_id] = p.span_id if p is not None and not p.is_remote else None  # type: ignore[union-attr]
    mine: dict[int, bool] = {root_id: True}

    def belongs(sid: int) -> bool:
        path = []
        current: int | None = sid
        found = False
        while current is not None:
            known = mine.get(current)
            if known is not None:
                found = known
                break
            path.append(current)
            current = parent_of.get(current)
        for step in path:
            mine[step] = found
        return found

    return [s for s in spans if belongs(s.context.span_id)]  # type: ignore[union-attr]


# What ``_late`` hands back to forward outside the lock: (spans to forward as copies kept
# with probability 1 under ``decision``, spans to forward as they are, the tail policy that
# kept them (None: the head), decision).
_Late = tuple["list[ReadableSpan]", "list[ReadableSpan]", "str | None", str]


class TailProcessor(SpanProcessor, BufferingProcessor):
    """Buffers per local unit, decides at local-root end, forwards kept spans to
    ``downstream``.

    ``errors_only``: the policy keeps exactly the units that hold an error (reason
    ``error``), so it is not called. Everything is decided and counted under one lock (the
    counts are ``Tally`` objects it guards); spans are forwarded after it is released.

    Units the tracer opened are keyed by their root's span id; spans that reach ``on_end``
    without one (another tracer's, or ``on_end`` called directly) are grouped by trace id
    (keyed ``-trace_id``), and a local root ending among them takes its own descendants.
    """

    def __init__(
        self,
        downstream: SpanProcessor,
        stats: Stats,
        policy: TailPolicy,
        *,
        name: str = "error-always",
        keep: Literal["trace", "error-path"] = "trace",
        max_traces: int = 10_000,
        max_spans_per_trace: int = 1_000,
        max_age_ms: int = 120_000,
        decision_cache_size: int = 100_000,
        decision_wait_ms: int = 0,
        keep_late_errors: bool = True,
        errors_only: bool = False,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.downstream = downstream
        self.policy = policy
        self.name = name
        self.keep = keep
        self.max_traces = max_traces
        self.max_spans = max_spans_per_trace
        self.max_age_ns = max_age_ms * 1_000_000
        self.wait_ns = decision_wait_ms * 1_000_000
        self.cache_size = decision_cache_size
        self.keep_late_errors = keep_late_errors
        self.errors_only = errors_only
        self._late_decision = f"{name}:late_error"
        self._clock = clock
        # Open units, the oldest first: the tracer's by root span id, on_end's by -trace id.
        self._traces: dict[int, _Trace] = {}
        # Units held for decision_wait_ms, in the order their waits end, by id(unit) (two
        # units of one trace are two entries); and on_end's units by trace id, for their
        # late spans (the newest of a trace).
        self._held: dict[int, _Trace] = {}
        # The decision cache of on_end's units (by trace id: the units of that trace), in two
        # generations of plain dicts: a full newer generation replaces the older one. It
        # remembers the last cache_size / 2 decisions at least, cache_size at most. (The
        # tracer's units carry their decision themselves.)
        self._generation = max(1, decision_cache_size // 2)
        self._decided: dict[int, list[_Decided]] = {}
        self._decided_before: dict[int, list[_Decided]] = {}
        self._lock = threading.Lock()
        self._sweeper: threading.Thread | None = None
        self._stopping = threading.Event()
        # Kept spans go downstream a local unit at a time (see ``UnitProcessor``).
        self._forward_unit = unit_taker(downstream)
        self._new_traces = 0
        self._policy_failed = False
        t = stats.tally
        self._seen = t("tail.spans.seen")
        self._kept_spans = t("tail.spans.kept")
        self._dropped_spans = t("tail.spans.dropped")
        self._late = t("tail.spans.late")
        self._late_error = t("tail.spans.kept.late_error")
        self._traces_kept_head = t("tail.traces.kept.head")
        self._traces_dropped = t("tail.traces.dropped")
        self._policy_errors = stats.counter("tail.policy.errors")
        self._stats = stats
        self._by_reason: dict[str, Tally] = {}

    def replace_policy(
        self,
        policy: TailPolicy,
        *,
        name: str,
        keep: Literal["trace", "error-path"],
        keep_late_errors: bool,
        errors_only: bool,
        max_traces: int,
        max_spans_per_trace: int,
        max_age_ms: int,
        decision_wait_ms: int,
    ) -> None:
        """Decide with ``policy`` (and these bounds) from the next decision on: taken under
        the lock decisions are taken under, so each unit is decided by one policy. Open
        units stay buffered; decided ones keep their decision."""
        with self._lock:
            self.policy = policy
            self.name = name
            self.keep = keep
            self.keep_late_errors = keep_late_errors
            self.errors_only = errors_only
            self._late_decision = f"{name}:late_error"
            self.max_traces = max_traces
            self.max_spans = max_spans_per_trace
            self.max_age_ns = max_age_ms * 1_000_000
            self.wait_ns = decision_wait_ms * 1_000_000

    # -- counters ----------------------------------------------------------------------------

    def _tally(self, name: str) -> Tally:
        tally = self._by_reason.get(name)
        if tally is None:
            tally = self._by_reason[name] = self._stats.tally(name)
        return tally

    # -- SpanProcessor -----------------------------------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def _new_trace(self, root: ReadableSpan | None, key: int) -> _Trace:
        trace = _new(_Trace)
        trace.spans = []
        trace.root = root
        trace.room = self.max_spans - 1  # the root's place kept
        trace.first_ns = self._clock()
        trace.closed_at = -1
        trace.lock = self._lock
        trace.owner = self
        trace.key = key
        trace.decision = None
        trace.held = None
        trace.deferred = False
        return trace

    def open_trace(self, root: ReadableSpan, trace_id: int, span_id: int) -> _Trace | None:
        """Called by sfumato's tracer as a local root span starts: the unit its local
        descendants append themselves to as they end. None (they go through ``on_end``)
        when anything goes wrong."""
        try:
            key = span_id
            lock = self._lock
            lock.acquire()  # not ``with``: half the cost, once per unit on the span path
            try:
                trace = self._new_trace(root, key)
                out = self._make_room(trace)
                self._traces[key] = trace
            finally:
                lock.release()
            for verdict in out:
                self._emit(verdict)
            return trace
        except Exception:
            self._failed()
            return None

    def _make_room(self, trace: _Trace) -> list[_Verdict]:
        """Before a new unit is opened (under the lock): the oldest held unit let go, or
        else the oldest open unit decided, when ``max_traces`` are kept; old ones every 32
        new units."""
        traces = self._traces
        out: list[_Verdict | None] = []
        if len(traces) + len(self._held) >= self.max_traces:
            if self._held:
                out.append(self._release(next(iter(self._held.values()))))
            else:
                oldest = next(iter(traces))
                out.append(self._finish(traces.pop(oldest), None, "max_traces"))
        self._new_traces += 1
        if self._new_traces >= 32:  # old units are looked for every 32 new ones
            self._new_traces = 0
            out.extend(self._expire(trace.first_ns))
        return [v for v in out if v is not None]

    def on_end(self, span: ReadableSpan) -> None:
        # One frame per span: the whole body inside the try (free in CPython 3.11+).
        try:
            unit: _Trace | None = getattr(span, "_buffer", None)
            if unit is not None and unit.owner is self:
                self._unit_end(unit, span)
                return
            ids = ids_of(span)
            if ids is None:
                return
            tid, sid, parent_sid, is_root = ids
            lates: list[_Late] = []
            out: list[_Verdict] = []
            lock = self._lock
            lock.acquire()
            try:
                traces = self._traces
                key = -tid
                trace = traces.get(key)
                decided = (
                    # (a remote parent's id says nothing: that span is another entry)
                    self._decided_of(tid, sid, 0 if is_root else parent_sid)
                    if tid in self._decided or tid in self._decided_before
                    else None
                )
                if decided is not None:
                    # A span of a unit decided already: a descendant of its spans, or its
                    # root, when a bound decided the unit before the root ended. Its own
                    # descendants that ended before it (buffered, their parent unknown
                    # until now) follow the decision with it.
                    followers = [span]
                    if trace is not None and not is_root:
                        followers = self._taken_from(trace, span) + followers
                    for follower in followers:
                        decided.ids.add(follower.context.span_id)  # type: ignore[union-attr]
                        late = self._follow(follower, decided.decision, decided.unit, decided, out)
                        if late is not None:
                            lates.append(late)
                elif trace is not None:
                    spans = trace.spans
                    assert spans is not None  # an open unit's
                    spans.append(span)
                    if not is_root and len(spans) < self.max_spans:
                        return
                    if is_root:
                        out = self._root_among(trace, span)
                    else:
                        del traces[key]
                        verdict = self._finish(trace, None, "max_spans")
                        out = [verdict] if verdict is not None else []
                else:  # the first span of a unit (any span of the trace not in a decided one)
                    trace = self._new_trace(None, key)
                    out = self._make_room(trace)
                    trace.spans.append(span)  # type: ignore[union-attr]
                    if is_root:
                        verdict = self._finish(trace, span, None)
                    elif self.max_spans <= 1:
                        verdict = self._finish(trace, None, "max_spans")
                    else:
                        traces[key] = trace
                        verdict = None
                    if verdict is not None:
                        out.append(verdict)
            finally:
                lock.release()
            for late in lates:
                self._forward_late(late)
            for verdict in out:
                self._emit(verdict)
        except Exception:
            self._failed()

    def _taken_from(self, trace: _Trace, ancestor: ReadableSpan) -> list[ReadableSpan]:
        """The spans of the open unit ``trace`` that descend from ``ancestor`` (which ends
        as a late span of a decided unit), taken out of it (under the lock)."""
        spans = trace.spans
        assert spans is not None
        mine = _descendants([*spans, ancestor], ancestor)[:-1]
        if mine:
            taken = set(map(id, mine))
            trace.spans = [s for s in spans if id(s) not in taken]
            if not trace.spans:
                del self._traces[trace.key]
                trace.spans = None
        return mine

    def _unit_end(self, unit: _Trace, span: ReadableSpan) -> None:
        """A span of a unit the tracer opened reaches ``on_end``: its root, a descendant
        the unit had no room for, or a span ending after the decision."""
        late: _Late | None = None
        verdict: _Verdict | None = None
        out: list[_Verdict] = []
        lock = self._lock
        lock.acquire()
        try:
            decision = unit.decision
            if decision is None:
                spans = unit.spans
                assert spans is not None  # an open unit's
                spans.append(span)
                self._traces.pop(unit.key, None)
                if span is unit.root:
                    verdict = self._finish(unit, span, None)
                else:
                    verdict = self._finish(unit, None, "max_spans")
            else:
                late = self._follow(span, decision, unit, None, out)
        finally:
            lock.release()
        if late is not None:
            self._forward_late(late)
        if verdict is not None:
            self._emit(verdict)
        for released in out:
            self._emit(released)

    def _root_among(self, trace: _Trace, root: ReadableSpan) -> list[_Verdict]:
        """A local root ends among the spans ``on_end`` grouped by its trace (under the
        lock): it takes its own descendants; the rest stay for their own roots."""
        spans = trace.spans
        assert spans is not None
        mine = _descendants(spans, root)
        if len(mine) == len(spans):
            del self._traces[trace.key]
            verdict = self._finish(trace, root, None)
        else:
            taken = set(map(id, mine))
            trace.spans = [s for s in spans if id(s) not in taken]
            unit = self._new_trace(None, trace.key)
            assert unit.spans is not None
            unit.spans.extend(mine)
            verdict = self._finish(unit, root, None, cache=False)
        return [verdict] if verdict is not None else []

    def _decided_of(self, tid: int, sid: int, parent_sid: int) -> _Decided | None:
        """The decided unit of on_end's that a span of trace ``tid`` belongs to, if any."""
        for generation in (self._decided, self._decided_before):
            for decided in generation.get(tid, ()):
                if sid in decided.ids or parent_sid in decided.ids:
                    return decided
        return None

    def _failed(self) -> None:
        # Never into the application: count, log once, and move on.
        self._policy_errors.incr()
        if not self._policy_failed:
            self._policy_failed = True
            log.warning("sfumato: the tail-decision processor raised", exc_info=True)

    def _finish(
        self, trace: _Trace, root: ReadableSpan | None, early: str | None, cache: bool = True
    ) -> _Verdict | None:
        """Decide ``trace`` and count it (under the lock, so the decision is recorded before
        any other thread can look: a span of this unit ending right now follows it, never
        re-buffers). None when there is nothing to forward."""
        open_spans = trace.spans
        assert open_spans is not None
        spans = open_spans[:]  # what the decision covers; late appends stay out of it
        trace.spans = None  # the spans and the root point at the unit: no cycle left
        trace.root = None
        trace.closed_at = len(spans)
        sampled, error_ids = unit_facts(spans)
        reason: str | Verdict | None
        if self.errors_only:
            reason = "error" if error_ids is not None else None
        else:
            try:
                reason = self.policy(FinishedTrace(spans, root, error_ids is not None, early))
            except Exception:
                self._policy_errors.incr()
                if not self._policy_failed:
                    self._policy_failed = True
                    log.warning(
                        "sfumato: tail policy %r raised; the head decision stands",
                        self.name,
                        exc_info=True,
                    )
                reason = None
        n = len(spans)
        rule: Verdict | None = None
        if isinstance(reason, Verdict):
            rule = reason
            decision: str = _decision(self.name, rule)
            reason = rule.rule
        elif reason is None:
            decision = _HEAD if sampled else _DROPPED
        else:
            decision = f"{self.name}:{reason}"
        trace.decision = decision
        entry: _Decided | None = None
        if trace.key < 0 and cache:  # a unit grouped by trace id: its late spans look here
            entry = _Decided(decision, spans)
            generation = self._decided
            generation.setdefault(-trace.key, []).append(entry)
            if len(generation) >= self._generation:
                self._decided_before = generation
                self._decided = {}
        self._seen.n += n
        if early is not None:
            self._tally(f"tail.early.{early}").n += 1
        if rule is not None and not rule.kept:  # a rule dropped the unit, head spans too
            self._dropped_spans.n += n
            self._tally(f"tail.traces.dropped.{reason}").n += 1
            if rule.capped:
                self._tally(f"tail.traces.capped.{reason}").n += 1
            return None
        if reason is None:  # the head decision stands: its sampled spans go on
            # With decision_wait_ms, a unit is held so that a late error can keep it whole
            # at weight 1: what the head dropped, and, when the head kept it at a weight
            # other than 1, the whole unit, sent at the end of the wait. (Sent now at 1/p and
            # then kept whole for a late error, its spans would weigh 1/p or 1 depending on
            # when the error came: no weight at all would be exact.)
            deferred = bool(self.wait_ns) and sampled > 0 and _weighted(spans)
            if self.wait_ns and (sampled < n or deferred):
                # The held spans and the unit point at each other until the wait ends;
                # _release then drops the unit's side, so no cycle outlives it.
                held = spans if deferred or not sampled else [s for s in spans if not _sampled(s)]
                trace.held = held
                trace.deferred = deferred
                trace.until = self._clock() + self.wait_ns
                self._held[id(trace)] = trace
                if entry is not None:
                    entry.unit = trace
                self._start_sweeper()
                if deferred:
                    return None  # counted and sent when the wait ends
            else:
                self._dropped_spans.n += n - sampled
                if not sampled:
                    self._traces_dropped.n += 1
            if not sampled:
                return None
            self._kept_spans.n += sampled
            self._traces_kept_head.n += 1
            return spans, None, _ALL if sampled == n else decision, None
        self._tally(f"tail.traces.kept.{reason}").n += 1
        path: set[int] | None = None
        kept = n
        if self.keep == "error-path" and error_ids and rule is None:
            path = _error_path(spans, error_ids)
            kept = sum(
                1
                for s in spans
                if s.context.span_id in path  # type: ignore[union-attr]
                or s.context.trace_flags.sampled  # type: ignore[union-attr]
            )
        self._kept_spans.n += kept
        self._dropped_spans.n += n - kept
        return spans, reason, decision, path

    def _start_sweeper(self) -> None:
        """A thread that ends the waits of held units on time, however quiet the service
        (under the lock; started with the first held unit)."""
        if self._sweeper is not None or self._stopping.is_set():
            return
        wait_s = self.wait_ns / 1e9

        def sweep() -> None:
            while not self._stopping.wait(max(wait_s / 2, 0.01)):
                try:
                    self.expire(flush=False)
                except Exception:
                    log.debug("sfumato: tail sweep raised", exc_info=True)

        self._sweeper = threading.Thread(target=sweep, name="sfumato-tail-wait", daemon=True)
        self._sweeper.start()

    def _unhold(self, trace: _Trace) -> None:
        self._held.pop(id(trace), None)

    def _release(self, trace: _Trace) -> _Verdict | None:
        """The end of a held unit's wait (under the lock): what the head sampled of it goes
        on at its head weight, the rest is dropped; counted now."""
        held = trace.held
        self._unhold(trace)
        if held is None:
            return None
        trace.held = None
        sampled = sum(1 for s in held if _sampled(s)) if trace.deferred else 0
        self._dropped_spans.n += len(held) - sampled
        if trace.deferred:
            trace.deferred = False
            self._kept_spans.n += sampled
            self._traces_kept_head.n += 1
            return held, None, _HEAD, None
        if trace.decision == _DROPPED:
            self._traces_dropped.n += 1
        return None

    def remembered(self) -> int:
        """Decided units in the decision cache."""
        return len(self._decided) + len(self._decided_before)

    def _expire(self, now: int, flush: bool = False) -> list[_Verdict]:
        """Decide the units open longer than max_age_ms and let go of the held units whose
        wait is over (under the lock); ``flush``: also end the wait of every held unit that
        has spans to send."""
        out: list[_Verdict] = []
        held = self._held
        while held:
            trace = next(iter(held.values()))
            if trace.until > now:
                break
            released = self._release(trace)
            if released is not None:
                out.append(released)
        if flush:
            for trace in [t for t in held.values() if t.deferred]:
                released = self._release(trace)
                if released is not None:
                    out.append(released)
        traces = self._traces
        cutoff = now - self.max_age_ns
        while traces:
            key = next(iter(traces))
            trace = traces[key]
            if trace.first_ns > cutoff:
                break
            del traces[key]
            verdict = self._finish(trace, None, "max_age")
            if verdict is not None:
                out.append(verdict)
        return out

    def _emit(self, verdict: _Verdict) -> None:
        """Forward what ``_finish`` kept (outside the lock), as one unit: the export queue
        keeps or drops it whole, and one kept by a policy outranks one kept by the head."""
        spans, reason, decision, path = verdict
        if decision is _ALL:
            kept = spans  # the head sampled every span: nothing to filter
        elif reason is None:
            kept = []
            for s in spans:
                if _sampled(s):
                    kept.append(s)
        elif path is not None:
            kept = []
            for s in spans:
                if s.context.span_id in path:  # type: ignore[union-attr]
                    kept.append(forced_copy(s, decision))
                elif s.context.trace_flags.sampled:  # type: ignore[union-attr]
                    kept.append(s)  # kept by the head anyway, with its head weight
        else:
            kept = [forced_copy(s, decision) for s in spans]
        if kept:
            self._forward_unit(kept, reason)

    def _follow(
        self,
        span: ReadableSpan,
        decision: str,
        unit: _Trace | None,
        entry: _Decided | None,
        out: list[_Verdict],
    ) -> _Late | None:
        """A span of a unit decided already (under the lock): it follows the decision. A
        late error turns a unit the head decided to keep, with probability 1: it and what
        the unit still holds are kept, as are its ancestors that end after it. Weights stay
        exact: an error is always kept, and always weighs 1."""
        self._seen.n += 1
        self._late.n += 1
        if unit is not None and unit.held is not None and unit.until < self._clock():
            released = self._release(unit)
            if released is not None:
                out.append(released)
        error = self.keep_late_errors and span_has_error(span)
        if getattr(decision, "dropped", False):  # a rule dropped the unit
            if error and not getattr(decision, "final", False):
                self._kept_spans.n += 1
                self._late_error.n += 1
                self._tally("tail.traces.partial.late_error").n += 1
                return [span], [], "late_error", self._late_decision
            self._dropped_spans.n += 1
            return None
        if decision in (_HEAD, _DROPPED):
            if not error:
                if (
                    unit is not None
                    and unit.held is not None
                    and (unit.deferred or not _sampled(span))
                ):
                    if len(unit.held) < self.max_spans:
                        unit.held.append(span)
                    else:
                        self._dropped_spans.n += 1
                    return None
                if _sampled(span):
                    self._kept_spans.n += 1
                    return [], [span], None, decision
                self._dropped_spans.n += 1
                return None
            # A late error: the unit is kept from now on.
            late = self._late_decision
            if unit is not None:
                unit.decision = late
            if entry is not None:
                entry.decision = late
            copies = [span]
            held = unit.held if unit is not None else None
            if held:
                assert unit is not None
                self._unhold(unit)
                unit.held = None
                copies = held + copies
                if decision == _DROPPED or unit.deferred:
                    self._tally("tail.traces.kept.late_error").n += 1
                unit.deferred = False
            elif decision == _DROPPED:
                self._tally("tail.traces.partial.late_error").n += 1
            self._kept_spans.n += len(copies)
            self._late_error.n += 1
            return copies, [], "late_error", late
        # Kept by a policy: with probability 1, or at a rule's threshold.
        policy = decision.partition(":")[2]
        if error and isinstance(decision, _Decision) and decision.th:
            # An error weighs 1 wherever it ends up: not the 1/p of the unit a rule kept.
            self._kept_spans.n += 1
            self._late_error.n += 1
            return [span], [], "late_error", self._late_decision
        if self.keep == "trace" or error:
            self._kept_spans.n += 1
            return [span], [], policy, decision
        if _sampled(span):
            self._kept_spans.n += 1
            return [], [span], None, decision
        self._dropped_spans.n += 1
        return None

    def _forward_late(self, late: _Late) -> None:
        copies, plain, policy, decision = late
        kept = [forced_copy(s, decision) for s in copies] + plain
        self._forward_unit(kept, policy)

    # -- flushing ----------------------------------------------------------------------------

    def open_traces(self) -> int:
        """Units open, and held for decision_wait_ms."""
        return len(self._traces) + len(self._held)

    def decide_all(self, reason: str) -> None:
        """Decide every open unit now (shutdown) as if a bound had been hit, and let go of
        what is held."""
        self._stopping.set()
        with self._lock:
            pending = [self._finish(t, None, reason) for t in self._traces.values()]
            self._traces.clear()
            pending.extend(self._release(trace) for trace in list(self._held.values()))
        for verdict in pending:
            if verdict is not None:
                self._emit(verdict)

    def expire(self, flush: bool = True) -> None:
        """Decide the units open past max_age_ms, let go of what was held past its wait,
        and (``flush``) send what waits to be sent: a flush ends those waits early."""
        with self._lock:
            expired = self._expire(self._clock(), flush)
        for verdict in expired:
            self._emit(verdict)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.expire()
        return self.downstream.force_flush(timeout_millis)

    def shutdown(self) -> None:
        try:
            self.decide_all("shutdown")
        except Exception:
            log.debug("sfumato: tail processor shutdown raised", exc_info=True)
        self.downstream.shutdown()


def _error_path(spans: Sequence[ReadableSpan], error_ids: Sequence[int]) -> set[int]:
    """Ids of the error spans and all their ancestors among ``spans``."""
    parent_of: dict[int, int | None] = {}
    for s in spans:
        p = s.parent
        parent_of[s.context.span_id] = p.span_id if p is not None and not p.is_remote else None  # type: ignore[union-attr]
    path: set[int] = set()
    for sid in error_ids:
        current: int | None = sid
        while current is not None and current not in path:
            path.add(current)
            current = parent_of.get(current)
    return path
