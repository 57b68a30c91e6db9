"""The export queue under overload: whole units, by priority, and a bounded blocking mode.

Items here are ``(trace, n)`` pairs and the queue's ``unit_of`` reads the trace, as the span
queue reads a span's trace id. The exporter holds its first batch until the test lets it go,
so the queue fills exactly as the test says.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence
from typing import Any

import pytest
from sfumato import _export_queue as _batch
from sfumato._export_queue import ExportQueue
from sfumato._stats import Stats

Item = tuple[str, int]


class Gated:
    """Records each batch; every export waits for ``gate``."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.batches: list[list[Item]] = []

    def export(self, batch: Sequence[Item]) -> None:
        self.entered.set()
        self.gate.wait(10)
        self.batches.append(list(batch))

    @property
    def items(self) -> list[Item]:
        return [item for batch in self.batches for item in batch]

    def shutdown(self) -> None:
        self.gate.set()


def unit(trace: str, n: int) -> list[Item]:
    return [(trace, i) for i in range(n)]


def make(
    exporter: Any, *, size: int = 10, batch: int = 5, block_ms: int = 0
) -> tuple[ExportQueue[Item], Stats]:
    stats = Stats()
    queue: ExportQueue[Item] = ExportQueue(
        exporter,
        signal="traces",
        stats=stats,
        batch_size=batch,
        delay_ms=60_000,
        max_queue_size=size,
        name="gated",
        block_ms=block_ms,
        unit_of=lambda item: item[0],
    )
    return queue, stats


def occupy(queue: ExportQueue[Item], exporter: Gated, batch: int = 5) -> None:
    """Put one full batch in flight (held by the gate): the queue is then empty again."""
    queue.put_unit(unit("inflight", batch))
    assert exporter.entered.wait(5)


def balanced(stats: dict[str, int], queue: ExportQueue[Item]) -> None:
    dropped = sum(v for k, v in stats.items() if k.startswith("traces.dropped."))
    assert stats["traces.queued"] == stats["traces.exported"] + dropped + len(queue), stats


def by_trace(items: list[Item]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trace, _ in items:
        counts[trace] = counts.get(trace, 0) + 1
    return counts


def test_a_unit_kept_for_its_error_evicts_units_kept_by_probability_newest_first() -> None:
    exporter = Gated()
    queue, stats = make(exporter)
    occupy(queue, exporter)
    queue.put_unit(unit("p1", 3))
    queue.put_unit(unit("p2", 3))
    queue.put_unit(unit("p3", 3))  # 9 of 10 queued
    queue.put_unit(unit("e1", 4), "error")  # needs 3 more: p3 goes, whole
    queue.put(("p3", 99))  # a late span of the evicted trace follows it out
    snapshot = stats.snapshot()
    assert snapshot["traces.queue_full.probability"] == 4
    assert "traces.queue_full.error" not in snapshot
    exporter.gate.set()
    assert queue.force_flush(5) is False  # something was lost since the last flush
    arrived = by_trace(exporter.items)
    assert arrived == {"inflight": 5, "p1": 3, "p2": 3, "e1": 4}
    # What the tail kept went out first.
    assert exporter.batches[1][:4] == unit("e1", 4)
    snapshot = stats.snapshot()
    assert snapshot["traces.dropped.queue_full"] == 4
    assert snapshot["exporters.gated.traces.queue_full.probability"] == 4
    balanced(snapshot, queue)
    queue.shutdown(1)


def test_probability_never_evicts_what_a_tail_policy_kept() -> None:
    exporter = Gated()
    queue, stats = make(exporter)
    occupy(queue, exporter)
    queue.put_unit(unit("e1", 4), "error")
    queue.put_unit(unit("s1", 4), "slow")
    queue.put_unit(unit("p1", 3))  # 2 places left: dropped whole, not cut to 2
    queue.put(("p2", 0))  # one span fits
    # Room for 2 beside what the tail kept: e2 cannot fit even by evicting p2, so p2 stays
    # and e2 is dropped whole.
    queue.put_unit(unit("e2", 3), "error")
    snapshot = stats.snapshot()
    assert snapshot["traces.queue_full.probability"] == 3
    assert snapshot["traces.queue_full.error"] == 3
    exporter.gate.set()
    queue.force_flush(5)
    assert by_trace(exporter.items) == {"inflight": 5, "e1": 4, "s1": 4, "p2": 1}
    balanced(stats.snapshot(), queue)
    queue.shutdown(1)


def test_a_trace_that_lost_a_span_loses_its_queued_and_later_spans_too() -> None:
    """Spans that arrive one at a time (no tail sampler): a trace that loses one span to a
    full queue is never exported with a hole in it."""
    exporter = Gated()
    queue, stats = make(exporter)
    occupy(queue, exporter)
    for i in range(5):
        queue.put(("a", i))
        queue.put(("b", i))  # 10: full
    queue.put(("a", 5))  # dropped: a is shed
    queue.put(("c", 0))  # still full (a's spans go as the worker reaches them): dropped
    queue.put(("a", 6))  # a later span of a: dropped on arrival
    exporter.gate.set()
    queue.force_flush(5)
    arrived = by_trace(exporter.items)
    assert arrived == {"inflight": 5, "b": 5}
    snapshot = stats.snapshot()
    assert snapshot["traces.dropped.queue_full"] == snapshot["traces.queue_full.probability"]
    balanced(snapshot, queue)
    queue.shutdown(1)


def test_shed_traces_are_forgotten_and_the_fast_path_comes_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_batch, "SHED_ROTATE_S", 0.05)
    exporter = Gated()
    exporter.gate.set()
    queue, stats = make(exporter, size=5, batch=5)
    queue.put_unit(unit("big", 6))  # larger than the queue: dropped whole, big is shed
    queue.put(("big", 7))
    assert stats.snapshot()["traces.dropped.queue_full"] == 7
    assert queue._limit == 0  # every put checks its trace while one is shed
    deadline = time.monotonic() + 5
    while queue._limit == 0 and time.monotonic() < deadline:
        queue.force_flush(1)  # each worker round ages the shed traces
        time.sleep(0.06)
    assert queue._limit == 5
    queue.put(("big", 8))
    assert queue.force_flush(5)
    assert exporter.items == [("big", 8)]
    queue.shutdown(1)


def test_blocking_mode_waits_for_room_instead_of_dropping() -> None:
    exporter = Gated()
    queue, stats = make(exporter, block_ms=5_000)
    occupy(queue, exporter)
    for i in range(10):
        queue.put(("t", i))  # full
    done = threading.Event()

    def late() -> None:
        queue.put_unit(unit("waits", 3))
        done.set()

    waiter = threading.Thread(target=late)
    waiter.start()
    assert not done.wait(0.2)  # waiting for room
    exporter.gate.set()  # the worker takes the next batch: room
    assert done.wait(5)
    waiter.join()
    assert queue.force_flush(5)
    assert by_trace(exporter.items)["waits"] == 3
    assert stats.snapshot()["traces.dropped.queue_full"] == 0
    queue.shutdown(1)


def test_blocking_mode_is_bounded_and_then_drops() -> None:
    exporter = Gated()
    queue, stats = make(exporter, block_ms=200)
    occupy(queue, exporter)
    for i in range(10):
        queue.put(("t", i))
    start = time.monotonic()
    queue.put(("u", 0))
    waited = time.monotonic() - start
    assert 0.15 <= waited < 2, waited
    assert stats.snapshot()["traces.dropped.queue_full"] == 1
    exporter.gate.set()
    queue.shutdown(2)


def test_blocking_mode_never_blocks_an_export_worker() -> None:
    """An exporter that logs, and so queues a record on a full queue, from its worker."""
    exporter = Gated()
    queue, _ = make(exporter, block_ms=5_000)
    took: list[float] = []

    class Logs:
        def export(self, batch: Sequence[Item]) -> None:
            start = time.monotonic()
            queue.put(("from-worker", 0))
            took.append(time.monotonic() - start)

    occupy(queue, exporter)
    for i in range(10):
        queue.put(("t", i))
    other, _ = make(Logs(), size=5, batch=1)
    other.put(("go", 0))
    assert other.force_flush(5)
    assert took and took[0] < 1
    exporter.gate.set()
    queue.shutdown(2)
    other.shutdown(1)


def test_shutdown_releases_a_caller_waiting_for_room() -> None:
    exporter = Gated()
    queue, stats = make(exporter, block_ms=10_000)
    occupy(queue, exporter)
    for i in range(10):
        queue.put(("t", i))
    done = threading.Event()
    threading.Thread(target=lambda: (queue.put(("w", 0)), done.set())).start()
    assert not done.wait(0.2)
    closer = threading.Thread(target=queue.shutdown, args=(0.5,))
    closer.start()
    assert done.wait(3)
    exporter.gate.set()
    closer.join(5)
    balanced(stats.snapshot(), queue)


# -- races, each made deterministic by running the other side from inside the window ---------


def test_an_item_put_as_shutdown_closes_the_queue_is_counted_not_stranded() -> None:
    """put() checked _closed, then shutdown ran to completion, then put appended."""
    stats = Stats()
    queue: ExportQueue[Item] = ExportQueue(
        Gated(), signal="traces", stats=stats, batch_size=100, delay_ms=50, max_queue_size=100
    )
    queue.exporter.gate.set()  # type: ignore[attr-defined]
    armed = [True]

    class Window(deque):  # type: ignore[type-arg]
        def __len__(self) -> int:
            if armed[0]:  # put's length check: the window between _closed and append
                armed[0] = False
                queue.shutdown(1)
            return super().__len__()

    queue._queue = Window()
    queue.put(("late", 0))
    snapshot = stats.snapshot()
    assert len(queue) == 0
    assert snapshot["traces.dropped.shutdown"] == 1
    balanced(snapshot, queue)


def test_an_item_another_thread_puts_during_an_eviction_is_not_evicted_silently() -> None:
    queue: ExportQueue[Item]
    inject = [False]

    def unit_of(item: Item) -> str:
        if inject[0] and item == ("A", 1):  # between the eviction's pop and its check
            inject[0] = False
            queue.put(("B", 1))  # "another thread"
        return item[0]

    exporter = Gated()
    stats = Stats()
    queue = ExportQueue(
        exporter,
        signal="traces",
        stats=stats,
        batch_size=10**6,
        delay_ms=10**6,
        max_queue_size=4,
        unit_of=unit_of,
    )
    for item in [("B", 0), ("A", 0), ("A", 1), ("A", 2)]:
        queue.put(item)
    inject[0] = True
    queue.put_unit([("E", 0)], "error")  # evicts trace A
    exporter.gate.set()
    queue.force_flush(2)
    arrived = by_trace(exporter.items)
    assert arrived == {"E": 1, "B": 2}  # B whole, A gone whole
    balanced(stats.snapshot(), queue)
    queue.shutdown(1)


def test_halving_stops_once_shutdown_gave_up_on_the_batch() -> None:
    calls: list[tuple[int, bool]] = []
    stopped = threading.Event()

    class Halved:
        def export(self, batch: Sequence[Item]) -> None:
            calls.append((len(batch), stopped.is_set()))
            if len(batch) == 4:
                raise ValueError("cannot encode")
            if len(calls) == 2:
                time.sleep(0.6)  # the first half is slow: shutdown gives up meanwhile

        def shutdown(self) -> None:
            stopped.set()

    stats = Stats()
    queue: ExportQueue[Item] = ExportQueue(
        Halved(), signal="traces", stats=stats, batch_size=4, delay_ms=10, max_queue_size=100
    )
    for i in range(4):
        queue.put(("t", i))
    time.sleep(0.1)
    assert queue.shutdown(0.2) is False
    time.sleep(1.0)
    assert not any(after for _, after in calls), calls  # nothing sent after it gave up
    assert stats.snapshot()["traces.dropped.shutdown"] == 4


def test_the_set_of_shed_traces_is_bounded_while_the_worker_is_stuck() -> None:
    exporter = Gated()
    queue, _ = make(exporter, size=10, batch=5)
    occupy(queue, exporter)
    for i in range(10):
        queue.put((f"fill{i}", 0))
    for i in range(100_000):  # every one a new trace, every one finds the queue full
        queue.put((f"t{i}", 0))
    assert len(queue._shed) + len(queue._shed_old) <= 2 * queue._shed_cap
    exporter.gate.set()
    queue.shutdown(2)
