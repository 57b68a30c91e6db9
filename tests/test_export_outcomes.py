"""What becomes of every span handed to an export queue, against real loopback receivers:
shutdown drains all of it, and the counters add up at every moment."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
import sfumato
from loopback_receivers import GrpcReceiver, HttpReceiver, grpc_receiver, http_receiver

__all__ = ["grpc_receiver", "http_receiver"]

BATCH = 512
DROP_REASONS = ("queue_full", "shutdown", "export_failed", "refused")


def _configure(receiver: Any, protocol: str, **overrides: Any) -> sfumato.Telemetry:
    settings: dict[str, Any] = {
        "service_name": "outcomes",
        "backend": "otlp",
        "protocol": protocol,
        "otlp_endpoint": receiver.endpoint,
        "insecure": True,
        "batch_size": BATCH,
        "batch_timeout_ms": 60_000,  # only a full batch, a flush or shutdown sends
        "max_queue_size": 2048,
        "shutdown_timeout_ms": 10_000,
        "export_timeout_ms": 5_000,
        "metrics": {"enabled": False},
        "logs": {"enabled": False},
    }
    settings.update(overrides)
    return sfumato.configure(**settings)


def _emit(telemetry: sfumato.Telemetry, n: int) -> None:
    tracer = telemetry.tracer()
    for i in range(n):
        with tracer.start_as_current_span(f"s{i}"):
            pass


def _balance(stats: dict[str, int], signal: str = "traces") -> int:
    """created - (exported + dropped by every reason + in queue): 0 when nothing is lost."""
    dropped = sum(stats.get(f"{signal}.dropped.{reason}", 0) for reason in DROP_REASONS)
    return (
        stats[f"{signal}.queued"]
        - stats[f"{signal}.exported"]
        - dropped
        - stats[f"{signal}.in_queue"]
    )


@pytest.mark.parametrize("n", [1, BATCH - 1, BATCH, BATCH + 1, 600, 2 * BATCH + 1])
def test_shutdown_sends_everything_to_a_slow_backend(
    http_receiver: HttpReceiver, n: int, caplog: pytest.LogCaptureFixture
) -> None:
    http_receiver.delay["traces"] = (0.5, 1.0)
    telemetry = _configure(http_receiver, "http/protobuf")
    _emit(telemetry, n)
    assert _balance(telemetry.stats()) == 0
    with caplog.at_level(logging.WARNING, logger="sfumato"):
        assert telemetry.shutdown() is True
    stats = telemetry.stats()
    assert sorted(http_receiver.spans) == sorted(f"s{i}" for i in range(n))
    assert stats["traces.queued"] == n
    assert stats["traces.exported"] == n
    assert stats["traces.in_queue"] == 0
    assert _balance(stats) == 0
    assert not [r for r in caplog.records if "deadline" in r.getMessage()]


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_counters_add_up_right_after_shutdown_gives_up_on_an_export(
    http_receiver: HttpReceiver, grpc_receiver: GrpcReceiver, protocol: str
) -> None:
    receiver = grpc_receiver if protocol == "grpc" else http_receiver
    receiver.delay["traces"] = (3.0, 3.0)
    telemetry = _configure(receiver, protocol, shutdown_timeout_ms=600)
    _emit(telemetry, BATCH + 10)
    time.sleep(0.2)  # the full batch is inside its export
    assert _balance(telemetry.stats()) == 0
    start = time.monotonic()
    assert telemetry.shutdown() is False
    assert time.monotonic() - start < 0.6 + 0.3
    stats = telemetry.stats()
    assert stats["traces.in_queue"] == 0
    assert stats["traces.dropped.shutdown"] == BATCH + 10
    assert _balance(stats) == 0
    time.sleep(3.2)  # the abandoned export returns: it is not counted a second time
    assert _balance(telemetry.stats()) == 0


# -- errors by kind --------------------------------------------------------------------------

PERMANENT_HTTP = [400, 401, 403, 404, 405, 413, 422]
PERMANENT_GRPC = ["UNIMPLEMENTED", "INVALID_ARGUMENT", "PERMISSION_DENIED", "UNAUTHENTICATED"]
SIGNAL_REFUSED = {"404", "405", "UNIMPLEMENTED"}


@pytest.mark.parametrize(
    ("protocol", "status"),
    [("http/protobuf", s) for s in PERMANENT_HTTP] + [("grpc", s) for s in PERMANENT_GRPC],
)
def test_a_permanent_error_is_final_counted_by_status_and_explained_once(
    http_receiver: HttpReceiver,
    grpc_receiver: GrpcReceiver,
    protocol: str,
    status: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver = grpc_receiver if protocol == "grpc" else http_receiver
    receiver.status["traces"] = status
    telemetry = _configure(receiver, protocol, batch_size=10, export_retry_ms=30_000)
    with caplog.at_level(logging.WARNING, logger="sfumato"):
        _emit(telemetry, 30)
        start = time.monotonic()
        assert telemetry.force_flush(5.0) is False  # something was lost, and it said so
        took = time.monotonic() - start
    assert took < 3.0, f"a permanent {status} was retried ({took:.1f}s)"
    stats = telemetry.stats()
    key = str(status)
    assert stats.get("traces.export.retries", 0) == 0
    if key in SIGNAL_REFUSED:
        # One request per export worker at most (two were in flight before the first
        # answer): the backend takes no traces, so nothing more is sent to it, and what
        # followed the refused batches is dropped as refused.
        sent = receiver.requests["traces"]
        assert 1 <= sent <= 2
        assert stats["traces.dropped.export_failed"] == 10 * sent
        assert stats[f"traces.export_failed.{key}"] == 10 * sent
        assert stats["traces.dropped.refused"] == 30 - 10 * sent
        exporter = "otlp-grpc" if protocol == "grpc" else "otlp-http"
        assert stats[f"exporters.{exporter}.traces.refused"] == 1
        assert stats["traces.refused"] == 1
    else:
        assert stats["traces.dropped.export_failed"] == 30
        assert stats[f"traces.export_failed.{key}"] == 30
    assert _balance(stats) == 0
    explained = [
        r.getMessage() for r in caplog.records if r.name == "sfumato" and key in r.getMessage()
    ]
    assert len(explained) == 1, explained
    telemetry.shutdown()


def test_a_refused_logs_signal_says_what_to_change(
    http_receiver: HttpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    http_receiver.status["logs"] = 405
    telemetry = _configure(http_receiver, "http/protobuf", logs={"enabled": True})
    with caplog.at_level(logging.WARNING, logger="sfumato"):
        logging.getLogger("app").warning("one")
        telemetry.force_flush(5.0)
    message = " ".join(
        r.getMessage() for r in caplog.records if r.name == "sfumato" and "405" in r.getMessage()
    )
    assert "/v1/logs" in message
    assert "[telemetry.logs] enabled = false" in message
    assert telemetry.stats()["exporters.otlp-http.logs.refused"] == 1
    telemetry.shutdown()


@pytest.mark.parametrize(
    ("protocol", "status"),
    [("http/protobuf", 503), ("http/protobuf", 429), ("grpc", "UNAVAILABLE")],
)
def test_a_retryable_error_is_retried_until_the_backend_takes_it(
    http_receiver: HttpReceiver, grpc_receiver: GrpcReceiver, protocol: str, status: Any
) -> None:
    receiver = grpc_receiver if protocol == "grpc" else http_receiver
    receiver.status["traces"] = status
    receiver.retry_after = "1"
    telemetry = _configure(
        receiver, protocol, batch_size=10, export_retry_ms=30_000, export_timeout_ms=500
    )
    _emit(telemetry, 10)
    time.sleep(2.5)
    assert telemetry.stats()["traces.exported"] == 0
    del receiver.status["traces"]
    assert telemetry.force_flush(10.0) is True
    stats = telemetry.stats()
    assert stats["traces.exported"] == 10
    assert stats.get("traces.dropped.export_failed", 0) == 0
    assert sorted(receiver.spans) == sorted(f"s{i}" for i in range(10))
    telemetry.shutdown()


# -- accounting per exporter -----------------------------------------------------------------


def test_counters_are_kept_per_exporter_and_losses_are_reported_by_where(
    http_receiver: HttpReceiver, grpc_receiver: GrpcReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    http_receiver.status["traces"] = 404
    telemetry = _configure(
        grpc_receiver,
        "grpc",
        batch_size=10,
        exporters=[{"type": "otlp-http", "endpoint": http_receiver.endpoint}],
    )
    _emit(telemetry, 25)
    assert telemetry.force_flush(5.0) is False  # the otlp-http copies were refused
    stats = telemetry.stats()
    grpc, http = "exporters.otlp-grpc.", "exporters.otlp-http."
    assert stats[f"{grpc}traces.queued"] == stats[f"{http}traces.queued"] == 25
    assert stats["traces.queued"] == 50  # totals: the sum over exporters
    assert stats[f"{grpc}traces.exported"] == 25
    assert stats[f"{http}traces.exported"] == 0
    assert stats["traces.exported"] == 25
    # A batch per export worker may have been in flight when the first 404 came back.
    refused_batches = stats[f"{http}traces.dropped.export_failed"] // 10
    assert refused_batches in (1, 2), stats
    assert stats[f"{http}traces.dropped.export_failed"] == 10 * refused_batches
    assert stats[f"{http}traces.export_failed.404"] == 10 * refused_batches
    assert stats[f"{http}traces.dropped.refused"] == 25 - 10 * refused_batches
    assert stats[f"{http}traces.refused"] == 1
    assert f"{grpc}traces.refused" not in stats
    for prefix in (grpc, http):  # the sum holds per exporter too
        mine = {k[len(prefix) :]: v for k, v in stats.items() if k.startswith(prefix)}
        assert _balance(mine) == 0, mine
    assert _balance(stats) == 0
    assert len(grpc_receiver.spans) == 25

    # Shutdown with spans the refusing exporter drops: False, and the warning says where.
    _emit(telemetry, 5)
    with caplog.at_level(logging.WARNING, logger="sfumato"):
        assert telemetry.shutdown() is False
    warning = " ".join(r.getMessage() for r in caplog.records if "shutdown" in r.getMessage())
    assert "5 traces through otlp-http" in warning
    assert "otlp-grpc" not in warning
    assert "deadline" not in warning
    assert len(grpc_receiver.spans) == 30
    assert _balance(telemetry.stats()) == 0


def test_retry_after_as_an_http_date_is_read_in_utc() -> None:
    import email.utils

    from sfumato.plugins.exporters import _retry_after

    for when in (
        email.utils.formatdate(time.time() + 30),  # "... -0000"
        email.utils.formatdate(time.time() + 30, usegmt=True),  # "... GMT"
    ):
        delay = _retry_after(when)
        assert delay is not None and 25 <= delay <= 31, (when, delay)


def test_a_credential_provider_s_session_is_the_one_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """With OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER set, the SDK loads that
    provider's session (authentication): sfumato must not put a session of its own first."""
    import opentelemetry.exporter.otlp.proto.http.trace_exporter as sdk_traces
    import requests

    loaded: list[requests.Session] = []

    def load(*_: Any) -> requests.Session:
        loaded.append(requests.Session())
        return loaded[-1]

    monkeypatch.setenv("OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER", "the-provider")
    monkeypatch.setattr(sdk_traces, "_load_session_from_envvar", load)
    with sfumato.configure(
        None,
        backend="otlp",
        protocol="http/protobuf",
        otlp_endpoint="http://127.0.0.1:4318",
        logs={"enabled": False},
        metrics={"enabled": False},
    ) as telemetry:
        exporter = telemetry.exporter("otlp-http", "traces")
        assert len(loaded) == 1  # the SDK was given no session, so it loaded the provider's
        assert exporter.sfumato_failure() is None
