"""Every OTLP-based backend preset, pointed at a real Rotel, over gRPC and over HTTP.

Rotel forwards what it accepted to a sink in this process (see ``receivers.py``); the tests
read back span names, attributes, ``service.name``, trace ids, metric values and log records.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

import pytest
import sfumato
from receivers import RotelServer, attributes, wait_until
from sfumato import metrics

pytestmark = pytest.mark.server

# (id, backend, protocol, endpoint goes to, backend_options, environment, signals it takes)
PRESETS: list[tuple[str, str, str, str, dict[str, Any], dict[str, str], set[str]]] = [
    ("otlp-grpc", "otlp", "grpc", "endpoint", {}, {}, {"traces", "metrics", "logs"}),
    ("otlp-http", "otlp", "http/protobuf", "endpoint", {}, {}, {"traces", "metrics", "logs"}),
    ("jaeger-grpc", "jaeger", "grpc", "endpoint", {}, {}, {"traces"}),
    ("jaeger-http", "jaeger", "http/protobuf", "endpoint", {}, {}, {"traces"}),
    ("signoz-grpc", "signoz", "grpc", "endpoint", {}, {}, {"traces", "metrics", "logs"}),
    ("signoz-http", "signoz", "http/protobuf", "option", {}, {}, {"traces", "metrics", "logs"}),
    (
        "grafana-cloud-http",
        "grafana-cloud",
        "http/protobuf",
        "option",
        {},
        {"GRAFANA_CLOUD_INSTANCE_ID": "123", "GRAFANA_CLOUD_API_KEY": "glc-test"},
        {"traces", "metrics", "logs"},
    ),
    (
        "honeycomb-grpc",
        "honeycomb",
        "grpc",
        "option",
        {"dataset": "m"},
        {"HONEYCOMB_API_KEY": "hc-test"},
        {"traces", "metrics", "logs"},
    ),
    (
        "honeycomb-http",
        "honeycomb",
        "http/protobuf",
        "endpoint",
        {},
        {"HONEYCOMB_API_KEY": "hc-test"},
        {"traces", "metrics", "logs"},
    ),
]


@pytest.mark.parametrize(
    ("backend", "protocol", "target", "options", "environment", "takes"),
    [pytest.param(*case[1:], id=case[0]) for case in PRESETS],
)
def test_backend_preset_reaches_rotel(
    rotel: RotelServer,
    monkeypatch: pytest.MonkeyPatch,
    backend: str,
    protocol: str,
    target: str,
    options: dict[str, Any],
    environment: dict[str, str],
    takes: set[str],
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    endpoint = rotel.grpc_endpoint if protocol == "grpc" else rotel.http_endpoint
    service = f"svc-{backend}-{uuid.uuid4().hex[:8]}"
    config: dict[str, Any] = {"service_name": service, "backend": backend, "protocol": protocol}
    if target == "option":
        config["backend_options"] = {**options, "endpoint": endpoint}
    else:
        config["backend_options"] = options
        config["otlp_endpoint"] = endpoint

    with sfumato.configure(None, **config) as telemetry:
        with telemetry.tracer("tests").start_as_current_span(
            "narrative.run", attributes={"narrative.type": "greeting", "acts": 3}
        ) as span:
            trace_id = span.get_span_context().trace_id
            span_id = span.get_span_context().span_id
            logging.getLogger("bot.narrative").warning("act finished: %s", "greet")
        metrics.counter("narratives.started", unit="1").add(3, {"narrative.type": "greeting"})
        assert telemetry.force_flush(10)
        assert telemetry.stats().get("traces.exported") == 1

    sink = rotel.sink
    spans = wait_until(
        lambda: [(r, s) for r, s in sink.spans() if r.get("service.name") == service]
    )
    assert len(spans) == 1
    _, received = spans[0]
    assert received.name == "narrative.run"
    assert int.from_bytes(received.trace_id, "big") == trace_id
    assert int.from_bytes(received.span_id, "big") == span_id
    received_attributes = attributes(received.attributes)
    assert received_attributes["narrative.type"] == "greeting"
    assert received_attributes["acts"] == 3

    def ours(items: list[Any]) -> list[Any]:
        return [item for item in items if item[0].get("service.name") == service]

    if "metrics" in takes:
        points = wait_until(
            lambda: [m for _, name, m in ours(sink.metric_points()) if name == "narratives.started"]
        )
        assert points, "the counter did not arrive"
        [point] = points[-1].sum.data_points
        assert point.as_int == 3
        assert attributes(point.attributes) == {"narrative.type": "greeting"}
    if "logs" in takes:
        records = wait_until(lambda: ours(sink.log_records()))
        assert [r.body.string_value for _, r in records] == ["act finished: greet"]
        record = records[0][1]
        assert int.from_bytes(record.trace_id, "big") == trace_id
        assert int.from_bytes(record.span_id, "big") == span_id
        assert record.severity_text == "WARN"
    if takes == {"traces"}:
        # Switched off, not merely late: give Rotel the time it took for the span, twice.
        wait_until(lambda: ours(sink.metric_points()) or ours(sink.log_records()), timeout=0.5)
        assert ours(sink.metric_points()) == []
        assert ours(sink.log_records()) == []
        assert any("switched off" in n for n in telemetry.notices)


def test_extra_exporters_beside_the_backend(
    rotel: RotelServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """``[[telemetry.exporters]]`` adds console beside signoz: both get the span."""
    service = f"svc-extra-{uuid.uuid4().hex[:8]}"
    with sfumato.configure(
        None,
        service_name=service,
        backend="signoz",
        otlp_endpoint=rotel.grpc_endpoint,
        exporters=[{"type": "console", "signals": ["traces"]}],
        metrics={"enabled": False},
        logs={"enabled": False},
    ) as telemetry:
        with telemetry.tracer().start_as_current_span("beside"):
            pass
        assert telemetry.force_flush(10)
    assert '"name": "beside"' in capsys.readouterr().out
    spans = wait_until(
        lambda: [s for r, s in rotel.sink.spans() if r.get("service.name") == service]
    )
    assert [s.name for s in spans] == ["beside"]
