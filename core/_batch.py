"""A bounded export queue with one worker thread, shared by spans and log records.

The caller's thread does as little as possible: a length check, one ``deque.append`` and, when
a batch is full, one ``Event.set``. Everything else (batching, export, retries, accounting)
happens on the worker. Drops are counted by reason, never logged per item, and ``shutdown``
returns within its deadline whatever the exporter does.

A batch whose export fails is not dropped at once: the worker keeps it and tries again with
a growing back-off (0.5 s doubling to 5 s) for up to ``retry_s``, so what was queued during a
short outage is delivered when the backend is back. Meanwhile newer items wait in the queue
behind it, in order, and beyond ``max_queue_size`` they are dropped as ``queue_full``: memory
stays bounded by ``max_queue_size + batch_size`` items. A batch still failing after
``retry_s`` (a long outage) is counted as ``export_failed`` and the next one is tried.

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
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value

from ._stats import Stats

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


def _advice(signal: str, status: str) -> str:
    """What to change, for a permanent status."""
    if status in SIGNAL_REFUSED:
        if signal == "traces":
            return (
                "this backend takes no traces there; check otlp_endpoint (and protocol), or "
                "send traces elsewhere. No more traces are sent to it until restart"
            )
        return (
            f"this backend takes no {signal}; set [telemetry.{signal}] enabled = false, or "
            f"check otlp_endpoint. No more {signal} are sent to it until restart"
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

    __slots__ = ("explained", "failure_logged", "n", "reported", "stats", "text")

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.n = 0  # items the queue dropped after accepting them
        # ``n`` when force_flush last returned: a flush or shutdown is False when anything
        # was lost since.
        self.reported = 0
        self.text = ""  # what shutdown lost, and where: for the handle's warning
        self.explained: set[str] = set()  # permanent statuses already explained
        self.failure_logged = False


class ExportQueue(Generic[T]):
    """Bounded queue + worker that calls ``exporter.export(batch)``.

    Counters (under ``exporters.<name>.{signal}.``, each summed into the total under
    ``{signal}.``): ``queued``, ``exported``, ``dropped.queue_full``, ``dropped.shutdown``,
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
    ) -> None:
        self.exporter = exporter
        self.signal = signal
        self.batch_size = batch_size
        self.delay = delay_ms / 1000
        self.max_queue_size = max_queue_size
        self.retry_s = retry_ms / 1000
        self.name = name or type(exporter).__name__
        self._queue: deque[T] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()  # set by shutdown: cuts a retry back-off short
        self._flushed = threading.Condition()
        self._flush_requests = 0
        self._flush_done = 0
        self._closed = False
        # The batch inside exporter.export(): counted as dropped.shutdown if shutdown gives up
        # on it, and then not counted again when (if ever) the export returns.
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
        self._worker = threading.Thread(
            target=self._run, name=f"sfumato-export-{self.signal}-{self.name}", daemon=True
        )
        self._worker.start()

    def _after_fork(self) -> None:
        if self._pid == os.getpid():
            return  # made in this process (by another at-fork hook): nothing inherited
        # The parent's queue is the parent's to send: a child starts empty, with its own thread.
        self._queue.clear()
        self._inflight = 0
        self._account = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flushed = threading.Condition()
        self._flush_requests = self._flush_done = 0
        self._pid = os.getpid()
        if not self._closed:
            self._start_worker()

    @property
    def loss(self) -> str:
        """What the last shutdown lost, and where ("" when nothing)."""
        return self._losses.text

    # -- caller's thread ---------------------------------------------------------------------

    def put(self, item: T) -> None:
        """Queue one item; never blocks, never raises."""
        if self._closed:
            self._dropped_shutdown.incr()
            return
        queue = self._queue
        if len(queue) >= self.max_queue_size:
            self._dropped_full.incr()
            return
        queue.append(item)
        self._queued.incr()
        if len(queue) >= self.batch_size and not self._wake.is_set():
            # Event.set takes a lock and notifies: once per batch, not for every item that
            # arrives before the worker gets to run.
            self._wake.set()

    def __len__(self) -> int:
        """Items waiting, plus the batch being exported or retried."""
        return len(self._queue) + self._inflight

    # -- worker ------------------------------------------------------------------------------

    def _run(self) -> None:
        token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
        try:
            while True:
                # Woken early means a batch filled up: send full batches only. A timeout
                # means the delay passed: send everything, partial batch included.
                woken = self._wake.wait(self.delay)
                self._wake.clear()
                with self._flushed:
                    flush_to = self._flush_requests
                flushing = flush_to != self._flush_done
                self._drain(everything=not woken or flushing)
                if flush_to != self._flush_done:
                    with self._flushed:
                        self._flush_done = flush_to
                        self._flushed.notify_all()
                if self._closed:
                    # Shutdown may have begun while a batch was being exported: what arrived
                    # behind that batch is sent now, not left for shutdown to drop.
                    self._drain(everything=True)
                    return
        finally:
            detach(token)

    def _drain(self, everything: bool) -> None:
        queue = self._queue
        while queue and not self._abandoned:
            if self._exporter_stopped:
                # Shutdown has stopped the exporter: nothing more can be sent.
                with self._account:
                    left = len(queue)
                    queue.clear()
                    self._dropped_shutdown.add(left)
                    self._losses.n += left
                return
            if self.refused is not None:
                with self._account:
                    left = len(queue)
                    queue.clear()
                    self._dropped_refused.add(left)
                    self._losses.n += left
                return
            n = min(len(queue), self.batch_size)
            # ``_closed`` is read here, not once before the loop: shutdown may start during
            # an export, and the partial batch behind it must then go too.
            if n < self.batch_size and not (everything or self._closed):
                return
            batch: list[T] = []
            with self._account:
                try:
                    for _ in range(n):
                        batch.append(queue.popleft())
                except IndexError:  # shutdown cleared the queue meanwhile
                    pass
                self._inflight = len(batch)
            if batch:
                self._export(batch)

    def _export(self, batch: Sequence[T]) -> None:
        """Export ``batch``; retry a retryable failure with back-off within ``retry_s`` of the
        first; a permanent one (the backend refused the data) is final at once."""
        first_failure: float | None = None
        delay = RETRY_FIRST_S
        while True:
            try:
                result = self.exporter.export(batch)
            except Exception as exc:
                result = exc
            raised = isinstance(result, Exception)
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
                    self._inflight = 0
                    if ok:
                        self._exported.add(len(batch))
                    elif self._exporter_stopped:
                        # Cut short by shutdown telling the exporter to stop, not refused.
                        self._dropped_shutdown.add(len(batch))
                        self._losses.n += len(batch)
                    else:
                        self._failed.add(len(batch))
                        self._losses.stats.part(
                            f"{self.signal}.export_failed.{status or 'unreachable'}", self.name
                        ).add(len(batch))
                        self._losses.n += len(batch)
                        if status in SIGNAL_REFUSED:
                            self.refused = status
                            self._losses.stats.part(f"{self.signal}.refused", self.name).incr()
            if not ok:
                self._log_failure(result, status, permanent, url)
            if done:
                return
            self._stop.wait(wait)
            self._retries.incr()
            delay = min(delay * 2, RETRY_MAX_S)

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
                    "sfumato: %s export through %s raised %s: %s; the batch is dropped, not "
                    "retried (counted as %s.dropped.export_failed and %s.export_failed.error "
                    "in stats()), this warning is not repeated",
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
                _advice(self.signal, status),
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
        if self._closed or not self._worker.is_alive():
            return not self._queue
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
            lost_before, self._losses.reported = self._losses.reported, self._losses.n
            return self._losses.n == lost_before

    def shutdown(self, timeout: float, exporter_shutdown: Callable[[], Any] | None = None) -> bool:
        """Send what is queued, stop the worker and the exporter; return by the deadline.

        Items still queued when the deadline passes are counted as ``dropped.shutdown``.
        """
        if self._closed:
            return True
        deadline = time.monotonic() + timeout
        with self._account:
            lost_before = self._losses.reported
        self._closed = True
        self._wake.set()
        self._stop.set()
        stop = exporter_shutdown or getattr(self.exporter, "shutdown", None)
        closer: threading.Thread | None = None
        # Most of the budget goes to sending what is queued. If the worker is still inside
        # an export near the end (backend down, retrying), the exporter is told to stop
        # early: that cuts its retry back-off short, so the batch ends, counted as
        # dropped.shutdown, instead of being abandoned mid-call.
        reserve = min(timeout / 4, 0.5)
        self._worker.join(max(0.0, deadline - reserve - time.monotonic()))
        if self._worker.is_alive() and stop is not None:
            self._exporter_stopped = True
            closer = threading.Thread(target=_quietly, args=(stop,), daemon=True)
            closer.start()
            self._worker.join(max(0.0, deadline - time.monotonic()))
        clean = not self._worker.is_alive()
        not_done = not clean
        with self._account:
            left = len(self._queue)
            self._queue.clear()
            if not clean:
                # Counted here as dropped.shutdown, and no longer as in the queue.
                left += self._inflight
                self._inflight = 0
                self._abandoned = True
            if left:
                self._dropped_shutdown.add(left)
                self._losses.n += left
            lost = self._losses.n - lost_before
        if lost:
            clean = False
            why = "the deadline passed" if not_done else "see the counters"
            self._losses.text = f"{lost} {self.signal} through {self.name} ({why})"
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
