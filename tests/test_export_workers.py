"""Several export calls in flight per exporter (``export_workers``).

One synchronous export worker is bound by the backend's round trip: against a Rotel on
loopback a 512-span OTLP/gRPC batch waits 2 ms, sometimes 40 ms, for the answer, which caps
one worker near 36,000 spans/s with no encoding at all. With two workers the next batch is
encoded and sent while the last waits. These tests hold the queue's promises (nothing lost,
every item counted once, flush and shutdown covering every batch in flight) with several
workers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest
import sfumato
from opentelemetry.sdk.trace.export import SpanExportResult
from sfumato._export_queue import ExportQueue
from sfumato._stats import Stats

Item = tuple[str, int]


class Slow:
    """Takes ``seconds`` per batch; records how many exports ran at once."""

    def __init__(self, seconds: float, fail_first: int = 0) -> None:
        self.seconds = seconds
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0
        self.exported: list[Item] = []
        self.fail_first = fail_first
        self.release = threading.Event()
        self.release.set()

    def export(self, batch: Sequence[Item]) -> Any:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            fail = self.fail_first > 0
            if fail:
                self.fail_first -= 1
        try:
            self.release.wait(10)
            time.sleep(self.seconds)
            if fail:
                return SpanExportResult.FAILURE
            with self.lock:
                self.exported.extend(batch)
            return SpanExportResult.SUCCESS
        finally:
            with self.lock:
                self.running -= 1

    def shutdown(self) -> None:
        self.release.set()


def make(exporter: Any, workers: int, *, batch: int = 10, retry_ms: int = 0) -> tuple[Any, Stats]:
    stats = Stats()
    queue: ExportQueue[Item] = ExportQueue(
        exporter,
        signal="traces",
        stats=stats,
        batch_size=batch,
        delay_ms=60_000,
        max_queue_size=10_000,
        name="slow",
        retry_ms=retry_ms,
        workers=workers,
    )
    return queue, stats


def balanced(stats: Stats, queue: Any) -> dict[str, int]:
    snapshot = stats.snapshot()
    dropped = sum(v for k, v in snapshot.items() if k.startswith("traces.dropped."))
    assert snapshot["traces.queued"] == snapshot["traces.exported"] + dropped + len(queue)
    return snapshot


def test_two_workers_keep_two_exports_in_flight() -> None:
    exporter = Slow(0.05)
    queue, stats = make(exporter, workers=2)
    for i in range(80):
        queue.put(("t", i))
    started = time.monotonic()
    assert queue.force_flush(10)
    elapsed = time.monotonic() - started
    queue.shutdown(2)
    assert exporter.most == 2
    assert sorted(exporter.exported) == [("t", i) for i in range(80)]
    # eight batches of 50 ms, two at a time: about 0.2 s, not the 0.4 s of one worker
    assert elapsed < 0.35, elapsed
    assert balanced(stats, queue)["traces.exported"] == 80


def test_one_worker_exports_one_batch_at_a_time() -> None:
    exporter = Slow(0.01)
    queue, stats = make(exporter, workers=1)
    for i in range(40):
        queue.put(("t", i))
    assert queue.force_flush(10)
    queue.shutdown(2)
    assert exporter.most == 1
    assert balanced(stats, queue)["traces.exported"] == 40


def test_flush_waits_for_the_batch_another_worker_is_exporting() -> None:
    exporter = Slow(0.0)
    exporter.release.clear()
    queue, stats = make(exporter, workers=2)
    for i in range(10):  # one full batch: a worker takes it and waits on the release
        queue.put(("a", i))
    deadline = time.monotonic() + 5
    while exporter.running == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert exporter.running == 1
    for i in range(3):  # a partial batch, for the flush
        queue.put(("b", i))
    result: list[bool] = []
    flusher = threading.Thread(target=lambda: result.append(queue.force_flush(5)))
    flusher.start()
    time.sleep(0.2)
    # the partial batch went out through the other worker; the first batch is still in flight
    assert flusher.is_alive(), "flush returned with a batch still in flight"
    exporter.release.set()
    flusher.join(5)
    assert result == [True]
    assert len(exporter.exported) == 13
    queue.shutdown(2)
    balanced(stats, queue)


def test_shutdown_counts_every_batch_in_flight_once() -> None:
    exporter = Slow(0.0)
    exporter.release.clear()
    queue, stats = make(exporter, workers=2)
    for i in range(30):
        queue.put(("t", i))
    deadline = time.monotonic() + 5
    while exporter.running < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert exporter.running == 2
    exporter.shutdown = lambda: None  # type: ignore[method-assign]  # the exports stay stuck
    assert queue.shutdown(0.3) is False
    snapshot = balanced(stats, queue)
    assert snapshot["traces.exported"] == 0
    assert snapshot["traces.dropped.shutdown"] == 30
    exporter.release.set()  # the stuck exports return late: not counted again
    time.sleep(0.1)
    assert balanced(stats, queue)["traces.dropped.shutdown"] == 30


def test_a_failing_batch_retried_by_one_worker_does_not_hold_up_the_other() -> None:
    exporter = Slow(0.0, fail_first=1)
    queue, stats = make(exporter, workers=2, retry_ms=5_000)
    for i in range(50):
        queue.put(("t", i))
    assert queue.force_flush(10)
    queue.shutdown(2)
    snapshot = balanced(stats, queue)
    assert snapshot["traces.exported"] == 50
    assert snapshot["traces.export.retries"] >= 1
    assert sorted(exporter.exported) == [("t", i) for i in range(50)]


def test_workers_restart_in_a_forked_child() -> None:
    import os

    queue, _ = make(Slow(0.0), workers=2)
    pid = os.fork()
    if pid == 0:  # the child: its own two workers export what it queues
        code = 1
        try:
            for i in range(20):
                queue.put(("c", i))
            code = 0 if queue.force_flush(5) and len(queue.exporter.exported) == 20 else 3
            alive = [t for t in threading.enumerate() if t.name.startswith("sfumato-export")]
            code = code or (0 if len(alive) == 2 else 4)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    queue.shutdown(2)
    assert os.waitstatus_to_exitcode(status) == 0


def test_configure_gives_otlp_exporters_two_workers_and_the_local_store_one(
    tmp_path: Any,
) -> None:
    telemetry = sfumato.configure(
        None,
        service_name="workers",
        backend="none",
        exporters=[
            {"type": "otlp-grpc", "endpoint": "http://127.0.0.1:9", "insecure": True},
            {"type": "local", "directory": str(tmp_path / "store")},
        ],
        metrics={"enabled": False},
        logs={"enabled": False},
    )
    try:
        names = [t.name for t in threading.enumerate() if t.name.startswith("sfumato-export")]
        grpc = [n for n in names if "otlp-grpc" in n]
        local = [n for n in names if "local" in n]
        assert len(grpc) == 2, names
        assert len(local) == 1, names
    finally:
        telemetry.shutdown(timeout=1)


def test_export_workers_is_a_setting_with_bounds() -> None:
    from sfumato.settings import Settings

    assert Settings(service_name="x").export_workers == 2
    assert Settings(service_name="x", export_workers=1).export_workers == 1
    with pytest.raises(ValueError, match="export_workers"):
        Settings(service_name="x", export_workers=0)


class _Failed(Exception):
    pass


def test_each_worker_reads_the_grpc_status_of_its_own_call() -> None:
    """Two exports at once through one OTLP/gRPC exporter, failing with different codes:
    each caller's sfumato_failure() is its own call's (the queue decides retry or not on it)."""
    import grpc
    from sfumato.plugin import BuildContext
    from sfumato.plugins.exporters import OtlpGrpcExporter, OtlpOptions
    from sfumato.settings import Settings

    class Refusal(grpc.RpcError):
        def __init__(self, code: grpc.StatusCode) -> None:
            self._code = code

        def code(self) -> grpc.StatusCode:
            return self._code

        def details(self) -> str:
            return self._code.name

        def trailing_metadata(self) -> tuple[()]:
            return ()

    both = threading.Barrier(2, timeout=5)
    codes = {"a": grpc.StatusCode.INVALID_ARGUMENT, "b": grpc.StatusCode.PERMISSION_DENIED}

    class Stub:
        def Export(self, *args: Any, **kwargs: Any) -> Any:
            both.wait()  # both calls in flight at once
            raise Refusal(codes[threading.current_thread().name])

    context = BuildContext(settings=Settings(service_name="x"), stats=Stats())
    options = OtlpOptions(endpoint="http://127.0.0.1:9", insecure=True, timeout_ms=2000)
    exporter = OtlpGrpcExporter().create("traces", options, context)
    assert exporter.sfumato_concurrent is True
    exporter._client._stub = Stub()
    seen: dict[str, Any] = {}

    def call() -> None:
        exporter.export([])
        time.sleep(0.1)  # both calls have recorded their failures
        seen[threading.current_thread().name] = exporter.sfumato_failure()

    threads = [threading.Thread(target=call, name=n) for n in codes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    exporter.shutdown()
    assert seen["a"][0] == "INVALID_ARGUMENT"
    assert seen["b"][0] == "PERMISSION_DENIED"


def test_each_worker_reads_the_http_status_of_its_own_call() -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from sfumato.plugin import BuildContext
    from sfumato.plugins.exporters import OtlpHttpExporter, OtlpOptions
    from sfumato.settings import Settings

    both = threading.Barrier(2, timeout=5)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            both.wait()
            self.send_response(400 if self.headers.get("X-Caller") == "a" else 403)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    context = BuildContext(settings=Settings(service_name="x"), stats=Stats())
    exporter = OtlpHttpExporter().create(
        "traces", OtlpOptions(endpoint=f"http://127.0.0.1:{port}", timeout_ms=2000), context
    )
    assert exporter.sfumato_concurrent is True
    session = exporter._sfumato_session
    seen: dict[str, Any] = {}
    real_request = session.request

    def routed(*args: Any, **kwargs: Any) -> Any:
        name = threading.current_thread().name
        kwargs["headers"] = {**(kwargs.get("headers") or {}), "X-Caller": name}
        return real_request(*args, **kwargs)

    session.request = routed

    def call() -> None:
        exporter.export([])
        time.sleep(0.1)  # both calls have recorded their statuses
        seen[threading.current_thread().name] = exporter.sfumato_failure()

    threads = [threading.Thread(target=call, name=n) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    exporter.shutdown()
    server.shutdown()
    assert seen["a"][0] == "400"
    assert seen["b"][0] == "403"


def test_flushes_while_four_workers_export_from_several_threads() -> None:
    """Flushes from several threads while four workers take and finish small batches: every
    worker survives (a flush reads the set of batches in flight that the others change),
    and every item is counted once."""
    exporter = Slow(0.0005)
    queue, stats = make(exporter, workers=4, batch=2)
    stop = time.monotonic() + 1.5
    errors: list[BaseException] = []

    def produce(name: str) -> None:
        i = 0
        try:
            while time.monotonic() < stop:
                queue.put((name, i))
                i += 1
                if i % 7 == 0:
                    queue.force_flush(5)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=produce, args=(f"p{n}",)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors
    assert all(t.is_alive() for t in queue._threads), "an export worker died"
    assert queue.force_flush(5)
    queue.shutdown(2)
    snapshot = balanced(stats, queue)
    assert snapshot["traces.exported"] == snapshot["traces.queued"] == len(exporter.exported)


def test_a_prepare_step_that_raises_loses_its_batch_counted_and_the_worker_goes_on() -> None:
    """The scrubber runs as the queue's prepare step: should it raise, the batch is not sent
    (it may hold what was to be taken out), it is counted, and later batches go on."""
    exporter = Slow(0.0)
    stats = Stats()
    calls = {"n": 0}

    def prepare(batch: list[Item]) -> list[Item]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("a bug in the prepare step")
        return [(name, n * 10) for name, n in batch]

    queue: ExportQueue[Item] = ExportQueue(
        exporter,
        signal="traces",
        stats=stats,
        batch_size=5,
        delay_ms=60_000,
        max_queue_size=1000,
        name="prep",
        prepare=prepare,
    )
    try:
        for i in range(5):
            queue.put(("first", i))
        assert not queue.force_flush(5)  # the flush says that the batch was lost
        for i in range(5):
            queue.put(("second", i))
        assert queue.force_flush(5)
        snapshot = balanced(stats, queue)
    finally:
        queue.shutdown(5)
    assert exporter.exported == [("second", i * 10) for i in range(5)]
    assert snapshot["traces.dropped.export_failed"] == 5
    assert snapshot["exporters.prep.traces.export_failed.prepare"] == 5
