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
        assert stats["traces.queued"] == 50  # every span handed to the queue
        assert stats["traces.dropped.queue_full"] == 10
        assert stats["traces.queue_full.probability"] == 10
        exporter.gate.set()
        assert telemetry.force_flush(5) is False  # 10 were lost since the last flush
        assert exporter.sizes == [20, 20]
        assert telemetry.force_flush(5)  # nothing since


class Unencodable:
    """An exporter whose export raises, as an encoder does on a value it cannot take: on
    every batch, or (``bad``) on a batch holding a span of that name."""

    def __init__(self, bad: str | None = None) -> None:
        self.calls = 0
        self.bad = bad
        self.exported: list[str] = []

    def export(self, batch: Sequence[Any]) -> None:
        self.calls += 1
        if self.bad is None or any(span.name == self.bad for span in batch):
            raise ValueError("Value out of range")
        self.exported.extend(span.name for span in batch)

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
        # Halved in search of the item that raises (2n - 1 calls for n items), never
        # retried.
        assert exporter.calls == 2 * 5 - 1
        assert stats["traces.dropped.export_failed"] == 5
        assert stats["traces.export_failed.error"] == 5


class OneUnencodableExporter(Exporter):
    signals: ClassVar[frozenset[Signal]] = frozenset({"traces"})

    def create(self, signal: Signal, options: Any, context: BuildContext) -> Any:
        return Unencodable(bad="s7")


def test_only_the_item_an_export_raises_on_is_dropped_not_its_batch() -> None:
    name = f"{__name__}:OneUnencodableExporter"
    with sfumato.configure(
        None,
        backend="none",
        logs={"enabled": False},
        exporters=[{"type": name}],
        batch_size=100,
        batch_timeout_ms=60_000,
    ) as telemetry:
        spans(telemetry, 100)
        telemetry.force_flush(timeout=10)
        stats = telemetry.stats()
        exporter = telemetry.exporter(name, "traces")
    assert sorted(exporter.exported) == sorted(f"s{i}" for i in range(100) if i != 7)
    assert stats["traces.exported"] == 99
    assert stats["traces.export_failed.error"] == stats["traces.dropped.export_failed"] == 1
    assert exporter.calls <= 2 * 7 + 1  # one halving per level, log2(100) levels


def test_an_exporter_that_always_raises_is_not_called_without_bound() -> None:
    with sfumato.configure(
        None,
        backend="none",
        logs={"enabled": False},
        exporters=[{"type": f"{__name__}:UnencodableExporter"}],
        batch_size=512,
        batch_timeout_ms=60_000,
    ) as telemetry:
        spans(telemetry, 512)
        telemetry.force_flush(timeout=10)
        stats = telemetry.stats()
        exporter = telemetry.exporter(f"{__name__}:UnencodableExporter", "traces")
    assert stats["traces.dropped.export_failed"] == 512
    assert exporter.calls <= 2 * 32 + 1


def test_two_exporters_of_one_type_keep_their_own_counters() -> None:
    with sfumato.configure(
        None,
        backend="none",
        logs={"enabled": False},
        exporters=[{"type": RECORDER}, {"type": RECORDER}],
    ) as telemetry:
        first = telemetry.exporter(RECORDER, "traces")
        second = telemetry.exporter(f"{RECORDER}#2", "traces")
        assert first is not second
        second.gate.clear()  # the second holds its first batch: its spans stay in flight
        spans(telemetry, 3)
        assert first.gate.is_set()
        deadline = time.monotonic() + 5
        while sum(first.sizes) < 3 and time.monotonic() < deadline:
            telemetry.force_flush(0.1)
        stats = telemetry.stats()
        assert stats[f"exporters.{RECORDER}.traces.exported"] == 3
        assert stats[f"exporters.{RECORDER}#2.traces.exported"] == 0
        assert stats["traces.exported"] == 3
        second.gate.set()


def test_on_full_block_makes_a_burst_wait_instead_of_dropping() -> None:
    with sfumato.configure(
        None,
        backend="none",
        logs={"enabled": False},
        exporters=[{"type": RECORDER}],
        batch_size=10,
        batch_timeout_ms=60_000,
        max_queue_size=20,
        on_full="block",
        block_ms=5_000,
    ) as telemetry:
        exporter = telemetry.exporter(RECORDER, "traces")
        exporter.gate.clear()
        release = threading.Timer(0.3, exporter.gate.set)  # the backend is slow, then takes all
        release.start()
        started = time.monotonic()
        spans(telemetry, 100)  # 5x the queue: waits for room, drops nothing
        waited = time.monotonic() - started
        assert telemetry.force_flush(5)
        stats = telemetry.stats()
        release.join()
    assert waited >= 0.2
    assert stats["traces.dropped.queue_full"] == 0
    assert sum(exporter.sizes) == stats["traces.exported"] == 100
