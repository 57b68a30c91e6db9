"""batch_size, batch_timeout_ms and max_queue_size reach the export queues and are obeyed."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import sfumato
from sfumato.plugin import BuildContext, Exporter
from sfumato.settings import Signal


class Batches:
    """Remembers the size of every batch it is given; can be made to block."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()  # set when an export has begun

    def export(self, batch: Sequence[Any]) -> None:
        self.entered.set()
        self.gate.wait(30)
        self.sizes.append(len(batch))

    def shutdown(self) -> None:
        self.gate.set()


class BatchRecorder(Exporter):
    signals: ClassVar[frozenset[Signal]] = frozenset({"traces", "logs"})

    def create(self, signal: Signal, options: Any, context: BuildContext) -> Any:
        return Batches()


RECORDER = f"{__name__}:BatchRecorder"


def spans(telemetry: sfumato.Telemetry, n: int) -> None:
    tracer = telemetry.tracer()
    for i in range(n):
        with tracer.start_as_current_span(f"s{i}"):
            pass


def test_queues_get_the_configured_sizes() -> None:
    with sfumato.configure(
        None,
        backend="none",
        exporters=[{"type": RECORDER}],
        batch_size=7,
        batch_timeout_ms=1234,
        max_queue_size=99,
    ) as telemetry:
        queues = telemetry._pipes.queues
        assert {q.signal for q in queues} == {"traces", "logs"}
        for q in queues:
            assert (q.batch_size, q.delay, q.max_queue_size) == (7, 1.234, 99)


def test_batch_size_splits_exports() -> None:
    with sfumato.configure(
        None, backend="none", exporters=[{"type": RECORDER}], batch_size=10, batch_timeout_ms=60_000
    ) as telemetry:
        exporter = telemetry.exporter(RECORDER, "traces")
        spans(telemetry, 25)
        assert telemetry.force_flush(5)
        assert exporter.sizes == [10, 10, 5]


def test_batch_timeout_sends_a_partial_batch() -> None:
    with sfumato.configure(
        None, backend="none", exporters=[{"type": RECORDER}], batch_size=100, batch_timeout_ms=50
    ) as telemetry:
        exporter = telemetry.exporter(RECORDER, "traces")
        spans(telemetry, 3)
        deadline = time.monotonic() + 5
        while not exporter.sizes and time.monotonic() < deadline:
            time.sleep(0.01)
        assert exporter.sizes == [3]  # without any flush


def test_max_queue_size_drops_and_counts() -> None:
    with sfumato.configure(
        None,
        backend="none",
        exporters=[{"type": RECORDER}],
        batch_size=20,
        batch_timeout_ms=60_000,
        max_queue_size=20,
    ) as telemetry:
        exporter = telemetry.exporter(RECORDER, "traces")
        exporter.gate.clear()  # the first export blocks, holding its batch
        spans(telemetry, 20)
        assert exporter.entered.wait(5)  # the worker took the full batch and is exporting it
        assert telemetry.stats()["traces.in_queue"] == 20  # in flight: counted until exported
        spans(telemetry, 30)  # 20 fill the queue again, 10 find it full
        stats = telemetry.stats()
        assert stats["traces.queued"] == 40
        assert stats["traces.dropped.queue_full"] == 10
        exporter.gate.set()
        assert telemetry.force_flush(5)
        assert exporter.sizes == [20, 20]


class Unencodable:
    """An exporter whose export raises, as an encoder does on a value it cannot take."""

    def __init__(self) -> None:
        self.calls = 0

    def export(self, batch: Sequence[Any]) -> None:
        self.calls += 1
        raise ValueError("Value out of range")

    def shutdown(self) -> None:
        pass


class UnencodableExporter(Exporter):
    signals: ClassVar[frozenset[Signal]] = frozenset({"traces"})

    def create(self, signal: Signal, options: Any, context: BuildContext) -> Any:
        return Unencodable()


def test_a_batch_whose_export_raises_is_dropped_at_once_not_retried() -> None:
    with sfumato.configure(
        None,
        backend="none",
        logs={"enabled": False},
        exporters=[{"type": f"{__name__}:UnencodableExporter"}],
        batch_size=5,
        export_retry_ms=30_000,
    ) as telemetry:
        spans(telemetry, 5)
        started = time.monotonic()
        telemetry.force_flush(timeout=10)
        assert time.monotonic() - started < 5  # not 30 s of retries
        stats = telemetry.stats()
        exporter = telemetry.exporter(f"{__name__}:UnencodableExporter", "traces")
        assert exporter.calls == 1
        assert stats["traces.dropped.export_failed"] == 5
        assert stats["traces.export_failed.error"] == 5
