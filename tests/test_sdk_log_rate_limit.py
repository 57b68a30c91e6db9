"""The OpenTelemetry SDK's own warnings are rate-limited once sfumato is configured."""

from __future__ import annotations

import logging

import pytest
import sfumato
from sfumato._logging import RateLimitFilter


def test_repeated_message_is_held_back_then_summarised() -> None:
    limit = RateLimitFilter(interval=60)
    records = [
        logging.LogRecord("opentelemetry.x", logging.WARNING, "", 0, "retrying %s", ("a",), None)
        for _ in range(5)
    ]
    for i, record in enumerate(records):
        record.created = 1000.0 + i
    assert [limit.filter(r) for r in records] == [True, False, False, False, False]
    later = logging.LogRecord(
        "opentelemetry.x", logging.WARNING, "", 0, "retrying %s", ("a",), None
    )
    later.created = 1061.0
    assert limit.filter(later)
    assert "4 similar messages" in later.getMessage()
    other = logging.LogRecord("opentelemetry.x", logging.WARNING, "", 0, "another", (), None)
    other.created = 1001.0
    assert limit.filter(other)  # a different template is not held back


def test_exporter_warnings_are_limited_after_configure(caplog: pytest.LogCaptureFixture) -> None:
    # The OTLP exporter modules are imported by configure(); their loggers get the filter.
    with sfumato.configure(None, backend="otlp", protocol="http/protobuf", logs={"enabled": False}):
        logger = logging.getLogger("opentelemetry.exporter.otlp.proto.http.trace_exporter")
        with caplog.at_level(logging.WARNING):
            for _ in range(20):
                logger.warning("Transient error %s encountered while exporting span batch", "x")
    hits = [r for r in caplog.records if "Transient error" in r.getMessage()]
    assert len(hits) == 1
