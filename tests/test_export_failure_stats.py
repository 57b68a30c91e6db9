"""Metric and log export failures are counted like spans': ``{signal}.exported`` and
``{signal}.dropped.export_failed`` in ``telemetry.stats()``, against a loopback OTLP/HTTP
receiver that refuses or accepts everything."""

from __future__ import annotations

import http.server
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sfumato
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult
from sfumato import metrics
from sfumato._metric_export import CountingMetricExporter
from sfumato._stats import Stats


def _receiver(status: int) -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(status)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def refusing() -> Iterator[str]:
    yield from _receiver(400)  # a permanent rejection: no retries


@pytest.fixture
def accepting() -> Iterator[str]:
    yield from _receiver(200)


def _configure(url: str, **settings: Any) -> sfumato.Telemetry:
    return sfumato.configure(
        None,
        backend="otlp",
        protocol="http/protobuf",
        otlp_endpoint=url,
        export_retry_ms=0,
        metrics={"export_interval_ms": 60_000},
        **settings,
    )


def _emit() -> None:
    metrics.counter("payments.failed").add(1, {"reason": "card"})
    metrics.counter("payments.failed").add(1, {"reason": "funds"})
    logging.getLogger("app.payments").warning("payment failed")


def test_failures_are_counted(refusing: str, caplog: pytest.LogCaptureFixture) -> None:
    with _configure(refusing) as telemetry:
        stats = telemetry.stats()
        assert stats["metrics.exported"] == stats["metrics.dropped.export_failed"] == 0
        _emit()
        telemetry.force_flush(10)
        _emit()
        telemetry.force_flush(10)
        stats = telemetry.stats()
    assert stats["metrics.dropped.export_failed"] >= 4  # data points, two per export
    # by status and by exporter, as spans and log records are
    assert stats["metrics.export_failed.400"] == stats["metrics.dropped.export_failed"]
    assert (
        stats["exporters.otlp-http.metrics.dropped.export_failed"]
        == stats["metrics.dropped.export_failed"]
    )
    assert stats["metrics.exported"] == 0
    assert stats["logs.dropped.export_failed"] == 2
    assert stats["logs.exported"] == 0
    own = [r.getMessage() for r in caplog.records if r.name == "sfumato"]
    refused = [m for m in own if "metrics export through otlp-http refused with 400" in m]
    assert len(refused) == 1, own  # explained once
    assert "invalid" in refused[0]


@pytest.fixture
def retrying() -> Iterator[str]:
    yield from _receiver(503)


def test_a_retryable_metric_failure_is_counted_under_its_status(
    retrying: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The exporter's own retries end within export_timeout_ms.
    with _configure(retrying, export_timeout_ms=1000) as telemetry:
        _emit()
        telemetry.force_flush(10)
    stats = telemetry.stats()
    assert stats["metrics.export_failed.503"] == stats["metrics.dropped.export_failed"] >= 2
    own = [r.getMessage() for r in caplog.records if r.name == "sfumato"]
    assert len([m for m in own if "metrics export through otlp-http failed (503)" in m]) == 1


def test_successes_are_counted(accepting: str) -> None:
    with _configure(accepting) as telemetry:
        _emit()
        telemetry.force_flush(10)
        stats = telemetry.stats()
    assert stats["metrics.exported"] >= 2
    assert stats["exporters.otlp-http.metrics.exported"] == stats["metrics.exported"]
    assert stats["metrics.dropped.export_failed"] == 0
    assert stats["logs.exported"] == 1


class _Raising(MetricExporter):
    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> Any:
        raise RuntimeError("broken exporter")

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        raise RuntimeError("broken exporter")

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        raise RuntimeError("broken exporter")


def test_a_raising_exporter_is_a_counted_failure_never_an_exception() -> None:
    stats = Stats()
    wrapped = CountingMetricExporter(_Raising(), stats, "broken")
    assert wrapped.export(None) is MetricExportResult.FAILURE
    assert wrapped.force_flush() is False
    wrapped.shutdown()
    # Nothing to count (no data points), and nothing raised.
    assert {k: v for k, v in stats.snapshot().items() if v} == {}
    assert "exporters.broken.metrics.export_failed.error" in stats.snapshot()
