"""error-always decides per local unit: each entry of a trace into the process (a span with a
remote parent, or a new root) buffers and decides its own subtree.

Through ``configure()`` and the tracer, as a service sees it: fan-out of one trace to two
requests of this service, a self-call, a retry after the decision, late children, across
threads and asyncio tasks. Late errors are counted once, at weight 1.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags
from sampling_support import memory_telemetry
from sfumato.samplers import ADJUSTED_COUNT, POLICY

ERRORS_ONLY = {"type": "error-always"}  # otherwise: always_off


def remote(trace_id: int, sampled: bool = False) -> Any:
    """A context whose current span is a remote parent: an incoming request of ``trace_id``."""
    parent = SpanContext(
        trace_id,
        random.getrandbits(64) or 1,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else 0),
    )
    return trace.set_span_in_context(NonRecordingSpan(parent))


@pytest.fixture
def errors_only() -> Iterator[tuple[Any, Any]]:
    with memory_telemetry(ERRORS_ONLY) as handle:
        yield handle


def names(exported: Any) -> list[str]:
    return sorted(s.name for s in exported.get_finished_spans())


def request(tracer: Any, trace_id: int, path: str, fail: bool = False) -> None:
    """One incoming request of ``trace_id``: a server span, two children, one may fail."""
    with tracer.start_as_current_span(f"GET {path}", context=remote(trace_id)):
        with tracer.start_as_current_span(f"{path} db"):
            pass
        with tracer.start_as_current_span(f"{path} work") as work:
            if fail:
                work.set_status(Status(StatusCode.ERROR))


def test_two_requests_of_one_trace_are_decided_each_on_its_own(errors_only: Any) -> None:
    telemetry, exported = errors_only
    tracer = telemetry.tracer()
    tid = random.getrandbits(128)
    request(tracer, tid, "/a")  # ends first, no error: dropped
    request(tracer, tid, "/b", fail=True)  # same trace, its own unit: kept whole
    telemetry.force_flush(5)
    assert names(exported) == ["/b db", "/b work", "GET /b"]
    for span in exported.get_finished_spans():
        assert span.attributes[ADJUSTED_COUNT] == 1.0
        assert span.attributes[POLICY] == "error-always:error"


def test_two_concurrent_requests_of_one_trace_do_not_share_a_decision(errors_only: Any) -> None:
    telemetry, exported = errors_only
    tracer = telemetry.tracer()
    tid = random.getrandbits(128)
    a_open, b_done = threading.Event(), threading.Event()

    def slow_a() -> None:
        with tracer.start_as_current_span("GET /a", context=remote(tid)):
            with tracer.start_as_current_span("/a db"):
                pass
            a_open.set()
            assert b_done.wait(5)
            with tracer.start_as_current_span("/a work") as work:
                work.set_status(Status(StatusCode.ERROR))

    thread = threading.Thread(target=slow_a)
    thread.start()
    assert a_open.wait(5)
    request(tracer, tid, "/b")  # starts and ends while /a is open: no error, dropped
    b_done.set()
    thread.join(5)
    telemetry.force_flush(5)
    assert names(exported) == ["/a db", "/a work", "GET /a"]


def test_a_self_call_is_a_unit_of_its_own(errors_only: Any) -> None:
    """A request that calls this service again: the inner request has a remote parent (the
    outer's client span, propagated), and an error in it keeps the inner unit whole; the
    outer unit holds no error and is dropped."""
    telemetry, exported = errors_only
    tracer = telemetry.tracer()
    outer = remote(random.getrandbits(128))
    with (
        tracer.start_as_current_span("GET /outer", context=outer),
        tracer.start_as_current_span("call self", kind=trace.SpanKind.CLIENT) as client,
    ):
        ctx = client.get_span_context()
        inner = SpanContext(ctx.trace_id, ctx.span_id, True, ctx.trace_flags)
        with (
            tracer.start_as_current_span(
                "GET /inner", context=trace.set_span_in_context(NonRecordingSpan(inner))
            ),
            tracer.start_as_current_span("inner work") as work,
        ):
            work.set_status(Status(StatusCode.ERROR))
    telemetry.force_flush(5)
    assert names(exported) == ["GET /inner", "inner work"]


def test_a_trace_id_seen_again_after_its_decision_starts_a_new_unit(errors_only: Any) -> None:
    telemetry, exported = errors_only
    tracer = telemetry.tracer()
    tid = random.getrandbits(128)
    request(tracer, tid, "/pay")  # the first attempt, no error
    telemetry.force_flush(5)
    assert names(exported) == []
    request(tracer, tid, "/pay-retry", fail=True)  # a retry of the same trace fails
    telemetry.force_flush(5)
    assert names(exported) == ["/pay-retry db", "/pay-retry work", "GET /pay-retry"]


def test_fan_out_across_asyncio_tasks_keeps_every_failing_unit_whole() -> None:
    """Many requests of a few traces, interleaved as asyncio tasks; a seventh fail."""
    with memory_telemetry(ERRORS_ONLY) as (telemetry, exported):
        tracer = telemetry.tracer()
        traces = [random.getrandbits(128) for _ in range(20)]
        failing: set[str] = set()

        async def handle(i: int) -> None:
            tid = traces[i % len(traces)]
            path = f"/r{i}"
            with tracer.start_as_current_span(f"GET {path}", context=remote(tid)):
                for step in range(3):
                    with tracer.start_as_current_span(f"{path} step{step}") as span:
                        await asyncio.sleep(random.random() / 1000)
                        if i % 7 == 3 and step == 1:
                            span.set_status(Status(StatusCode.ERROR))
                            failing.add(path)

        async def main() -> None:
            await asyncio.gather(*(handle(i) for i in range(400)))

        asyncio.run(main())
        telemetry.force_flush(5)
        got: dict[str, int] = {}
        for span in exported.get_finished_spans():
            path = span.name.split()[-1] if span.name.startswith("GET") else span.name.split()[0]
            got[path] = got.get(path, 0) + 1
    assert set(got) == failing
    assert all(n == 4 for n in got.values()), got


# -- late spans ----------------------------------------------------------------------------


def late_child(tracer: Any, fail: bool, holder: list[Any]) -> None:
    """A request whose child outlives it: the child ends after the request's span."""
    request_span = tracer.start_span("GET /late", context=remote(random.getrandbits(128)))
    token = otel_context.attach(trace.set_span_in_context(request_span))
    try:
        child = tracer.start_span("background")
    finally:
        otel_context.detach(token)
    request_span.end()
    holder.append(child)
    if fail:
        child.set_status(Status(StatusCode.ERROR))
    child.end()


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_late_errors_are_counted_once_at_weight_one(rate: float) -> None:
    """Summing sampling.adjusted_count over exported error spans estimates the number of
    errors: each late error is kept with probability 1 and weighs 1, whatever the head
    decided (weighing a head-kept one 1/p counted it 1/p times over)."""
    sampler = {"type": "error-always", "otherwise": {"type": "ratio", "rate": rate}}
    n = 20_000
    with memory_telemetry(sampler, seed=7) as (telemetry, exported):
        tracer = telemetry.tracer()
        held: list[Any] = []
        for _ in range(n):
            late_child(tracer, True, held)
        telemetry.force_flush(5)
        errors = [
            s for s in exported.get_finished_spans() if s.status.status_code is StatusCode.ERROR
        ]
    assert len(errors) == n
    # Exactly n: every error is kept, and weighs 1 (the estimate has no variance at all).
    assert sum(s.attributes[ADJUSTED_COUNT] for s in errors) == n
    # The requests (each ended before its error) were kept by the head at about p, at 1/p.
    requests = [s for s in exported.get_finished_spans() if s.name == "GET /late"]
    assert (
        abs(sum(s.attributes[ADJUSTED_COUNT] for s in requests) - n)
        < 4 * (n * (1 - rate) / rate) ** 0.5
    )


def job_with_a_worker(tracer: Any) -> tuple[Any, Any, Any]:
    """A request with a child that has ended, and a worker whose child (``failing``) is
    still open: (request, worker, failing)."""
    root = tracer.start_span("GET /job", context=remote(random.getrandbits(128)))
    ctx = trace.set_span_in_context(root)
    tracer.start_span("early", context=ctx).end()
    worker = tracer.start_span("worker", context=ctx)
    failing = tracer.start_span("failing", context=trace.set_span_in_context(worker))
    return root, worker, failing


def test_a_late_error_keeps_what_is_still_buffered_and_the_ancestors_that_end_after_it() -> None:
    sampler = {"type": "error-always", "decision_wait_ms": 5_000}
    with memory_telemetry(sampler) as (telemetry, exported):
        root, worker, failing = job_with_a_worker(telemetry.tracer())
        root.end()  # decided: no error yet, dropped, held for decision_wait_ms
        telemetry.force_flush(5)
        assert names(exported) == []
        failing.set_status(Status(StatusCode.ERROR))
        failing.end()  # a late error within the wait: the unit turns to keep
        worker.end()  # its ancestor, ending after it: kept too
        telemetry.force_flush(5)
        assert names(exported) == ["GET /job", "early", "failing", "worker"]
        for span in exported.get_finished_spans():
            assert span.attributes[ADJUSTED_COUNT] == 1.0
        stats = telemetry.stats()
    assert stats["tail.traces.kept.late_error"] == 1
    assert stats.get("tail.traces.dropped", 0) == 0  # kept, not counted dropped too


def test_after_the_wait_a_late_error_still_keeps_the_ancestors_that_end_after_it() -> None:
    sampler = {"type": "error-always", "decision_wait_ms": 1}
    with memory_telemetry(sampler) as (telemetry, exported):
        root, worker, failing = job_with_a_worker(telemetry.tracer())
        root.end()
        time.sleep(0.05)  # the wait is over: what was held is let go, counted dropped
        telemetry.force_flush(5)
        failing.set_status(Status(StatusCode.ERROR))
        failing.end()
        worker.end()
        telemetry.force_flush(5)
        assert names(exported) == ["failing", "worker"]
        stats = telemetry.stats()
    assert stats["tail.traces.dropped"] == 1
    assert stats["tail.traces.partial.late_error"] == 1


def test_a_kept_unit_waits_for_late_errors_then_goes_on_by_itself() -> None:
    """A unit the head kept at weight 2 waits decision_wait_ms (a late error would keep it
    whole at weight 1), then is sent at its head weight with no flush and no other traffic."""
    sampler = {
        "type": "error-always",
        "otherwise": {"type": "ratio", "rate": 0.5},
        "decision_wait_ms": 500,  # longer than 200 requests take on a loaded host
    }
    with memory_telemetry(sampler, seed=3) as (telemetry, exported):
        tracer = telemetry.tracer()
        for _ in range(200):
            request(tracer, random.getrandbits(128), "/quiet")
        assert exported.get_finished_spans() == ()  # waiting
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # every wait ends by itself: all 200 are decided
            stats = telemetry.stats()
            if stats.get("tail.traces.kept.head", 0) + stats.get("tail.traces.dropped", 0) == 200:
                break
            time.sleep(0.05)
        spans = exported.get_finished_spans()
        stats = telemetry.stats()
    roots = [s for s in spans if s.name == "GET /quiet"]
    assert 60 <= len(roots) <= 140  # about half, binomial(200, 0.5) within 5.6 sd
    assert len(spans) == 3 * len(roots)  # whole
    assert {s.attributes[ADJUSTED_COUNT] for s in spans} == {2.0}
    assert stats["tail.traces.kept.head"] == len(roots)
    assert stats["tail.spans.kept"] + stats["tail.spans.dropped"] == stats["tail.spans.seen"]


def test_error_always_over_parent_based_records_what_the_head_drops() -> None:
    """parent_based under error-always is called directly (its marked form): the children
    it would drop are RECORD_ONLY, so an error keeps the whole unit."""
    sampler = {
        "type": "error-always",
        "otherwise": {"type": "parent_based", "root": {"type": "ratio", "rate": 0.0}},
    }
    with memory_telemetry(sampler) as (telemetry, exported):
        tracer = telemetry.tracer()
        request(tracer, random.getrandbits(128), "/ok")
        request(tracer, random.getrandbits(128), "/fails", fail=True)
        telemetry.force_flush(5)
        assert names(exported) == ["/fails db", "/fails work", "GET /fails"]
