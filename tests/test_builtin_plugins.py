"""sfumato's first plugins end to end: backend ``stdout``, backend ``otlp`` (which exporter
per protocol), and exporter ``memory`` for all three signals. OTLP on the wire is covered by
test_otlp_export.py and test_rotel.py."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
import sfumato
from opentelemetry import metrics as metrics_api
from sfumato._loading import load_config


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("SFUMATO_", "OTEL_")):
            monkeypatch.delenv(name)
    yield
    running = sfumato.active()
    if running is not None:
        running.shutdown(timeout=1.0)


def _stdout_run(**overrides: object) -> str:
    code = f"""
        import logging
        from opentelemetry import metrics
        import sfumato

        t = sfumato.configure(service_name="printed-service", **{overrides!r})
        with t.tracer().start_as_current_span("printed-span"):
            logging.getLogger("app").warning("printed-log-line")
        metrics.get_meter("m").create_counter("printed_counter").add(2)
        t.shutdown()
        """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SFUMATO_", "OTEL_"))}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_stdout_backend_prints_all_three_signals() -> None:
    out = _stdout_run(backend="stdout")
    assert out.count('"name": "printed-span"') == 1
    assert '"body": "printed-log-line"' in out
    assert '"name": "printed_counter"' in out
    assert '"service.name": "printed-service"' in out


def test_stdout_backend_with_export_console_prints_each_span_once() -> None:
    out = _stdout_run(backend="stdout", export_console=True)
    assert out.count('"name": "printed-span"') == 1


@pytest.mark.parametrize(
    ("protocol", "exporter"), [("grpc", "otlp-grpc"), ("http/protobuf", "otlp-http")]
)
def test_otlp_backend_picks_the_exporter_for_the_protocol(protocol: str, exporter: str) -> None:
    plan = load_config(
        backend="otlp", protocol=protocol, otlp_endpoint="http://127.0.0.1:4317"
    ).plan
    assert [(node.name, set(node.signals)) for node in plan.exporters] == [
        (exporter, {"traces", "metrics", "logs"})
    ]
    assert plan.notices == []


def test_otlp_backend_carries_only_the_enabled_signals() -> None:
    plan = load_config(backend="otlp", metrics={"enabled": False}, logs={"enabled": False}).plan
    assert [set(node.signals) for node in plan.exporters] == [{"traces"}]


@pytest.mark.parametrize(
    ("protocol", "module"),
    [
        ("grpc", "opentelemetry.exporter.otlp.proto.grpc"),
        ("http/protobuf", "opentelemetry.exporter.otlp.proto.http"),
    ],
)
def test_otlp_backend_builds_the_sdk_exporters(protocol: str, module: str) -> None:
    with sfumato.configure(
        backend="otlp",
        protocol=protocol,
        otlp_endpoint="http://127.0.0.1:4999",
        shutdown_timeout_ms=500,
    ) as telemetry:
        name = "otlp-grpc" if protocol == "grpc" else "otlp-http"
        for signal in ("traces", "metrics", "logs"):
            built = telemetry.exporter(name, signal)
            # The SDK's exporter, or sfumato's subclass of it that learns the failure status.
            sdk = [c for c in type(built).__mro__ if c.__module__.startswith(module)]
            assert sdk, (signal, type(built))


def test_memory_exporter_keeps_spans_logs_and_metrics() -> None:
    with sfumato.configure(
        backend="none",
        exporters=[{"type": "memory"}],
    ) as telemetry:
        with telemetry.tracer().start_as_current_span("kept"):
            logging.getLogger("app.memory").warning("kept too")
        # Spans are exported on the caller's thread: visible at once.
        assert [s.name for s in telemetry.exporter("memory", "traces").get_finished_spans()] == [
            "kept"
        ]
        metrics_api.get_meter("test").create_counter("kept_total").add(3)
        assert telemetry.force_flush(5.0)
        logs = telemetry.exporter("memory", "logs")
        assert [r.log_record.body for r in logs.items] == ["kept too"]
        data = telemetry.exporter("memory", "metrics").get_metrics_data()
        points = {
            m.name: sum(p.value for p in m.data.data_points)
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        }
        assert points["kept_total"] == 3
        telemetry.exporter("memory", "traces").clear()
        assert telemetry.exporter("memory", "traces").get_finished_spans() == ()
