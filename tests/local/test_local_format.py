"""The local store writes OTLP/JSON lines that parse back into the exact export requests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf.json_format import Parse
from local_store_support import context, local_exporter, provider
from opentelemetry import trace as trace_api
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags
from sfumato.plugins.local.otlp_json import decode_line


def _spans(tmp_path: Path) -> list:
    """A few spans with events, links, attributes of every type and a remote parent."""
    memory = InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create({"service.name": "fmt"}))
    tp.add_span_processor(SimpleSpanProcessor(memory))
    tracer = tp.get_tracer("fmt.scope", "1.2")
    remote = SpanContext(
        0x0AF7651916CD43DD8448EB211C80319C,
        0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=TraceFlags(1),
    )
    with tracer.start_as_current_span(
        "server",
        context=trace_api.set_span_in_context(NonRecordingSpan(remote)),
        kind=trace_api.SpanKind.SERVER,
        attributes={"s": "é ü 𝄞", "i": 7, "f": 0.5, "b": True, "l": ["x", "y"], "n": [1, 2]},
    ) as server:
        with tracer.start_as_current_span(
            "client",
            kind=trace_api.SpanKind.CLIENT,
            links=[trace_api.Link(remote, {"why": "batch"})],
        ) as client:
            client.add_event("retry", {"attempt": 2})
            client.set_status(Status(StatusCode.ERROR, "upstream 503"))
        server.set_attribute("bytes", b"\x00\xff")
    tp.shutdown()
    return list(memory.get_finished_spans())


def test_span_line_round_trips_into_the_same_export_request(tmp_path: Path) -> None:
    spans = _spans(tmp_path)
    exporter = local_exporter(tmp_path)
    exporter.export(spans)
    [line] = (tmp_path / "traces.jsonl").read_text(encoding="utf-8").splitlines()
    assert decode_line(line, "traces") == encode_spans(spans)


def test_span_line_follows_the_otlp_json_rules(tmp_path: Path) -> None:
    spans = _spans(tmp_path)
    local_exporter(tmp_path).export(spans)
    tree = json.loads((tmp_path / "traces.jsonl").read_text(encoding="utf-8"))
    assert set(tree) == {"resourceSpans"}
    scope_spans = tree["resourceSpans"][0]["scopeSpans"][0]
    assert scope_spans["scope"] == {"name": "fmt.scope", "version": "1.2"}
    by_name = {s["name"]: s for s in scope_spans["spans"]}
    client, server = by_name["client"], by_name["server"]
    # Ids are lowercase hex, not base64.
    assert server["traceId"] == "0af7651916cd43dd8448eb211c80319c"
    assert server["parentSpanId"] == "00f067aa0ba902b7"
    assert client["spanId"] == format(spans[0].context.span_id, "016x")
    assert client["links"][0]["spanId"] == "00f067aa0ba902b7"
    # Enums are integers; field names are camelCase; 64-bit integers are decimal strings.
    assert server["kind"] == 2 and client["kind"] == 3
    assert client["status"] == {"code": 2, "message": "upstream 503"}
    assert isinstance(server["startTimeUnixNano"], str) and server["startTimeUnixNano"].isdigit()
    assert "start_time_unix_nano" not in server
    attrs = {a["key"]: a["value"] for a in server["attributes"]}
    assert attrs["s"] == {"stringValue": "é ü 𝄞"}
    assert attrs["i"] == {"intValue": "7"}
    assert attrs["bytes"] == {"bytesValue": "AP8="}  # other bytes stay base64, as the spec says


def test_lines_parse_as_protobuf_json_once_ids_are_bytes_again(tmp_path: Path) -> None:
    """json_format.Parse reads the line when the hex ids are given back as base64, which is
    all that separates OTLP/JSON from protobuf's own mapping."""
    import base64

    spans = _spans(tmp_path)
    local_exporter(tmp_path).export(spans)
    text = (tmp_path / "traces.jsonl").read_text(encoding="utf-8")
    for key in ("traceId", "spanId", "parentSpanId"):
        text = _rewrite_ids(text, key, lambda h: base64.b64encode(bytes.fromhex(h)).decode())
    message = Parse(text, ExportTraceServiceRequest())
    assert message == encode_spans(spans)


def _rewrite_ids(text: str, key: str, convert) -> str:  # type: ignore[no-untyped-def]
    import re

    return re.sub(rf'"{key}":"([0-9a-f]+)"', lambda m: f'"{key}":"{convert(m.group(1))}"', text)


def test_metric_line_round_trips(tmp_path: Path) -> None:
    reader = InMemoryMetricReader()
    mp = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": "m"}))
    meter = mp.get_meter("meter")
    tp = TracerProvider()
    with tp.get_tracer("t").start_as_current_span("traced") as span:  # exemplars carry its ids
        meter.create_counter("requests", unit="1").add(5, {"route": "/a"})
    meter.create_histogram("latency", unit="ms").record(12.5)
    meter.create_up_down_counter("inflight").add(-2)
    data = reader.get_metrics_data()
    exporter = local_exporter(tmp_path, "metrics")
    assert exporter.export(data).name == "SUCCESS"
    [line] = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert decode_line(line, "metrics") == encode_metrics(data)
    tree = json.loads(line)
    metrics = {m["name"]: m for m in tree["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]}
    assert metrics["requests"]["sum"]["aggregationTemporality"] == 2  # CUMULATIVE, as an integer
    assert metrics["requests"]["sum"]["isMonotonic"] is True
    [exemplar] = metrics["requests"]["sum"]["dataPoints"][0]["exemplars"]
    assert exemplar["traceId"] == format(span.get_span_context().trace_id, "032x")
    assert exemplar["spanId"] == format(span.get_span_context().span_id, "016x")
    mp.shutdown()


def test_log_line_round_trips_with_hex_trace_context(tmp_path: Path) -> None:
    memory = InMemoryLogRecordExporter()
    lp = LoggerProvider(resource=Resource.create({"service.name": "l"}))
    lp.add_log_record_processor(SimpleLogRecordProcessor(memory))
    tp = TracerProvider()
    with tp.get_tracer("t").start_as_current_span("in-span") as span:
        lp.get_logger("app").emit(
            severity_number=SeverityNumber.WARN,
            severity_text="WARN",
            body="disk /var full",
            attributes={"path": "/var"},
        )
    records = list(memory.get_finished_logs())
    exporter = local_exporter(tmp_path, "logs")
    exporter.export(records)
    [line] = (tmp_path / "logs.jsonl").read_text().splitlines()
    assert decode_line(line, "logs") == encode_logs(records)
    record = json.loads(line)["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    assert record["traceId"] == format(span.get_span_context().trace_id, "032x")
    assert record["spanId"] == format(span.get_span_context().span_id, "016x")
    assert record["severityNumber"] == 13 and record["body"] == {"stringValue": "disk /var full"}
    lp.shutdown()


def test_one_line_per_export_call_in_order(tmp_path: Path) -> None:
    tp = provider(tmp_path)
    tracer = tp.get_tracer("t")
    for i in range(5):
        tracer.start_span(f"s{i}").end()
    lines = (tmp_path / "traces.jsonl").read_text().splitlines()
    names = [decode_line(x, "traces").resource_spans[0].scope_spans[0].spans[0].name for x in lines]
    assert names == ["s0", "s1", "s2", "s3", "s4"]


def test_bad_line_is_refused_by_decode(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        decode_line('{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}', "traces")
    with pytest.raises(ValueError):
        decode_line("{not json", "traces")
    assert context().notices == []
