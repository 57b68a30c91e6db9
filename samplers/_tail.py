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
from typing import TYPE_CHECKING, Any, Literal

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanContext, StatusCode, TraceFlags
from sfumato._processors import unit_taker
from sfumato._tracer import _TUPLE_LAYOUT

from ._consistent import state_with_th, weight_attributes

if TYPE_CHECKING:
    from sfumato._stats import Stats, Tally

__all__ = ["FinishedTrace", "TailPolicy", "TailProcessor", "forced_copy", "span_has_error"]

log = logging.getLogger("sfumato")

_ERROR = StatusCode.ERROR
_SAMPLED = TraceFlags.SAMPLED
_HEAD = "head"  # decision-cache value: follow each span's head flag
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
# name), or None to let the head decision stand.
TailPolicy = Callable[[FinishedTrace], "str | None"]


def span_has_error(span: ReadableSpan) -> bool:
    """ERROR status or an ``exception`` event."""
    # The private fields spare a tuple copy per span on the hot path; the properties are
    # the fallback for any other ReadableSpan-like object.
    status = getattr(span, "_status", None) or span.status
    code = getattr(status, "_status_code", None)
    if (code if code is not None else status.status_code) is _ERROR:
        return True
    events = getattr(span, "_events", None)
    if events is None:
        events = span.events
    if events:
        for event in events:
            if event.name == "exception":
                return True
    return False


def forced_copy(span: ReadableSpan, policy: str) -> ReadableSpan:
    """A copy of ``span`` marked sampled, with threshold 0 and adjusted count 1 (``policy``).

    An ended span's attributes cannot change through the API, so the weight goes onto a
    copy; the original (and its RECORD_ONLY context) is left alone.
    """
    ctx = span.context
    assert ctx is not None
    context = SpanContext(
        ctx.trace_id,
        ctx.span_id,
        is_remote=False,
        trace_flags=TraceFlags(ctx.trace_flags | _SAMPLED),
        trace_state=state_with_th(ctx.trace_state, 0),
    )
    attributes = dict(span.attributes or {})
    attributes.update(weight_attributes(policy, 0))
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


# What _finish hands to _emit, for a trace with spans to forward: (spans, reason, decision,
# path). reason: why the trace is kept whole (None: the head decision stands); decision: what
# the cache remembers; path: under keep="error-path", the span ids kept with probability 1.
_Verdict = tuple["list[ReadableSpan]", "str | None", str, "set[int] | None"]
_new = object.__new__


class _Trace:
    """One open trace.

    ``spans``: its ended spans in end order, None once decided. ``root``: the local root
    span when sfumato's tracer opened the trace as that root started (``open_trace``); its
    local descendants then append themselves to ``spans`` as they end, while ``len(spans) <
    room``, without a call to ``on_end`` (see ``_Span.end`` in ``sfumato._tracer``).
    ``closed_at``: how many spans the decision covered; a span that finds the trace decided
    after appending itself asks ``included`` whether it was one of them.
    """

    __slots__ = ("closed_at", "first_ns", "lock", "owner", "room", "root", "spans")

    spans: list[ReadableSpan] | None
    root: ReadableSpan | None
    room: int
    first_ns: int
    closed_at: int
    lock: threading.Lock
    owner: TailProcessor

    def included(self, span: ReadableSpan, spans: list[ReadableSpan]) -> bool:
        """Whether ``span``, appended to ``spans`` as the trace was being decided, was in the
        decision (else it goes through ``on_end`` as a late span)."""
        with self.lock:
            return spans.index(span) < self.closed_at


def _scan(spans: list[ReadableSpan]) -> tuple[int, list[int] | None]:
    """How many of ``spans`` the head sampled, and the span ids of those with an error."""
    sampled = 0
    errors: list[int] | None = None
    for span in spans:
        try:  # an SDK span's fields: no property calls (and no tuple copies) per span
            ctx: Any = span._context
            flag = ctx[3] & 1  # (trace_id, span_id, is_remote, flags, state, is_valid)
            status: Any = span._status
            quiet = status._status_code is not _ERROR and not span._events
        except (AttributeError, TypeError, IndexError):
            ctx = span.context
            if ctx is None:
                continue
            flag = ctx.trace_flags.sampled
            quiet = False
        sampled += flag
        if quiet:
            continue
        if span_has_error(span):  # an ERROR status or an exception event
            if errors is None:
                errors = []
            errors.append(ctx.span_id)
    return sampled, errors


class TailProcessor(SpanProcessor):
    """Buffers per trace, decides at local-root end, forwards kept spans to ``downstream``.

    ``errors_only``: the policy keeps exactly the traces that hold an error (reason
    ``error``), so it is not called. Everything is decided and counted under one lock (the
    counts are ``Tally`` objects it guards); spans are forwarded after it is released.
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
        self.cache_size = decision_cache_size
        self.keep_late_errors = keep_late_errors
        self.errors_only = errors_only
        self._clock = clock
        self._traces: dict[int, _Trace] = {}  # insertion order: the oldest trace first
        # The decision cache in two generations of plain dicts: a full newer generation
        # replaces the older one. It remembers the last cache_size / 2 decisions at least,
        # cache_size at most, at the cost of one dict store per trace.
        self._generation = max(1, decision_cache_size // 2)
        self._decided: dict[int, str] = {}
        self._decided_before: dict[int, str] = {}
        self._lock = threading.Lock()
        # Kept spans go downstream a local trace at a time (see ``UnitProcessor``).
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

    # -- counters ----------------------------------------------------------------------------

    def _tally(self, name: str) -> Tally:
        tally = self._by_reason.get(name)
        if tally is None:
            tally = self._by_reason[name] = self._stats.tally(name)
        return tally

    # -- SpanProcessor -----------------------------------------------------------------------

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def _on_ending(self, span: Span) -> None:
        pass

    def _new_trace(self, root: ReadableSpan | None) -> _Trace:
        trace = _new(_Trace)
        trace.spans = []
        trace.root = root
        trace.room = self.max_spans - 1  # the root's place kept
        trace.first_ns = self._clock()
        trace.closed_at = -1
        trace.lock = self._lock
        trace.owner = self
        return trace

    def open_trace(self, root: ReadableSpan, tid: int) -> _Trace | None:
        """Called by sfumato's tracer as a local root span starts: the trace its local
        descendants append themselves to as they end. None (they go through ``on_end``) when
        the trace is open or decided already, or when anything goes wrong."""
        try:
            lock = self._lock
            lock.acquire()  # not ``with``: half the cost, once per trace on the span path
            try:
                traces = self._traces
                if tid in traces or self._decided.get(tid) or self._decided_before.get(tid):
                    return None
                trace = self._new_trace(root)
                out = self._make_room(trace)
                traces[tid] = trace
            finally:
                lock.release()
            for verdict in out:
                self._emit(verdict)
            return trace
        except Exception:
            self._failed()
            return None

    def _make_room(self, trace: _Trace) -> list[_Verdict]:
        """Before a new trace is opened (under the lock): the oldest open trace decided when
        ``max_traces`` are open, and old ones every 32 new traces."""
        traces = self._traces
        out: list[_Verdict | None] = []
        if len(traces) >= self.max_traces:
            oldest = next(iter(traces))
            out.append(self._finish(oldest, traces.pop(oldest), None, "max_traces"))
        self._new_traces += 1
        if self._new_traces >= 32:  # old traces are looked for every 32 new ones
            self._new_traces = 0
            out.extend(self._expire(trace.first_ns - self.max_age_ns))
        return [v for v in out if v is not None]

    def on_end(self, span: ReadableSpan) -> None:
        # One frame per span: the whole body inside the try (free in CPython 3.11+).
        try:
            try:  # a ReadableSpan's fields: no property calls (and no tuple copies) per span
                ctx = span._context
                parent = span._parent
            except AttributeError:
                ctx = span.context
                parent = span.parent
            if ctx is None:
                return
            if _TUPLE_LAYOUT:
                # A SpanContext is (trace_id, span_id, is_remote, flags, state, is_valid).
                tid = ctx[0]
                is_root = parent is None or parent[2]
            else:  # pragma: no cover - a SpanContext of another shape
                tid = ctx.trace_id
                is_root = parent is None or parent.is_remote
            late: str | None = None
            lock = self._lock
            lock.acquire()  # not ``with``: half the cost, once per trace on the span path
            try:
                traces = self._traces
                trace = traces.get(tid)  # an open trace: the common case, one lookup
                if trace is not None:
                    spans = trace.spans
                    assert spans is not None  # an open trace's
                    spans.append(span)
                    if not is_root and len(spans) < self.max_spans:
                        return
                    del traces[tid]
                    verdict = self._finish(
                        tid, trace, span if is_root else None, None if is_root else "max_spans"
                    )
                    if verdict is None:
                        return  # the common end of a trace: nothing to forward
                    out = [verdict]
                else:
                    late = self._decided.get(tid) or self._decided_before.get(tid)
                    if late is not None:
                        out = []
                    else:  # the trace's first span
                        trace = self._new_trace(None)
                        out = self._make_room(trace)
                        trace.spans.append(span)  # type: ignore[union-attr]
                        if is_root:
                            verdict = self._finish(tid, trace, span, None)
                        elif self.max_spans <= 1:
                            verdict = self._finish(tid, trace, None, "max_spans")
                        else:
                            traces[tid] = trace
                            verdict = None
                        if verdict is not None:
                            out.append(verdict)
            finally:
                lock.release()
            if late is not None:
                self._follow(span, late)
            for verdict in out:
                self._emit(verdict)
        except Exception:
            self._failed()

    def _failed(self) -> None:
        # Never into the application: count, log once, and move on.
        self._policy_errors.incr()
        if not self._policy_failed:
            self._policy_failed = True
            log.warning("sfumato: the tail-decision processor raised", exc_info=True)

    def _finish(
        self, tid: int, trace: _Trace, root: ReadableSpan | None, early: str | None
    ) -> _Verdict | None:
        """Decide ``trace`` and count it (under the lock, so the decision is cached before any
        other thread can look: a span of this trace ending right now follows it, never
        re-buffers). None when there is nothing to forward."""
        open_spans = trace.spans
        assert open_spans is not None
        spans = open_spans[:]  # what the decision covers; late appends stay out of it
        trace.spans = None  # the spans and the root point at the trace: no cycle left
        trace.root = None
        trace.closed_at = len(spans)
        sampled, error_ids = _scan(spans)
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
        decision = f"{self.name}:{reason}" if reason is not None else _HEAD
        cache = self._decided
        cache[tid] = decision
        if len(cache) >= self._generation:
            self._decided_before = cache
            self._decided = {}
        n = len(spans)
        self._seen.n += n
        if early is not None:
            self._tally(f"tail.early.{early}").n += 1
        if reason is None:  # the head decision stands: its sampled spans go on
            self._kept_spans.n += sampled
            self._dropped_spans.n += n - sampled
            if not sampled:
                self._traces_dropped.n += 1
                return None
            self._traces_kept_head.n += 1
            return spans, None, _ALL if sampled == n else decision, None
        self._tally(f"tail.traces.kept.{reason}").n += 1
        path: set[int] | None = None
        kept = n
        if self.keep == "error-path" and error_ids:
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

    def remembered(self) -> int:
        """Decided traces in the decision cache."""
        return len(self._decided) + len(self._decided_before)

    def _expire(self, cutoff: int) -> list[_Verdict]:
        out: list[_Verdict] = []
        traces = self._traces
        while traces:
            tid = next(iter(traces))
            trace = traces[tid]
            if trace.first_ns > cutoff:
                break
            del traces[tid]
            verdict = self._finish(tid, trace, None, "max_age")
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
                ctx = getattr(s, "_context", None)
                if type(ctx) is SpanContext and _TUPLE_LAYOUT:
                    sampled = ctx[3] & 1  # the flags, without two property calls
                else:
                    sampled = s.context.trace_flags.sampled  # type: ignore[union-attr]
                if sampled:
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

    def _follow(self, span: ReadableSpan, decision: str) -> None:
        """A span of a trace decided already: it follows the decision."""
        late_error = False
        policy: str | None = None
        if decision != _HEAD and self.keep == "trace":
            copy: ReadableSpan | None = forced_copy(span, decision)
            policy = decision.partition(":")[2]
        elif span.context.trace_flags.sampled:  # type: ignore[union-attr]
            copy = span
        elif self.keep_late_errors and span_has_error(span):
            copy = forced_copy(span, f"{self.name}:late_error")
            late_error = True
            policy = "late_error"
        else:
            copy = None
        with self._lock:
            self._seen.n += 1
            self._late.n += 1
            if copy is None:
                self._dropped_spans.n += 1
            else:
                self._kept_spans.n += 1
                if late_error:
                    self._late_error.n += 1
        if copy is not None:
            self._forward_unit([copy], policy)

    # -- flushing ----------------------------------------------------------------------------

    def open_traces(self) -> int:
        return len(self._traces)

    def decide_all(self, reason: str) -> None:
        """Decide every open trace now (shutdown) as if a bound had been hit."""
        with self._lock:
            pending = [self._finish(tid, t, None, reason) for tid, t in self._traces.items()]
            self._traces.clear()
        for verdict in pending:
            if verdict is not None:
                self._emit(verdict)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        with self._lock:
            expired = self._expire(self._clock() - self.max_age_ns)
        for verdict in expired:
            self._emit(verdict)
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
