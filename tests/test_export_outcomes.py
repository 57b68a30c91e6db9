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
DROP_REASONS = ("queue_full", "shutdown", "export_failed", "rejected")


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
