"""sfumato's OTLP encoders write what the SDK's write: for generated spans and log records,
the bytes are the same as ``encode_spans(...).SerializeToString()`` (and decode, with the
official protobuf classes, to an equal message)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_spans
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState
from sfumato import _otel
from sfumato._otel import LogRecord, ReadableLogRecord, SeverityNumber
from sfumato._otel import encode_logs as sdk_logs
from sfumato.plugins.otlp_encoding import (
    encode_logs,
    encode_logs_json,
    encode_spans,
    encode_spans_json,
)

texts = st.text(max_size=12)
ints = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)
floats = st.floats(allow_nan=False)  # NaN never equals itself: compared apart below
scalars = st.one_of(texts, st.booleans(), ints, floats)
# What the SDK's attribute cleaning lets through: scalars and homogeneous sequences.
clean_values = st.one_of(
    scalars,
    st.lists(texts, max_size=3).map(tuple),
    st.lists(ints, max_size=3).map(tuple),
    st.lists(floats, max_size=3).map(tuple),
    st.lists(st.booleans(), max_size=3).map(tuple),
)
# What a ReadableSpan or a log body can carry beyond that: bytes, None, nesting.
any_values = st.recursive(
    st.one_of(scalars, st.binary(max_size=8), st.none()),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(texts, inner, max_size=3)),
    max_leaves=8,
)
attribute_maps = st.dictionaries(texts, clean_values, max_size=5)
ids64 = st.integers(min_value=1, max_value=(1 << 64) - 1)
ids128 = st.integers(min_value=1, max_value=(1 << 128) - 1)
trace_states = st.one_of(
    st.none(),
    st.just(TraceState()),
    st.just(TraceState([("ot", "th:8"), ("vendor", "x")])),
)
contexts = st.builds(
    lambda t, s, remote, flags, state: SpanContext(t, s, remote, TraceFlags(flags), state),
    ids128,
    ids64,
    st.booleans(),
    st.sampled_from([0, 1, 3]),
    trace_states,
)
resources = st.sampled_from(
    [
        Resource({"service.name": "a"}),
        Resource({"service.name": "a"}),  # equal to the first: grouped with it
        Resource({"service.name": "b", "n": 3}, schema_url="https://example.com/1"),
        Resource({}),
    ]
)
scopes = st.sampled_from(
    [
        None,
        InstrumentationScope("lib"),
        InstrumentationScope("lib", "1.0", "https://example.com/s", {"k": "v"}),
        InstrumentationScope(""),
    ]
)
statuses = st.sampled_from(
    [
        None,
        Status(StatusCode.UNSET),
        Status(StatusCode.OK),
        Status(StatusCode.ERROR),
        Status(StatusCode.ERROR, "boom ü"),
    ]
)
events = st.builds(
    lambda name, attributes, t: Event(name, attributes, t),
    texts,
    st.one_of(st.none(), attribute_maps),
    st.integers(min_value=1, max_value=(1 << 64) - 1),
)
links = st.builds(lambda c, a: Link(c, a), contexts, st.one_of(st.none(), attribute_maps))


@st.composite
def spans(draw: Any) -> ReadableSpan:
    start = draw(st.integers(min_value=0, max_value=(1 << 63)))
    return ReadableSpan(
        name=draw(texts),
        context=draw(contexts),
        parent=draw(st.one_of(st.none(), contexts)),
        resource=draw(resources),
        attributes=draw(st.one_of(attribute_maps, st.dictionaries(texts, any_values, max_size=4))),
        events=draw(st.lists(events, max_size=3)),
        links=draw(st.lists(links, max_size=2)),
        kind=draw(st.sampled_from(list(SpanKind))),
        status=draw(statuses),
        start_time=start,
        end_time=draw(st.one_of(st.none(), st.integers(min_value=start, max_value=1 << 64 - 1))),
        instrumentation_scope=draw(scopes),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(spans(), max_size=6))
def test_spans_encode_to_the_sdks_bytes(batch: list[ReadableSpan]) -> None:
    expected = sdk_spans(batch)
    ours = encode_spans(batch)
    assert ExportTraceServiceRequest.FromString(ours) == expected
    assert ours == expected.SerializeToString()


def test_the_values_the_wire_cannot_carry_are_left_out_as_the_sdk_leaves_them() -> None:
    span = ReadableSpan(
        name="s",
        context=SpanContext(1, 2, False),
        resource=Resource({}),
        attributes={"big": 1 << 70, "ok": 1, "obj": object(), "nan": math.nan},
        start_time=1,
        end_time=2,
    )
    expected = sdk_spans([span])
    decoded = ExportTraceServiceRequest.FromString(encode_spans([span]))
    keys = [kv.key for kv in decoded.resource_spans[0].scope_spans[0].spans[0].attributes]
    assert keys == ["ok", "nan"]
    assert keys == [kv.key for kv in expected.resource_spans[0].scope_spans[0].spans[0].attributes]
    assert math.isnan(
        decoded.resource_spans[0].scope_spans[0].spans[0].attributes[1].value.double_value
    )


def test_unicode_empty_huge_and_ten_thousand_attributes() -> None:
    attributes: dict[str, Any] = {f"k{i}": i for i in range(10_000)}
    attributes.update({"": "empty key", "empty": "", "ü→漢": "ü→漢 🙂", "huge": "x" * 1_000_000})
    span = ReadableSpan(
        name="漢字 " * 1000,
        context=SpanContext(1, 2, False),
        resource=Resource({"service.name": "ü"}),
        attributes=attributes,
        start_time=1,
        end_time=2,
    )
    assert encode_spans([span]) == sdk_spans([span]).SerializeToString()


def test_spans_of_sfumatos_tracer_encode_to_the_sdks_bytes() -> None:
    """Spans built by the fast path (its own span class and attribute container)."""
    exporter = InMemorySpanExporter()
    from sfumato._tracer import tracer_provider_class

    provider = tracer_provider_class()(resource=Resource({"service.name": "svc"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t", "2", attributes={"scope.k": 1})
    with tracer.start_as_current_span("root", kind=SpanKind.SERVER, attributes={"a": 1}) as root:
        root.add_event("e", {"x": [1, 2]})
        with tracer.start_as_current_span("child", links=[Link(root.get_span_context())]) as c:
            c.set_status(Status(StatusCode.ERROR, "no"))
            c.record_exception(ValueError("v"))
    provider.shutdown()
    batch = exporter.get_finished_spans()
    assert len(batch) == 2
    assert encode_spans(batch) == sdk_spans(batch).SerializeToString()


@pytest.mark.fast_path
def test_the_fast_field_reads_match_the_properties() -> None:
    span = ReadableSpan(
        name="s",
        context=SpanContext(1, 2, False),
        resource=Resource({}),
        attributes={"k": "v"},
        events=[Event("e")],
        start_time=1,
        end_time=2,
    )

    def plain(fields: tuple[Any, ...]) -> list[Any]:
        return [dict(f) if i == 6 else tuple(f) if i in (7, 8) else f for i, f in enumerate(fields)]

    assert plain(_otel.span_fields(span)) == plain(_otel._public_span_fields(span))


# -- log records --------------------------------------------------------------------------


@st.composite
def log_records(draw: Any) -> Any:
    record = LogRecord(
        timestamp=draw(st.one_of(st.none(), st.integers(min_value=1, max_value=1 << 63))),
        observed_timestamp=draw(st.integers(min_value=1, max_value=1 << 63)),
        trace_id=draw(st.one_of(st.just(0), ids128)),
        span_id=draw(st.one_of(st.just(0), ids64)),
        trace_flags=TraceFlags(draw(st.sampled_from([0, 1]))),
        severity_text=draw(st.one_of(st.none(), texts)),
        severity_number=draw(st.one_of(st.none(), st.sampled_from(list(SeverityNumber)))),
        body=draw(any_values),
        attributes=draw(st.one_of(st.none(), attribute_maps)),
        event_name=draw(st.one_of(st.none(), texts)),
    )
    return ReadableLogRecord(
        log_record=record, resource=draw(resources), instrumentation_scope=draw(scopes)
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(log_records(), max_size=6))
def test_log_records_encode_to_the_sdks_bytes(batch: list[Any]) -> None:
    expected = sdk_logs(batch)
    ours = encode_logs(batch)
    assert ExportLogsServiceRequest.FromString(ours) == expected
    assert ours == expected.SerializeToString()


# -- through a real collector -------------------------------------------------------------


@pytest.mark.server
def test_both_encoders_deliver_the_same_spans_and_logs_to_rotel(rotel: Any) -> None:
    """The same batch, exported by sfumato's encoder and by the SDK's (``encoder = "sdk"``),
    over OTLP/gRPC and OTLP/HTTP (gzip) to Rotel, arrives as the same messages, four times."""
    import logging
    import uuid

    import sfumato
    from receivers import wait_until

    service = f"svc-encoders-{uuid.uuid4().hex[:8]}"
    grpc = {"type": "otlp-grpc", "endpoint": rotel.grpc_endpoint, "insecure": True}
    http = {"type": "otlp-http", "endpoint": rotel.http_endpoint, "compression": "gzip"}
    exporters = [grpc, {**grpc, "encoder": "sdk"}, http, {**http, "encoder": "sdk"}]
    with sfumato.configure(
        None, service_name=service, backend="none", exporters=exporters, metrics={"enabled": False}
    ) as telemetry:
        tracer = telemetry.tracer("encoders")
        with tracer.start_as_current_span(
            "root ü", kind=SpanKind.SERVER, attributes={"n": -5, "f": 0.5, "b": True, "s": ""}
        ) as root:
            root.add_event("e", {"list": [1, 2], "texts": ["a", "漢"]})
            with tracer.start_as_current_span("child", links=[Link(root.get_span_context())]):
                logging.getLogger("encoders").warning("inside %s", "child")
            try:
                with tracer.start_as_current_span("failing"):
                    raise ValueError("boom")
            except ValueError:
                pass
        assert telemetry.force_flush(10)
        assert telemetry.stats()["traces.exported"] == 12  # 3 spans, by each exporter
        # sfumato's encoder where chosen (the default), the SDK's where asked for
        from sfumato._otel import GrpcBytes, HttpBytes

        assert isinstance(telemetry.exporter("otlp-grpc"), GrpcBytes)
        assert not isinstance(telemetry.exporter("otlp-grpc#2"), GrpcBytes)
        assert isinstance(telemetry.exporter("otlp-http"), HttpBytes)
        assert not isinstance(telemetry.exporter("otlp-http#2"), HttpBytes)

    def ours(items: list[Any]) -> list[Any]:
        return [item for r, item in items if r.get("service.name") == service]

    spans = wait_until(lambda: len(ours(rotel.sink.spans())) == 12 and ours(rotel.sink.spans()))
    by_id: dict[bytes, list[bytes]] = {}
    for span in spans:
        by_id.setdefault(span.span_id, []).append(span.SerializeToString())
    assert len(by_id) == 3
    for copies in by_id.values():
        assert len(copies) == 4 and len(set(copies)) == 1
    records = wait_until(
        lambda: len(ours(rotel.sink.log_records())) == 4 and ours(rotel.sink.log_records())
    )
    assert len({r.SerializeToString() for r in records}) == 1


# -- OTLP/JSON lines ----------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(spans(), max_size=6))
def test_span_json_lines_are_the_sdk_messages_lines(batch: list[ReadableSpan]) -> None:
    from sfumato.plugins.local.otlp_json import decode_line, to_line

    expected = sdk_spans(batch)
    line = encode_spans_json(batch)
    assert decode_line(line, "traces") == expected
    assert line == to_line(expected, "traces")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(log_records(), max_size=6))
def test_log_json_lines_are_the_sdk_messages_lines(batch: list[Any]) -> None:
    from sfumato.plugins.local.otlp_json import decode_line, to_line

    expected = sdk_logs(batch)
    line = encode_logs_json(batch)
    assert decode_line(line, "logs") == expected
    assert line == to_line(expected, "logs")


def test_the_http_byte_path_is_taken_only_where_the_sdk_exports_as_expected() -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from sfumato._otel import http_bytes_fit

    class Changed(OTLPSpanExporter):
        def export(self, spans: Any) -> Any:  # a later SDK's export, shaped otherwise
            return self._send(spans)  # type: ignore[attr-defined]

    assert http_bytes_fit(OTLPSpanExporter)
    assert not http_bytes_fit(Changed)


def test_zero_and_minus_zero_and_nan_are_not_mixed_up_by_the_cache() -> None:
    """The key/value cache is keyed by value, and 0.0 == -0.0: each keeps its own bytes."""
    from sfumato.plugins.local.otlp_json import to_line

    batch = [
        ReadableSpan(
            name="s",
            context=SpanContext(1, n + 1, False),
            resource=Resource({}),
            attributes={"z": value, "n": math.nan},
            start_time=1,
            end_time=2,
        )
        for n, value in enumerate((0.0, -0.0, 0.0, -0.0))
    ]
    assert encode_spans(batch) == sdk_spans(batch).SerializeToString()
    assert encode_spans_json(batch) == to_line(sdk_spans(batch), "traces")


def test_a_lone_surrogate_in_the_local_store_goes_the_sdks_way() -> None:
    """No UTF-8 form: the line is the SDK's (which leaves that attribute out), decodable."""
    from sfumato.plugins.local.otlp_json import decode_line, encode_spans_line, to_line

    span = ReadableSpan(
        name="s",
        context=SpanContext(1, 2, False),
        resource=Resource({}),
        attributes={"bad": "a\ud800b", "good": "ok"},
        start_time=1,
        end_time=2,
    )
    line = encode_spans_line([span])
    assert line == to_line(sdk_spans([span]), "traces")
    decoded = decode_line(line, "traces")
    keys = [kv.key for kv in decoded.resource_spans[0].scope_spans[0].spans[0].attributes]
    assert keys == ["good"]
