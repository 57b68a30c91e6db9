"""error-always: the tail decision, its bounds, late spans, error-path and honest weights."""

from __future__ import annotations

import random

import pytest
import sfumato
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState
from sampling_support import Recorder, assert_binomial, estimate_tolerance, memory_telemetry
from sfumato._stats import Stats
from sfumato.samplers import ADJUSTED_COUNT, POLICY, SAMPLE_RATE
from sfumato.samplers._tail import TailProcessor
from sfumato.samplers.error_always import ErrorAlwaysOptions, ErrorAlwaysSampler
from sfumato.samplers.probability import RatioSampler

_RESOURCE = Resource.get_empty()


def span(
    tid: int,
    sid: int,
    parent: int | None = None,
    *,
    sampled: bool = False,
    error: bool = False,
    exception: bool = False,
    start: int = 0,
    end: int = 1_000,
    remote_parent: bool = False,
) -> ReadableSpan:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else 0)
    ts = TraceState([("ot", "th:8")]) if sampled else None
    ctx = SpanContext(tid, sid, False, flags, ts)
    parent_ctx = SpanContext(tid, parent, remote_parent, flags) if parent is not None else None
    return ReadableSpan(
        name=f"s{sid}",
        resource=_RESOURCE,
        context=ctx,
        parent=parent_ctx,
        attributes={"own": sid},
        events=[Event("exception", {"exception.type": "E"})] if exception else [],
        status=Status(StatusCode.ERROR) if error else Status(StatusCode.UNSET),
        start_time=start,
        end_time=end,
    )


def processor(
    policy_sampler: ErrorAlwaysSampler | None = None, **options: object
) -> tuple[TailProcessor, Recorder, Stats]:
    stats = Stats()
    rec = Recorder()
    # decision_wait_ms 0 unless asked: each span's fate is known as soon as it arrives.
    options = {"decision_wait_ms": 0, **options}
    sampler = policy_sampler or ErrorAlwaysSampler(RatioSampler(0.5), ErrorAlwaysOptions(**options))
    tail = sampler.tail_processor(rec, stats)
    assert isinstance(tail, TailProcessor)
    return tail, rec, stats


def test_a_trace_with_an_error_is_kept_whole_and_marked_sampled_with_weight_one() -> None:
    tail, rec, stats = processor()
    tail.on_end(span(1, 11, 10, error=True))
    tail.on_end(span(1, 12, 10))
    assert rec.spans == []  # buffered until the local root ends
    tail.on_end(span(1, 10))
    assert sorted(s.context.span_id for s in rec.spans) == [10, 11, 12]
    for s in rec.spans:
        assert s.context.trace_flags.sampled
        assert s.context.trace_state.get("ot") == "th:0"
        assert s.attributes[ADJUSTED_COUNT] == 1.0
        assert s.attributes[SAMPLE_RATE] == 1
        assert s.attributes[POLICY] == "error-always:error"
        assert s.attributes["own"] == s.context.span_id
    assert stats.snapshot()["tail.traces.kept.error"] == 1


def test_an_exception_event_counts_as_an_error() -> None:
    tail, rec, _ = processor()
    tail.on_end(span(2, 21, 20, exception=True))
    tail.on_end(span(2, 20))
    assert len(rec.spans) == 2


def test_without_an_error_the_head_decision_stands_and_nothing_sampled_out_is_exported() -> None:
    tail, rec, stats = processor()
    tail.on_end(span(3, 31, 30))
    tail.on_end(span(3, 30))  # RECORD_ONLY root: dropped
    tail.on_end(span(4, 41, 40, sampled=True))
    kept_root = span(4, 40, sampled=True)
    tail.on_end(kept_root)
    assert [s.context.span_id for s in rec.spans] == [41, 40]
    assert rec.spans[1] is kept_root  # forwarded unchanged, with its head weight
    snap = stats.snapshot()
    assert snap["tail.traces.dropped"] == 1
    assert snap["tail.traces.kept.head"] == 1
    assert snap["tail.spans.dropped"] == 2


def test_slow_traces_are_kept() -> None:
    tail, rec, stats = processor(slow_ms=5)
    tail.on_end(span(5, 50, start=0, end=4_000_000))
    tail.on_end(span(6, 60, start=0, end=6_000_000))
    assert [s.context.span_id for s in rec.spans] == [60]
    assert rec.spans[0].attributes[POLICY] == "error-always:slow"
    assert stats.snapshot()["tail.traces.kept.slow"] == 1


def test_error_path_keeps_the_error_span_and_its_ancestors_only() -> None:
    tail, rec, _ = processor(keep="error-path")
    # root 1 -> a 2 -> b 3 (error); root -> c 4; a -> d 5
    for s in (span(7, 3, 2, error=True), span(7, 5, 2), span(7, 2, 1), span(7, 4, 1), span(7, 1)):
        tail.on_end(s)
    assert sorted(s.context.span_id for s in rec.spans) == [1, 2, 3]
    assert all(s.attributes[ADJUSTED_COUNT] == 1.0 for s in rec.spans)


def test_late_spans_follow_the_decision_and_late_errors_are_kept() -> None:
    tail, rec, stats = processor()
    tail.on_end(span(8, 81, 80, error=True))
    tail.on_end(span(8, 80))
    tail.on_end(span(8, 82, 80))  # ends after its root: follows "keep"
    assert rec.spans[-1].context.span_id == 82 and rec.spans[-1].context.trace_flags.sampled
    tail.on_end(span(9, 90))  # dropped trace
    tail.on_end(span(9, 91, 90))  # late, not an error: dropped
    tail.on_end(span(9, 92, 90, error=True))  # late error: kept alone, weight 1
    assert [s.context.span_id for s in rec.spans][-1] == 92
    assert rec.spans[-1].attributes[POLICY] == "error-always:late_error"
    snap = stats.snapshot()
    assert snap["tail.spans.late"] == 3
    assert snap["tail.spans.kept.late_error"] == 1
    assert 91 not in {s.context.span_id for s in rec.spans}


def test_buffer_bounds_hold_with_10k_concurrent_open_traces() -> None:
    tail, rec, stats = processor(max_traces=1000, max_spans_per_trace=8, decision_cache_size=2000)
    for tid in range(1, 10_001):
        tail.on_end(span(tid, 1, 100, error=tid % 100 == 0))
        assert tail.open_traces() <= 1000
    snap = stats.snapshot()
    assert snap["tail.early.max_traces"] == 9000
    assert tail.remembered() <= 2000
    # Evicted early, still decided on what was seen: the errors among them were kept.
    kept_errors = {s.context.trace_id for s in rec.spans}
    assert kept_errors == {tid for tid in range(100, 9_001, 100)}
    # One trace with too many spans is decided early and then streams.
    for i in range(20):
        tail.on_end(span(20_000, 1000 + i, 1, sampled=True))
    assert stats.snapshot()["tail.early.max_spans"] == 1
    assert sum(1 for s in rec.spans if s.context.trace_id == 20_000) == 20


def test_old_traces_are_decided_at_max_age() -> None:
    now = [0]
    stats, rec = Stats(), Recorder()
    tail = TailProcessor(
        rec, stats, lambda t: "error" if t.has_error else None, max_age_ms=10, clock=lambda: now[0]
    )
    tail.on_end(span(1, 2, 1, error=True))
    now[0] = 20_000_000
    assert tail.force_flush()
    assert stats.snapshot()["tail.early.max_age"] == 1
    assert [s.context.span_id for s in rec.spans] == [2]


def test_shutdown_decides_what_is_open() -> None:
    tail, rec, stats = processor()
    tail.on_end(span(1, 2, 1, error=True))
    tail.shutdown()
    assert rec.shut and len(rec.spans) == 1
    assert stats.snapshot()["tail.early.shutdown"] == 1


def test_error_always_must_be_the_root_sampler() -> None:
    with pytest.raises(sfumato.ConfigError, match="root of the sampler tree"):
        sfumato.configure(
            backend="none",
            sampler={"type": "parent_based", "root": {"type": "error-always"}},
            metrics={"enabled": False},
            logs={"enabled": False},
        )


def test_error_always_keeps_every_error_trace_and_about_p_of_the_rest() -> None:
    n, p, error_rate = 4000, 0.2, 0.05
    rng = random.Random(99)
    errors: set[int] = set()
    sampler = {"type": "error-always", "otherwise": {"type": "ratio", "rate": p}}
    with memory_telemetry(sampler) as (t, mem):
        tracer = t.tracer()
        for _ in range(n):
            fail = rng.random() < error_rate
            with (
                tracer.start_as_current_span("root", attributes={"job": "j"}) as root,
                tracer.start_as_current_span("step") as step,
            ):
                if fail:
                    step.set_status(Status(StatusCode.ERROR))
                    errors.add(root.get_span_context().trace_id)
        t.force_flush()  # kept traces wait decision_wait_ms for a late error; a flush ends it
        spans = mem.get_finished_spans()
    roots = [s for s in spans if s.parent is None]
    kept_ids = {s.context.trace_id for s in roots}
    assert errors <= kept_ids
    # Spans recorded RECORD_ONLY and rescued by the tail keep their start attributes.
    assert all(s.attributes["job"] == "j" for s in roots)
    ok_kept = len(kept_ids - errors)
    assert_binomial(ok_kept, n - len(errors), p, "successful traces kept")
    assert len(spans) == 2 * len(roots)
    assert all(s.context.trace_flags.sampled for s in spans)
    estimate = sum(s.attributes[ADJUSTED_COUNT] for s in roots)
    assert abs(estimate - n) <= estimate_tolerance({p: n - len(errors)})


@pytest.mark.parametrize("keep", ["trace", "error-path"])
def test_the_errors_only_shortcut_decides_as_the_policy_does(keep: str) -> None:
    """Without slow_ms, error-always's policy keeps exactly the traces with an error, so
    the tail processor does not call it; replayed through both, the same spans go out and
    the same counts come out, bounds and late spans included."""
    rng = random.Random(5)
    spans: list[ReadableSpan] = []
    for tid in range(1, 400):
        n = rng.randint(1, 12)
        sampled = rng.random() < 0.3
        for sid in range(2, n + 1):  # children first, the root (span id 1) last
            spans.append(span(tid, sid, 1, sampled=sampled, error=rng.random() < 0.02))
        spans.append(span(tid, 1, sampled=sampled, exception=rng.random() < 0.01))
        if rng.random() < 0.05:  # a late span, after its root
            spans.append(span(tid, 99, 1, sampled=sampled, error=rng.random() < 0.5))
    outcomes = []
    for errors_only in (True, False):
        stats, rec = Stats(), Recorder()
        sampler = ErrorAlwaysSampler(RatioSampler(0.5), ErrorAlwaysOptions(keep=keep))
        tail = TailProcessor(
            rec,
            stats,
            sampler.keep_reason,
            keep=keep,  # type: ignore[arg-type]
            max_traces=20,
            max_spans_per_trace=10,
            errors_only=errors_only,
        )
        for s in spans:
            tail.on_end(s)
        tail.shutdown()
        exported = [
            (s.context.trace_id, s.context.span_id, s.attributes.get(POLICY)) for s in rec.spans
        ]
        outcomes.append((exported, stats.snapshot()))
    assert outcomes[0] == outcomes[1]
    exported, snap = outcomes[0]
    assert snap["tail.traces.kept.error"] > 0 and snap["tail.early.max_spans"] > 0
    assert snap["tail.spans.seen"] == len(spans)
    assert snap["tail.spans.kept"] == len(exported)
    assert snap["tail.spans.kept"] + snap["tail.spans.dropped"] == len(spans)


@pytest.mark.parametrize("sampled", [False, True])
def test_two_held_units_of_one_trace_are_each_let_go_and_counted(sampled: bool) -> None:
    """Two local roots of one trace reach on_end (no tracer buffer) and are both held for
    decision_wait_ms: each is let go on its own, its head-kept spans sent, all counted."""
    now = [0]
    stats, rec = Stats(), Recorder()
    tail = TailProcessor(rec, stats, lambda t: None, decision_wait_ms=1000, clock=lambda: now[0])

    def weighted(sid: int, parent: int, remote: bool = False) -> ReadableSpan:
        s = span(5, sid, parent, sampled=sampled, remote_parent=remote)
        return ReadableSpan(
            name=s.name, context=s.context, parent=s.parent, resource=_RESOURCE,
            attributes={ADJUSTED_COUNT: 10.0}, start_time=0, end_time=1,
        )  # fmt: skip

    for s in (weighted(11, 1), weighted(21, 2), weighted(1, 99, True), weighted(2, 98, True)):
        tail.on_end(s)
    now[0] = 10**12
    tail.expire()
    snap = stats.snapshot()
    assert snap["tail.spans.seen"] == 4
    assert snap["tail.spans.kept"] + snap["tail.spans.dropped"] == 4
    if sampled:
        assert sorted(s.context.span_id for s in rec.spans) == [1, 2, 11, 21]
        assert snap["tail.traces.kept.head"] == 2
    else:
        assert rec.spans == [] and snap["tail.traces.dropped"] == 2
