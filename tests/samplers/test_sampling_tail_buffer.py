"""The tail processor's per-trace buffer as sfumato's tracer fills it: a local root opens its
trace as it starts, and its local descendants append themselves to it as they end, with no
call to ``on_end``. It must decide exactly as the ``on_end`` path does, late spans, bounds and
spans ending on other threads included."""

from __future__ import annotations

import contextlib
import random
import sys
import threading
import time
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode
from sampling_support import memory_telemetry
from sfumato.plugins.botticelli import act, llm_call, narrative, parse_json
from sfumato.samplers import POLICY
from sfumato.samplers._tail import TailProcessor

PRODUCTION = {
    "type": "error-always",
    "otherwise": {
        "type": "per-narrative-type",
        "default": 0.5,
        "rates": {"content_generation": 0.2, "curation": 0.25},
    },
    "max_spans_per_trace": 12,
    "max_traces": 50,
    "decision_wait_ms": 50,
}


def _workload(telemetry: Any, rng: random.Random) -> None:
    """Narratives through the helpers and the plain API: errors, a span that outlives its
    root, a deep trace over the per-trace bound, spans ended on another thread."""
    tracer = telemetry.tracer()
    leftovers = []
    for i in range(300):
        kind = rng.choice(["content_generation", "curation", "posting"])
        with narrative(kind, f"n{i}", record_metrics=False):
            for name in ("research", "draft"):
                with act(name, record_metrics=False), llm_call("m") as call:
                    call.record_tokens(10, 5)
                with contextlib.suppress(ValueError):  # a parse error: the span is marked
                    parse_json("{" if rng.random() < 0.03 else "{}", record_metrics=False)
            if rng.random() < 0.1:
                leftovers.append(tracer.start_span("outlives its root"))
            if rng.random() < 0.05:
                for _ in range(15):  # over max_spans_per_trace
                    tracer.start_span("many").end()
            with tracer.start_as_current_span("plain") as span:
                if rng.random() < 0.02:
                    span.set_status(Status(StatusCode.ERROR))
            ended_elsewhere = tracer.start_span("ended on a thread")
            thread = threading.Thread(target=ended_elsewhere.end)
            thread.start()
            thread.join()
    for span in leftovers:
        span.end()


def _run(buffered: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[list[Any], dict[str, int], int]:
    if not buffered:
        monkeypatch.setattr(TailProcessor, "open_trace", lambda self, root, trace_id, span_id: None)
    calls = [0]
    on_end = TailProcessor.on_end

    def counted(self: TailProcessor, span: Any) -> None:
        calls[0] += 1
        on_end(self, span)

    monkeypatch.setattr(TailProcessor, "on_end", counted)
    with memory_telemetry(PRODUCTION, seed=77) as (telemetry, memory):
        _workload(telemetry, random.Random(3))
        time.sleep(0.1)  # past decision_wait_ms: the flush lets go of what units held
        telemetry.force_flush()
        exported = sorted(
            (s.context.trace_id, s.context.span_id, s.name, s.attributes.get(POLICY))
            for s in memory.get_finished_spans()
        )
        stats = {k: v for k, v in telemetry.stats().items() if k.startswith("tail.")}
    monkeypatch.undo()
    return exported, stats, calls[0]


@pytest.mark.fast_path  # the tracer's buffered path is the fast path's
def test_the_buffered_path_decides_as_the_on_end_path(monkeypatch: pytest.MonkeyPatch) -> None:
    exported, stats, buffered_calls = _run(True, monkeypatch)
    assert _run(False, monkeypatch)[:2] == (exported, stats)
    # Through on_end: the roots, the spans over the bound, the late ones; not the rest.
    assert buffered_calls < stats["tail.spans.seen"] / 3
    assert len({(t, s) for t, s, _, _ in exported}) == len(exported)  # each span once
    assert stats["tail.traces.kept.error"] > 0 and stats["tail.spans.late"] > 0
    assert stats["tail.early.max_spans"] > 0
    assert stats["tail.spans.kept"] + stats["tail.spans.dropped"] == stats["tail.spans.seen"]


def _end_after(barrier: threading.Barrier, spans: list[Any]) -> None:
    barrier.wait()
    for span in spans:
        span.end()


def test_children_ending_on_other_threads_as_the_root_ends_are_counted_once() -> None:
    """Children appended while their root is being decided either make the decision or go
    through the late path: every span is seen exactly once, none is exported twice."""
    keep_all = {"type": "error-always", "otherwise": {"type": "always_on"}}
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads switch often: the ends interleave with the root's
    with memory_telemetry(keep_all) as (telemetry, memory):
        tracer = telemetry.tracer()
        total = 0
        for _ in range(200):
            root = tracer.start_span("root")
            context = trace.set_span_in_context(root)
            children = [tracer.start_span("child", context) for _ in range(8)]
            total += 9
            barrier = threading.Barrier(3)

            threads = [
                threading.Thread(target=_end_after, args=(barrier, children[:4])),
                threading.Thread(target=_end_after, args=(barrier, children[4:])),
            ]
            for thread in threads:
                thread.start()
            barrier.wait()
            root.end()
            for thread in threads:
                thread.join()
        sys.setswitchinterval(switch)
        telemetry.force_flush()
        stats = telemetry.stats()
        spans = memory.get_finished_spans()
    assert stats["tail.spans.seen"] == total
    assert len(spans) == total  # always_on: every span exported, and only once
    assert len({s.context.span_id for s in spans}) == total


@pytest.mark.fast_path  # the tracer's buffered path is the fast path's
def test_a_child_appended_as_its_trace_is_decided_knows_whether_the_decision_had_it() -> None:
    """The steps of ``_Span.end`` for a buffered child, with the root's decision between
    reading the trace's span list and appending to it (a thread switch there)."""
    keep_all = {"type": "error-always", "otherwise": {"type": "always_on"}}
    with memory_telemetry(keep_all) as (telemetry, memory):
        tracer = telemetry.tracer()
        for decided_first in (False, True):
            root = tracer.start_span("root")
            child: Any = tracer.start_span("child", trace.set_span_in_context(root))
            buffer = child._buffer
            assert buffer is not None and buffer.root is root
            spans = buffer.spans  # the child read the open list...
            if decided_first:
                root.end()  # ...the root ended and the trace was decided...
            spans.append(child)  # ...then the child appended itself
            if not decided_first:
                root.end()
            assert (buffer.spans is spans) is False  # decided now, either way
            assert buffer.included(child, spans) is (not decided_first)
        telemetry.force_flush()
        names = [s.name for s in memory.get_finished_spans()]
    # The child the decision had went out with its root; the other is the end's to send.
    assert sorted(names) == ["child", "root", "root"]


def test_a_decided_trace_leaves_no_reference_cycle() -> None:
    """Spans point at their open trace, and the trace at its spans and root until it is
    decided: after that the spans go with their last reference, not at the next cyclic
    collection."""
    import gc
    import weakref

    with memory_telemetry(PRODUCTION) as (telemetry, _):
        tracer = telemetry.tracer()
        gc.collect()
        gc.disable()
        try:
            refs = []
            for _ in range(20):
                with narrative("content_generation", record_metrics=False) as run:
                    refs.append(weakref.ref(run.span))
                    with act("draft", record_metrics=False) as step:
                        refs.append(weakref.ref(step.span))
                    plain = tracer.start_span("plain")
                    refs.append(weakref.ref(plain))
                    plain.end()
            del run, step, plain  # the last handles
            time.sleep(0.1)  # past decision_wait_ms: held spans are let go at the flush
            telemetry.force_flush()
            telemetry.exporter("memory", "traces").clear()
            alive = [r for r in refs if r() is not None]
        finally:
            gc.enable()
    assert alive == []
