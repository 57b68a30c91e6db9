"""A bounded export queue with its export workers, shared by spans and log records.

The caller's thread does as little as possible: a length check, one ``deque.append`` and, when
a batch is full, one ``Event.set``. Everything else (batching, export, retries, accounting)
happens on the workers. Drops are counted by reason, never logged per item, and ``shutdown``
returns within its deadline whatever the exporter does.

``workers`` export threads take batches from the one queue, so that many export calls are in
flight at once: while one batch waits for the backend's answer the next is encoded and sent
(one synchronous worker is bound by the round trip, not by its CPU). A flush returns once
every batch taken before it has been answered, and shutdown counts every batch still in
flight. Only exporters that may be called from several threads at once get more than one.

A batch whose export fails is not dropped at once: the worker keeps it and tries again with
a growing back-off (0.5 s doubling to 5 s) for up to ``retry_s``, so what was queued during a
short outage is delivered when the backend is back. Meanwhile newer items wait in the queue
(or go out through another worker), and beyond ``max_queue_size`` they are dropped as
``queue_full``: memory stays bounded by ``max_queue_size + workers * batch_size`` items. A
batch still failing after ``retry_s`` (a long outage) is counted as ``export_failed`` and the
next one is tried.

Under overload the queue drops whole units, by priority. A span queue knows each span's
trace (``unit_of``); a tail sampler hands it whole local traces (``put_unit``), with the
policy that kept them. A unit kept by a tail policy (an error, a slow trace) evicts units
kept by probability, newest first, never the reverse; a unit that does not fit is dropped
whole. A trace that lost spans to a full queue is *shed*: its spans still queued are dropped
when the worker reaches them and those that arrive later are dropped on arrival, so no trace
is exported with a hole in it (spans sent before the overload began are not recalled). Drops
are counted under ``dropped.queue_full`` and, by the policy that had kept them, under
``queue_full.<policy>`` (``probability``, ``error``, ``slow``, ...). With ``block_s`` the
caller waits up to that long for room before anything is dropped (never a worker thread).

Only OTLP's retryable statuses are retried: an exporter with ``sfumato_failure()`` (the
OTLP plugins) tells the status of its last failure, and a permanent one (a 400, a 401, ...)
makes the batch's failure final at once, counted under ``export_failed.<status>`` and
explained once. A 404/405/UNIMPLEMENTED means the backend takes no such signal: nothing more
is sent through this exporter, and what it queues is dropped as ``refused``.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

from opentelemetry.context import attach, detach

from ._otel import suppressed_context
from ._stats import Counter, Stats

__all__ = ["ExportQueue"]

log = logging.getLogger("sfumato")
T = TypeVar("T")

# Back-off between attempts at a failed batch (seconds), before a +-20% jitter.
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 5.0


# OTLP's retryable responses: HTTP 429/502/503/504, and the gRPC codes the OTLP spec and
# the SDK retry. Any other status is the backend refusing the data: retrying cannot help.
RETRYABLE = frozenset(
    {
        "429",
        "502",
        "503",
        "504",
        "CANCELLED",
        "DEADLINE_EXCEEDED",
        "RESOURCE_EXHAUSTED",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNAVAILABLE",
        "DATA_LOSS",
    }
)
# The backend takes no such signal at all: stop sending it until restart.
SIGNAL_REFUSED = frozenset({"404", "405", "UNIMPLEMENTED"})

# The policy of what is kept by probability (a head sampler), as queue_full.<policy> says.
PROBABILITY = "probability"
# A shed trace is remembered for one to two of these (seconds): long enough for the spans
# of a trace that lost some to a full queue to end, and be dropped too.
SHED_ROTATE_S = 60.0
# Halvings of one batch whose export raised, in search of what raised.
SPLIT_BUDGET = 32
# Threads that must never wait for room in a queue: the export workers themselves.
_WORKERS: set[int] = set()


def advice(signal: str, status: str, stops: bool = True) -> str:
    """What to change, for a permanent status (``stops``: the exporter sends no more of the
    signal after a 404/405/UNIMPLEMENTED, and the advice says so)."""
    if status in SIGNAL_REFUSED:
        until = f". No more {signal} are sent to it until restart" if stops else ""
        if signal == "traces":
            return (
                "this backend takes no traces there; check otlp_endpoint (and protocol), or "
                f"send traces elsewhere{until}"
            )
        return (
            f"this backend takes no {signal}; set [telemetry.{signal}] enabled = false, or "
            f"check otlp_endpoint{until}"
        )
    if status in ("401", "403", "UNAUTHENTICATED", "PERMISSION_DENIED"):
        return "the backend refused the credentials; check [telemetry] headers (the API key)"
    if status in ("413",):
        return "the request is too large for this backend; lower batch_size"
    if status in ("400", "422", "INVALID_ARGUMENT"):
        return "the backend refused the data as invalid; check the protocol and the endpoint"
    return "the backend refused the data; retrying cannot help"


def _succeeded(result: Any) -> bool:
    # SpanExportResult / LogRecordExportResult: SUCCESS is the first member, value 0.
    return result is None or getattr(result, "value", result) == 0 or result is True


class _Losses:
    """An export queue's worker-side bookkeeping of what it lost (under its ``_account``)."""

    __slots__ = ("by_reason", "explained", "failure_logged", "n", "reported", "stats", "text")

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.n = 0  # items this queue was handed and dropped
        self.by_reason: dict[str, int] = {}  # the same, by reason (dropped.<reason>)
        # ``by_reason`` when force_flush last returned: a flush or shutdown is False when
        # anything was lost since.
        self.reported: dict[str, int] = {}
        self.text = ""  # what was lost since the last flush, and how: for the handle's warning
        self.explained: set[str] = set()  # permanent statuses already explained
        self.failure_logged = False

    def lose(self, reason: str, n: int) -> None:
        self.n += n
        self.by_reason[reason] = self.by_reason.get(reason, 0) + n

    def since_reported(self) -> dict[str, int]:
        """What was lost since the last ``reported``, by reason."""
        before = self.reported
        return {r: n - before.get(r, 0) for r, n in self.by_reason.items() if n > before.get(r, 0)}


class ExportQueue(Generic[T]):
    """Bounded queue + worker that calls ``exporter.export(batch)``.

    Counters (under ``exporters.<name>.{signal}.``, each summed into the total under
    ``{signal}.``): ``queued`` (every item handed to the queue), ``exported``,
    ``dropped.queue_full`` (and ``queue_full.<policy>``), ``dropped.shutdown``,
    ``dropped.export_failed`` (and ``export_failed.<status>``), ``dropped.refused``,
    ``refused`` and ``export.retries`` (attempts made at a batch that had failed before). At
    any moment ``queued`` = ``exported`` + the dropped counters + ``len(queue)`` (which
    includes the batch being exported or retried), read under ``_account``.
    """

    def __init__(
        self,
        exporter: Any,
        *,
        signal: str,
        stats: Stats,
        batch_size: int,
        delay_ms: int,
        max_queue_size: int,
        name: str = "",
        retry_ms: int = 0,
        block_ms: int = 0,
        unit_of: Callable[[T], Hashable] | None = None,
        workers: int = 1,
        prepare: Callable[[list[T]], list[T]] | None = None,
    ) -> None:
        self.exporter = exporter
        # Run on each batch by the worker that takes it, before its first export (the
        # scrubber): the items' work off the caller's thread.
        self.prepare = prepare
        self.workers = max(1, workers)
        self.signal = signal
        self.batch_size = batch_size
        self.delay = delay_ms / 1000
        self.max_queue_size = max_queue_size
        self.retry_s = retry_ms / 1000
        self.name = name or type(exporter).__name__
        self.block_s = block_ms / 1000
        self._unit_of = unit_of
        # Two deques: what a tail policy kept (``_urgent``) goes out first and is never
        # evicted for what probability kept (``_queue``). ``put`` compares the length of
        # ``_queue`` with ``_limit`` alone: the room ``_urgent`` leaves, or 0 while traces
        # are shed, which sends every put down the slow path that checks its trace.
        self._queue: deque[T] = deque()
        self._urgent: deque[T] = deque()
        self._limit = max_queue_size
        self._shed: set[Hashable] = set()
        self._shed_old: set[Hashable] = set()
        self._shed_at = time.monotonic()
        self._shed_cap = max(4 * max_queue_size, 10_000)
        self._room = threading.Condition(threading.Lock())  # callers waiting for room
        self._waiting = 0
        self._wake = threading.Event()
        self._stop = threading.Event()  # set by shutdown: cuts a retry back-off short
        self._flushed = threading.Condition()
        self._flush_requests = 0
        self._flush_done = 0
        # Batches taken, and the numbers of those still in flight (with several workers, a
        # flush waits for those taken before it, not for later ones).
        self._taken = 0
        self._open: set[int] = set()
        self._answered = threading.Condition()  # a batch's export ended (workers > 1)
        self._closed = False
        # The batches inside exporter.export(): counted as dropped.shutdown if shutdown gives
        # up on them, and then not counted again when (if ever) the exports return.
        self._inflight = 0
        self._abandoned = False
        self._exporter_stopped = False  # shutdown called exporter.shutdown() mid-export
        # Worker-side bookkeeping in one object: the caller's thread reads attributes of this
        # queue on every put, and fewer of them keeps the instance's dict a compact one.
        self._losses = _Losses(stats)
        self._account = threading.Lock()
        # Each counter is this exporter's (``exporters.otlp-grpc.traces.exported``) and is
        # summed into the total (``traces.exported``) when read.
        self._queued = stats.part(f"{signal}.queued", self.name)
        self._exported = stats.part(f"{signal}.exported", self.name)
        self._dropped_full = stats.part(f"{signal}.dropped.queue_full", self.name)
        self._dropped_shutdown = stats.part(f"{signal}.dropped.shutdown", self.name)
        self._failed = stats.part(f"{signal}.dropped.export_failed", self.name)
        self._dropped_refused = stats.part(f"{signal}.dropped.refused", self.name)
        self._retries = stats.part(f"{signal}.export.retries", self.name)
        self._by_policy: dict[str, Counter] = {}
        # ``sfumato_partial()``: how many items of its last successful export the exporter
        # dropped itself, and why (a reason of dropped.<reason>), or None.
        self._partial: Callable[[], tuple[int, str] | None] | None = getattr(
            exporter, "sfumato_partial", None
        )
        # Set once the backend refused the whole signal (404/405/UNIMPLEMENTED): what is
        # queued after that is dropped as ``refused`` without being sent.
        self.refused: str | None = None
        self._pid = os.getpid()
        self._start_worker()
        if hasattr(os, "register_at_fork"):
            ref = weakref.WeakMethod(self._after_fork)

            def after_in_child() -> None:
                method = ref()
                if method is not None:
                    method()

            os.register_at_fork(after_in_child=after_in_child)

    def _start_worker(self) -> None:
        name = f"sfumato-export-{self.signal}-{self.name}"
        self._threads = [
            threading.Thread(
                target=self._run,
                args=(i == 0,),
                name=name if i == 0 else f"{name}-{i + 1}",
                daemon=True,
            )
            for i in range(self.workers)
        ]
        for thread in self._threads:
            thread.start()

    def _alive(self) -> list[threading.Thread]:
        return [t for t in self._threads if t.is_alive()]

    def _join(self, deadline: float) -> None:
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _after_fork(self) -> None:
        if self._pid == os.getpid():
            return  # made in this process (by another at-fork hook): nothing inherited
        # The parent's queue is the parent's to send: a child starts empty, with its own thread.
        self._queue.clear()
        self._urgent.clear()
        self._shed.clear()
        self._shed_old.clear()
        self._limit = self.max_queue_size
        self._inflight = 0
        self._account = threading.Lock()
        self._room = threading.Condition(threading.Lock())
        self._waiting = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flushed = threading.Condition()
        self._flush_requests = self._flush_done = 0
        self._answered = threading.Condition()
        self._open = set()
        self._pid = os.getpid()
        if not self._closed:
            self._start_worker()

    @property
    def loss(self) -> str:
        """What was lost between the last flush and shutdown, how and where ("" when
        nothing)."""
        return self._losses.text

    # -- caller's thread ---------------------------------------------------------------------

    def put(self, item: T) -> None:
        """Queue one item kept by probability; never raises, never blocks unless ``block_s``
        is set and the queue is full."""
        self._queued.incr()
        if self._closed:
            self._closed_drop(1)
            return
        queue = self._queue
        if len(queue) >= self._limit:
            self._put_slow(item)
            return
        queue.append(item)
        if self._closed:  # shutdown may have come between the check and the append
            self._strand_check()
        elif len(queue) >= self.batch_size and not self._wake.is_set():
            # Event.set takes a lock and notifies: once per batch, not for every item that
            # arrives before the worker gets to run.
            self._wake.set()

    def put_unit(self, items: Sequence[T], policy: str | None = None) -> None:
        """Queue a whole unit (the kept spans of one local trace) or none of it.

        ``policy``: the tail policy that kept it ("error", "slow", ...), which lets it evict
        units kept by probability when the queue is full; None when probability kept it.
        """
        n = len(items)
        if not n:
            return
        self._queued.add(n)
        if self._closed:
            self._closed_drop(n)
            return
        if policy is None:
            if self._limit == 0 and self._is_shed(self._unit(items)):
                self._drop_full(n, PROBABILITY)
            elif self._fits(n) or self._wait_for_room(n):
                self._queue.extend(items)
                self._placed()
            else:
                self._drop_full(n, PROBABILITY, self._unit(items))
            return
        if not self._fits(n):
            self._wait_for_room(n)
        with self._account:
            placed = self._evict_for(n)
            if placed:
                self._urgent.extend(items)
                self._relimit()
        if placed:
            self._placed()
        else:
            self._drop_full(n, policy, self._unit(items))

    def _placed(self) -> None:
        """After an item went in off the fast path: wake the worker for a full batch, or
        count it as dropped when shutdown came meanwhile."""
        if self._closed:
            self._strand_check()
        else:
            self._woken()

    def _closed_drop(self, n: int) -> None:
        with self._account:
            self._dropped_shutdown.add(n)
            self._losses.lose("shutdown", n)

    def _strand_check(self) -> None:
        """An item was appended as shutdown closed the queue: once the worker is gone,
        nothing will send it, so it is counted as dropped.shutdown (never left stranded)."""
        others = [t for t in self._alive() if t is not threading.current_thread()]
        if others:
            for worker in others:
                worker.join(0.05)
            if self._alive():
                return  # a worker drains it before it exits
        with self._account:
            left = len(self._queue) + len(self._urgent)
            if not left:
                return
            self._queue.clear()
            self._urgent.clear()
            self._dropped_shutdown.add(left)
            self._losses.lose("shutdown", left)

    def _unit(self, items: Sequence[T]) -> Hashable | None:
        return self._unit_of(items[0]) if self._unit_of is not None else None

    def _put_slow(self, item: T) -> None:
        """``put`` when the queue looked full, or while traces are shed."""
        unit = self._unit_of(item) if self._unit_of is not None else None
        if self._is_shed(unit):
            self._drop_full(1, PROBABILITY)
        elif self._fits(1) or self._wait_for_room(1):
            self._queue.append(item)
            self._placed()
        else:
            self._drop_full(1, PROBABILITY, unit)

    def _fits(self, n: int) -> bool:
        return len(self._queue) + len(self._urgent) + n <= self.max_queue_size

    def _woken(self) -> None:
        if len(self._queue) + len(self._urgent) >= self.batch_size and not self._wake.is_set():
            self._wake.set()

    def _is_shed(self, unit: Hashable | None) -> bool:
        return unit is not None and (unit in self._shed or unit in self._shed_old)

    def _relimit(self) -> None:
        """``put``'s fast-path bound (under ``_account``)."""
        shedding = bool(self._shed or self._shed_old)
        self._limit = 0 if shedding else self.max_queue_size - len(self._urgent)

    def _drop_full(self, n: int, policy: str, shed: Hashable | None = None) -> None:
        """Count ``n`` items dropped for a full queue; ``shed``: their trace loses the rest.
        (Items a caller waited with until shutdown closed the queue count as shutdown's.)"""
        if self._closed:
            self._closed_drop(n)
            return
        with self._account:
            self._count_full(n, policy)
            if shed is not None:
                self._shed_unit(shed)

    def _shed_unit(self, unit: Hashable) -> None:
        """Remember a trace that lost spans (under ``_account``), within a bound: a stalled
        worker ages nothing, so a full set makes room by forgetting the older half."""
        if len(self._shed) >= self._shed_cap:
            self._shed_old, self._shed = self._shed, set()
            self._shed_at = time.monotonic()
        self._shed.add(unit)
        self._limit = 0

    def _count_full(self, n: int, policy: str) -> None:
        # Under ``_account``.
        self._dropped_full.add(n)
        counter = self._by_policy.get(policy)
        if counter is None:
            counter = self._by_policy[policy] = self._losses.stats.part(
                f"{self.signal}.queue_full.{policy}", self.name
            )
        counter.add(n)
        self._losses.lose("queue_full", n)

    def _evict_for(self, n: int) -> bool:
        """Make room for ``n`` items kept by a tail policy by evicting units kept by
        probability, newest first (under ``_account``); whether they fit now. Nothing is
        evicted for a unit that could not fit even then."""
        if n > self.max_queue_size - len(self._urgent):
            return False
        queue = self._queue
        unit_of = self._unit_of
        evicted = 0
        while not self._fits(n) and queue:
            item = queue.pop()
            evicted += 1
            if unit_of is None:
                continue
            unit = unit_of(item)
            self._shed_unit(unit)
            # The rest of a unit queued in one piece goes with it. put() appends without
            # the lock, so what is popped is checked after the pop: another trace's item
            # goes back (or, when more room is needed, is evicted and its trace shed too).
            while queue:
                item = queue.pop()
                other = unit_of(item)
                if other != unit and self._fits(n):
                    queue.append(item)
                    break
                evicted += 1
                if other != unit:
                    unit = other
                    self._shed_unit(unit)
        if evicted:
            self._count_full(evicted, PROBABILITY)
            self._relimit()
        return self._fits(n)

    def _wait_for_room(self, n: int) -> bool:
        """Wait up to ``block_s`` for room for ``n`` items; False at once when not blocking,
        on a worker thread, or once shutdown began."""
        if not self.block_s or threading.get_ident() in _WORKERS:
            return False
        deadline = time.monotonic() + self.block_s
        self._wake.set()  # the worker may be waiting out the batch delay
        with self._room:
            self._waiting += 1
            try:
                while not self._fits(n):
                    left = deadline - time.monotonic()
                    if left <= 0 or self._closed:
                        return False
                    self._room.wait(left)
                return True
            finally:
                self._waiting -= 1

    def _made_room(self) -> None:
        if self._waiting:
            with self._room:
                self._room.notify_all()

    def _age_shed(self) -> None:
        """Forget traces shed over ``SHED_ROTATE_S`` to ``2 * SHED_ROTATE_S`` ago."""
        now = time.monotonic()
        if now - self._shed_at < SHED_ROTATE_S:
            return
        with self._account:
            self._shed_old, self._shed = self._shed, set()
            self._shed_at = now
            self._relimit()

    def __len__(self) -> int:
        """Items waiting, plus the batch being exported or retried."""
        return len(self._queue) + len(self._urgent) + self._inflight

    # -- worker ------------------------------------------------------------------------------

    def _run(self, first: bool) -> None:
        token = attach(suppressed_context())
        _WORKERS.add(threading.get_ident())
        try:
            while True:
                # Woken early means a batch filled up: send full batches only. A timeout
                # means the delay passed: the first worker sends everything, partial batch
                # included (the others send full batches only).
                woken = self._wake.wait(self.delay)
                self._wake.clear()
                with self._flushed:
                    flush_to = self._flush_requests
                flushing = flush_to != self._flush_done
                if first and (self._shed or self._shed_old):
                    self._age_shed()
                self._drain(everything=(first and not woken) or flushing)
                if flush_to != self._flush_done:
                    self._settle(self._taken)
                    with self._flushed:
                        self._flush_done = max(self._flush_done, flush_to)
                        self._flushed.notify_all()
                if self._closed:
                    # Shutdown may have begun while a batch was being exported: what arrived
                    # behind that batch is sent now, not left for shutdown to drop.
                    self._drain(everything=True)
                    return
        finally:
            _WORKERS.discard(threading.get_ident())
            detach(token)

    def _drain(self, everything: bool) -> None:
        queue, urgent = self._queue, self._urgent
        while (queue or urgent) and not self._abandoned:
            if self._exporter_stopped or self.refused is not None:
                # Shutdown has stopped the exporter, or the backend refused the signal:
                # nothing more can be sent.
                with self._account:
                    left = len(queue) + len(urgent)
                    queue.clear()
                    urgent.clear()
                    self._relimit()
                    if self._exporter_stopped:
                        self._dropped_shutdown.add(left)
                        self._losses.lose("shutdown", left)
                    else:
                        self._dropped_refused.add(left)
                        self._losses.lose("refused", left)
                self._made_room()
                return
            # ``_closed`` is read here, not once before the loop: shutdown may start during
            # an export, and the partial batch behind it must then go too.
            if len(queue) + len(urgent) < self.batch_size and not (everything or self._closed):
                return
            with self._account:
                # Another worker may have taken the full batch first: no partial one after it.
                short = len(queue) + len(urgent) < self.batch_size
                if self.workers > 1 and short and not (everything or self._closed):
                    return
                batch = self._take()
                self._taken += 1
                ticket = self._taken
                self._open.add(ticket)
            self._made_room()
            try:
                if batch and self.prepare is not None:
                    batch = self._prepared(batch)
                if batch:
                    self._export(batch)
            finally:
                with self._account:
                    self._open.discard(ticket)
                if self.workers > 1:
                    with self._answered:
                        self._answered.notify_all()

    def _prepared(self, batch: list[T]) -> list[T]:
        """``prepare(batch)``; should it raise, the batch is not sent (it may hold what
        ``prepare`` was to take out) and is counted as ``export_failed.prepare``."""
        try:
            return self.prepare(batch)  # type: ignore[misc]
        except Exception:
            log.error("sfumato: preparing a %s batch for export raised", self.signal, exc_info=True)
            n = len(batch)
            with self._account:
                self._inflight = max(0, self._inflight - n)
                self._failed.add(n)
                self._losses.stats.part(f"{self.signal}.export_failed.prepare", self.name).add(n)
                self._losses.lose("export_failed", n)
            return []

    def _settle(self, upto: int) -> None:
        """Wait until every batch taken up to number ``upto`` has been answered (those
        other workers took before a flush)."""
        if self.workers == 1:
            return
        with self._answered:
            while not (self._abandoned or self._closed):
                with self._account:  # other workers add to and take from the set meanwhile
                    oldest = min(self._open, default=upto + 1)
                if oldest > upto:
                    return
                self._answered.wait(0.1)

    def _take(self) -> list[T]:
        """The next batch (under ``_account``): what a tail policy kept first; the spans of
        shed traces are dropped on the way."""
        size = self.batch_size
        batch: list[T] = []
        urgent, queue = self._urgent, self._queue
        while urgent and len(batch) < size:
            batch.append(urgent.popleft())
        unit_of = self._unit_of
        if unit_of is not None and (self._shed or self._shed_old):
            shed, shed_old = self._shed, self._shed_old
            purged = 0
            while queue and len(batch) < size:
                item = queue.popleft()
                unit = unit_of(item)
                if unit in shed or unit in shed_old:
                    purged += 1
                else:
                    batch.append(item)
            if purged:
                self._count_full(purged, PROBABILITY)
        else:
            while queue and len(batch) < size:
                batch.append(queue.popleft())
        self._inflight += len(batch)
        self._relimit()
        return batch

    def _export(self, batch: Sequence[T], splits: list[int] | None = None) -> None:
        """Export ``batch``; retry a retryable failure with back-off within ``retry_s`` of the
        first; a permanent one (the backend refused the data) is final at once. A batch
        whose export raises is halved until what raises is found: only that is lost."""
        first_failure: float | None = None
        delay = RETRY_FIRST_S
        while True:
            if self._abandoned:  # shutdown gave up on the batch and counted it already
                return
            try:
                result = self.exporter.export(batch)
            except Exception as exc:
                result = exc
            raised = isinstance(result, Exception)
            if raised and len(batch) > 1 and not self._closed:
                # Most often one item the exporter cannot encode. At most SPLIT_BUDGET
                # halvings per batch: an exporter that raises on everything loses its
                # batches whole, not after 2n calls each.
                if splits is None:
                    splits = [SPLIT_BUDGET]
                if splits[0] > 0:
                    splits[0] -= 1
                    middle = len(batch) // 2
                    self._export(batch[:middle], splits)
                    self._export(batch[middle:], splits)
                    return
            ok = not raised and _succeeded(result)
            status: str | None
            retry_after: float | None
            url: str | None = None
            if raised:
                # export() raising is not the network failing (exporters report that as a
                # result): the batch cannot be sent (one item it cannot encode, a bug), and
                # trying again would only hold up everything queued behind it.
                status, retry_after = "error", None
            else:
                status, retry_after, url = (None, None, None) if ok else self._failure()
            permanent = status is not None and status not in RETRYABLE
            now = time.monotonic()
            wait = delay * random.uniform(0.8, 1.2)
            if retry_after is not None:
                wait = max(wait, retry_after)
            if first_failure is None:
                first_failure = now
            with self._account:
                if self._abandoned:  # shutdown gave up on it and counted it already
                    self._inflight = 0
                    return
                done = ok or permanent or self._closed or now + wait - first_failure > self.retry_s
                if done:
                    # Counted under the lock that shutdown reads: never both, never neither.
                    self._inflight = max(0, self._inflight - len(batch))
                    if ok:
                        self._count_exported(len(batch))
                    elif self._exporter_stopped:
                        # Cut short by shutdown telling the exporter to stop, not refused.
                        self._dropped_shutdown.add(len(batch))
                        self._losses.lose("shutdown", len(batch))
                    else:
                        self._failed.add(len(batch))
                        self._losses.stats.part(
                            f"{self.signal}.export_failed.{status or 'unreachable'}", self.name
                        ).add(len(batch))
                        self._losses.lose("export_failed", len(batch))
                        if status in SIGNAL_REFUSED and self.refused is None:
                            # Once, however many workers' batches the backend refused.
                            self.refused = status
                            self._losses.stats.part(f"{self.signal}.refused", self.name).incr()
            if not ok:
                self._log_failure(result, status, permanent, url)
            if done:
                return
            self._stop.wait(wait)
            self._retries.incr()
            delay = min(delay * 2, RETRY_MAX_S)

    def _count_exported(self, n: int) -> None:
        """``n`` items exported (under ``_account``), less those the exporter reports it
        dropped itself (``sfumato_partial``: a span too large for the local store)."""
        dropped, reason = 0, ""
        if self._partial is not None:
            try:
                report = self._partial()
                if report:
                    dropped, reason = min(int(report[0]), n), str(report[1])
            except Exception:
                dropped = 0
        if dropped > 0:
            self._losses.stats.part(f"{self.signal}.dropped.{reason}", self.name).add(dropped)
            self._losses.lose(reason, dropped)
        self._exported.add(n - max(dropped, 0))

    def _failure(self) -> tuple[str | None, float | None, str | None]:
        """The status of the last failed attempt, as the exporter reports it: an HTTP status
        ("404") or a gRPC code name ("UNAVAILABLE"), the backend's Retry-After (s) and the
        URL; all None when the exporter cannot tell (the failure is then retryable)."""
        report = getattr(self.exporter, "sfumato_failure", None)
        if report is None:
            return None, None, None
        try:
            failure = report()
            if not failure:
                return None, None, None
            status, retry_after, *rest = failure
            retry = float(retry_after) if retry_after is not None else None
            return str(status), retry, (str(rest[0]) if rest and rest[0] else None)
        except Exception:
            return None, None, None

    def _log_failure(
        self, result: Any, status: str | None, permanent: bool, url: str | None
    ) -> None:
        if permanent and status is not None:
            if status in self._losses.explained:
                return
            self._losses.explained.add(status)
            if isinstance(result, Exception):
                log.warning(
                    "sfumato: %s export through %s raised %s: %s; what it could not take is "
                    "dropped, not retried (the batch is halved to find it; counted as "
                    "%s.dropped.export_failed and %s.export_failed.error in stats()), this "
                    "warning is not repeated",
                    self.signal,
                    self.name,
                    type(result).__name__,
                    result,
                    self.signal,
                    self.signal,
                )
                return
            log.warning(
                "sfumato: %s export through %s refused with %s on %s: %s; the batch is "
                "dropped, not retried (counted as %s.dropped.export_failed and "
                "%s.export_failed.%s in stats())",
                self.signal,
                self.name,
                status,
                url or self.name,
                advice(self.signal, status),
                self.signal,
                self.signal,
                status,
            )
            return
        if self._losses.failure_logged:
            return
        self._losses.failure_logged = True
        retrying = f"failed batches are retried for {self.retry_s:g}s, " if self.retry_s else ""
        log.warning(
            "sfumato: %s export through %s failed (%s); %sfailures are counted in stats(), "
            "this warning is not repeated",
            self.signal,
            self.name,
            status or result,
            retrying,
        )

    # -- control -----------------------------------------------------------------------------

    def force_flush(self, timeout: float) -> bool:
        """Export everything queued; False if the deadline passed first, or if anything
        this queue had accepted was dropped since the last flush (refused by the backend,
        failing past ``retry_s``)."""
        if self._closed or not self._alive():
            return not self._queue and not self._urgent
        deadline = time.monotonic() + timeout
        with self._flushed:
            self._flush_requests += 1
            ticket = self._flush_requests
            self._wake.set()
            while self._flush_done < ticket:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._flushed.wait(remaining)
        with self._account:
            lost = self._losses.since_reported()
            self._losses.reported = dict(self._losses.by_reason)
            return not lost

    def shutdown(self, timeout: float, exporter_shutdown: Callable[[], Any] | None = None) -> bool:
        """Send what is queued, stop the worker and the exporter; return by the deadline.

        Items still queued when the deadline passes are counted as ``dropped.shutdown``.
        """
        if self._closed:
            return True
        deadline = time.monotonic() + timeout
        self._closed = True
        self._wake.set()
        self._stop.set()
        with self._room:  # callers waiting for room stop waiting: it will not come
            self._room.notify_all()
        stop = exporter_shutdown or getattr(self.exporter, "shutdown", None)
        closer: threading.Thread | None = None
        # Most of the budget goes to sending what is queued. If the worker is still inside
        # an export near the end (backend down, retrying), the exporter is told to stop
        # early: that cuts its retry back-off short, so the batch ends, counted as
        # dropped.shutdown, instead of being abandoned mid-call.
        reserve = min(timeout / 4, 0.5)
        self._join(deadline - reserve)
        if self._alive() and stop is not None:
            self._exporter_stopped = True
            closer = threading.Thread(target=_quietly, args=(stop,), daemon=True)
            closer.start()
            self._join(deadline)
        clean = not self._alive()
        not_done = not clean
        with self._account:
            left = len(self._queue) + len(self._urgent)
            self._queue.clear()
            self._urgent.clear()
            if not clean:
                # Counted here as dropped.shutdown, and no longer as in the queue.
                left += self._inflight
                self._inflight = 0
                self._abandoned = True
            if left:
                self._dropped_shutdown.add(left)
                self._losses.lose("shutdown", left)
            lost = self._losses.since_reported()
        if lost:
            clean = False
            how = ", ".join(f"{n} {reason}" for reason, n in sorted(lost.items()))
            if not_done:
                how += "; the shutdown deadline passed"
            self._losses.text = f"{sum(lost.values())} {self.signal} through {self.name} ({how})"
        if closer is None and stop is not None:
            closer = threading.Thread(target=_quietly, args=(stop,), daemon=True)
            closer.start()
        if closer is not None:
            closer.join(max(0.0, deadline - time.monotonic()))
            clean = clean and not closer.is_alive()
        return clean


def _quietly(call: Callable[[], Any]) -> None:
    try:
        call()
    except Exception:
        log.debug("sfumato: exporter shutdown raised", exc_info=True)
