"""A real OTLP receiver (Rotel) accepts the store's lines as they are: each line posted as an
OTLP/HTTP JSON request arrives with the same trace ids, names and service."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import pytest
from local_store_support import local_exporter
from opentelemetry import trace as trace_api
from opentelemetry._logs import SeverityNumber
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from receivers import wait_until
from sfumato.plugins.local.files import list_files

pytestmark = pytest.mark.server


def _post(url: str, body: bytes) -> int:
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return int(response.status)


def test_store_lines_replay_into_a_real_otlp_receiver(tmp_path: Path, rotel: Any) -> None:
    resource = Resource.create({"service.name": "replayed"})
    tp = TracerProvider(resource=resource)
    tp.add_span_processor(SimpleSpanProcessor(local_exporter(tmp_path, "traces")))
    tracer = tp.get_tracer("replay")
    with (
        tracer.start_as_current_span("parent") as parent,
        tracer.start_as_current_span("child", attributes={"k": "v"}),
    ):
        pass
    lp = LoggerProvider(resource=resource)
    lp.add_log_record_processor(SimpleLogRecordProcessor(local_exporter(tmp_path, "logs")))
    with trace_api.use_span(parent, end_on_exit=False):
        lp.get_logger("replay").emit(severity_number=SeverityNumber.INFO, body="logged")
    reader = PeriodicExportingMetricReader(
        local_exporter(tmp_path, "metrics"), export_interval_millis=3_600_000
    )
    mp = MeterProvider(metric_readers=[reader], resource=resource)
    # A float counter: Rotel's JSON decoding (the opentelemetry-proto crate's serde support)
    # drops a string-encoded asInt, which OTLP/JSON mandates; doubles decode correctly there,
    # and integer points are checked by the protobuf round-trip tests instead.
    mp.get_meter("replay").create_counter("replayed.seconds").add(2.5)
    mp.shutdown()  # the reader's last collection writes metrics.jsonl
    tp.shutdown()
    lp.shutdown()

    for signal in ("traces", "metrics", "logs"):
        files = list_files(tmp_path, signal)
        assert files, signal
        for store_file in files:
            for line in store_file.path.read_bytes().splitlines():
                assert _post(f"{rotel.http_endpoint}/v1/{signal}", line) == 200

    sink = rotel.sink
    trace_id = parent.get_span_context().trace_id.to_bytes(16, "big")
    spans = wait_until(lambda: len(sink.spans()) >= 2 and sink.spans())
    assert sorted(s.name for _, s in spans) == ["child", "parent"]
    assert all(r["service.name"] == "replayed" and s.trace_id == trace_id for r, s in spans)
    child = next(s for _, s in spans if s.name == "child")
    assert child.parent_span_id == parent.get_span_context().span_id.to_bytes(8, "big")
    records = wait_until(lambda: sink.log_records())
    assert [(r.body.string_value, r.trace_id) for _, r in records] == [("logged", trace_id)]
    points = wait_until(lambda: sink.metric_points())
    assert [(r["service.name"], name, m.sum.data_points[0].as_double) for r, name, m in points] == [
        ("replayed", "replayed.seconds", 2.5)
    ]
