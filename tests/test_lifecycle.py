"""The Telemetry handle: context manager, flush, stats, logging bridge, console output,
one configure at a time, shutdown at exit, and a bounded shutdown with the backend down."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import sfumato
from loopback_receivers import HttpReceiver
from opentelemetry import trace as trace_api
from sfumato.plugin import BuildContext, Exporter
from sfumato.settings import Signal

# A shutdown may run over its budget by thread scheduling only, never by an export.
MARGIN_S = 0.3


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No stray SFUMATO_*/OTEL_* settings from the caller; no handle left running."""
    for name in list(os.environ):
        if name.startswith(("SFUMATO_", "OTEL_")):
            monkeypatch.delenv(name)
    yield
    running = sfumato.active()
    if running is not None:
        running.shutdown(timeout=1.0)


def _memory(**overrides: object) -> sfumato.Telemetry:
    """A handle whose spans and log records land in the in-memory exporter only."""
    settings: dict[str, object] = {
        "service_name": "lifecycle-test",
        "backend": "none",
        "exporters": [{"type": "memory"}],
        "metrics": {"enabled": False},
    }
    settings.update(overrides)
    return sfumato.configure(**settings)


def _closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


class Blackhole:
    """A TCP server that accepts connections and never answers."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.port: int = self.server.getsockname()[1]
        self.connections: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections.append(conn)

    def close(self) -> None:
        self.server.close()
        for conn in self.connections:
            conn.close()


@pytest.fixture
def blackhole() -> Iterator[Blackhole]:
    hole = Blackhole()
    yield hole
    hole.close()


# -- the handle ----------------------------------------------------------------------------


def test_handle_is_a_context_manager_that_installs_and_removes_the_providers() -> None:
    with _memory() as telemetry:
        assert isinstance(telemetry, sfumato.Telemetry)
        assert sfumato.active() is telemetry
        assert trace_api.get_tracer_provider() is telemetry.tracer_provider
        with trace_api.get_tracer("t").start_as_current_span("inside"):
            pass
        spans = telemetry.exporter("memory", "traces").get_finished_spans()
        assert [s.name for s in spans] == ["inside"]
        assert spans[0].resource.attributes["service.name"] == "lifecycle-test"
    assert sfumato.active() is None
    assert "shut down" in repr(telemetry)
    assert trace_api.get_tracer_provider() is not telemetry.tracer_provider


def test_stats_count_what_was_queued_and_exported() -> None:
    with _memory(logs={"enabled": False}) as telemetry:
        tracer = telemetry.tracer()
        for i in range(7):
            with tracer.start_as_current_span(f"s{i}"):
                pass
        stats = telemetry.stats()
    assert stats["traces.queued"] == 7
    assert stats["traces.exported"] == 7
    assert stats["traces.dropped.export_failed"] == 0


def test_unsampled_spans_are_not_counted() -> None:
    with _memory(sampling_rate=0.0) as telemetry:
        with telemetry.tracer().start_as_current_span("dropped by the sampler"):
            pass
        assert telemetry.exporter("memory", "traces").get_finished_spans() == ()
        assert telemetry.stats()["traces.queued"] == 0


def test_force_flush_exports_queued_log_records() -> None:
    # Log records always go through the export queue; a long batch delay keeps them there
    # until force_flush.
    with _memory(batch_timeout_ms=60_000) as telemetry:
        logs = telemetry.exporter("memory", "logs")
        logging.getLogger("app.flush").warning("queued until flushed")
        assert logs.items == ()
        assert telemetry.stats()["logs.in_queue"] == 1
        assert telemetry.force_flush(5.0) is True
        assert [r.log_record.body for r in logs.items] == ["queued until flushed"]
        assert telemetry.stats()["logs.exported"] == 1


def test_logging_bridge_carries_the_active_trace_and_span_ids() -> None:
    with _memory() as telemetry:
        app = logging.getLogger("app.bridge")
        with telemetry.tracer().start_as_current_span("work") as span:
            app.warning("inside %s", "work", extra={"narrative": "act-1"})
        app.error("outside")
        telemetry.force_flush(5.0)
        records = {
            r.log_record.body: r.log_record for r in telemetry.exporter("memory", "logs").items
        }
    inside, outside = records["inside work"], records["outside"]
    ctx = span.get_span_context()
    assert inside.trace_id == ctx.trace_id
    assert inside.span_id == ctx.span_id
    assert inside.severity_text == "WARN"
    assert inside.attributes is not None and inside.attributes["narrative"] == "act-1"
    assert outside.trace_id in (0, None)
    assert outside.severity_text == "ERROR"


def test_logging_bridge_is_removed_at_shutdown() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    telemetry = _memory()
    assert len(root.handlers) == len(before) + 1
    telemetry.shutdown()
    assert root.handlers == before


def test_logs_disabled_installs_no_bridge() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    with _memory(logs={"enabled": False}) as telemetry:
        assert root.handlers == before
        assert telemetry.logger_provider is None


# -- one configure at a time -------------------------------------------------------------------


def test_second_configure_while_active_raises_a_clear_error() -> None:
    first = _memory()
    with pytest.raises(RuntimeError, match=r"already configured.*shutdown\(\)"):
        _memory()
    # The running handle is untouched by the refused call.
    assert sfumato.active() is first
    with first.tracer().start_as_current_span("still running"):
        pass
    assert [s.name for s in first.exporter("memory", "traces").get_finished_spans()] == [
        "still running"
    ]
    first.shutdown()


def test_configure_again_after_shutdown_installs_the_new_providers() -> None:
    first = _memory()
    first.shutdown()
    assert first.shutdown() is True  # a second shutdown is a no-op
    second = _memory(service_name="second")
    try:
        assert sfumato.active() is second
        assert trace_api.get_tracer_provider() is second.tracer_provider
        with trace_api.get_tracer("t").start_as_current_span("after"):
            pass
        spans = second.exporter("memory", "traces").get_finished_spans()
        assert [s.resource.attributes["service.name"] for s in spans] == ["second"]
        assert first.exporter("memory", "traces").get_finished_spans() == ()
    finally:
        second.shutdown()


def test_a_file_without_telemetry_table_gives_a_disabled_handle(tmp_path: Path) -> None:
    config = tmp_path / "app.toml"
    config.write_text("[server]\nport = 8080\n")
    with sfumato.configure(config) as telemetry:
        assert telemetry.enabled is False
        assert telemetry.force_flush(0.1) is True
    assert telemetry.shutdown() is True


# -- console output and exit, in a fresh interpreter ---------------------------------------------


def _run(code: str, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SFUMATO_", "OTEL_"))}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@pytest.mark.parametrize("console", [True, False])
def test_export_console_prints_spans(console: bool) -> None:
    # The otlp backend (to a closed port) prints nothing itself: any span on stdout comes
    # from export_console.
    result = _run(
        f"""
        import sfumato
        t = sfumato.configure(
            backend="otlp", protocol="http/protobuf",
            otlp_endpoint="http://127.0.0.1:{_closed_port()}",
            export_console={console}, shutdown_timeout_ms=1000,
            metrics={{"enabled": False}}, logs={{"enabled": False}},
        )
        with t.tracer().start_as_current_span("printed-span"):
            pass
        t.shutdown()
        """
    )
    assert result.returncode == 0, result.stderr
    assert ('"name": "printed-span"' in result.stdout) is console


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_shutdown_runs_at_exit_within_the_timeout(protocol: str, blackhole: Blackhole) -> None:
    timeout_ms = 1000
    result = _run(
        f"""
        import atexit, json, time
        import sfumato

        def report():
            # Registered before configure(), so it runs after sfumato's exit handler.
            print(json.dumps({{"exit_started": started[0], "done": time.monotonic(),
                              "closed": t._closed, "stats": t.stats()}}), flush=True)

        started = [0.0]
        atexit.register(report)
        t = sfumato.configure(
            backend="otlp", protocol="{protocol}", otlp_endpoint="http://127.0.0.1:{blackhole.port}",
            insecure=True, shutdown_timeout_ms={timeout_ms}, batch_timeout_ms=60000,
            metrics={{"enabled": False}}, logs={{"enabled": False}},
        )
        for i in range(50):
            with t.tracer().start_as_current_span(f"s{{i}}"):
                pass
        atexit.register(lambda: started.__setitem__(0, time.monotonic()))
        # no shutdown(): the interpreter exits with 50 spans queued
        """
    )
    end = time.monotonic()
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["closed"] is True, "sfumato's exit handler did not shut down"
    took = report["done"] - report["exit_started"]
    assert took < timeout_ms / 1000 + MARGIN_S, f"exit shutdown took {took:.2f}s"
    assert end - report["done"] < 5.0, "the interpreter hung after sfumato's shutdown"
    stats = report["stats"]
    assert stats["traces.queued"] == 50
    assert stats["traces.exported"] == 0
    assert stats["traces.dropped.shutdown"] + stats["traces.dropped.export_failed"] == 50


# -- bounded shutdown with the backend down ------------------------------------------------------


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
@pytest.mark.parametrize("failure", ["refused", "blackhole"])
def test_shutdown_returns_within_timeout_when_backend_is_unreachable(
    protocol: str, failure: str, blackhole: Blackhole
) -> None:
    port = _closed_port() if failure == "refused" else blackhole.port
    timeout_ms = 1000
    telemetry = sfumato.configure(
        service_name="unreachable",
        backend="otlp",
        protocol=protocol,
        otlp_endpoint=f"http://127.0.0.1:{port}",
        insecure=True,
        shutdown_timeout_ms=timeout_ms,
        export_timeout_ms=30_000,  # an export alone would outlast the shutdown budget
        batch_timeout_ms=60_000,  # spans stay queued until shutdown
        metrics={"enabled": False},
        logs={"enabled": False},
    )
    tracer = telemetry.tracer()
    for i in range(100):
        with tracer.start_as_current_span(f"s{i}"):
            pass
    assert telemetry.stats()["traces.in_queue"] == 100

    start = time.monotonic()
    telemetry.shutdown()
    took = time.monotonic() - start

    assert took < timeout_ms / 1000 + MARGIN_S, f"shutdown took {took:.2f}s"
    stats = telemetry.stats()
    assert stats["traces.exported"] == 0
    # Every span is accounted for: failed in an export, or given up at the deadline.
    assert stats["traces.dropped.export_failed"] + stats["traces.dropped.shutdown"] == 100
    assert sfumato.active() is None


def test_force_flush_returns_false_within_its_timeout_when_backend_is_unreachable(
    blackhole: Blackhole,
) -> None:
    telemetry = sfumato.configure(
        backend="otlp",
        protocol="http/protobuf",
        otlp_endpoint=f"http://127.0.0.1:{blackhole.port}",
        shutdown_timeout_ms=500,
        batch_timeout_ms=60_000,
        metrics={"enabled": False},
        logs={"enabled": False},
    )
    with telemetry.tracer().start_as_current_span("stuck"):
        pass
    start = time.monotonic()
    assert telemetry.force_flush(0.5) is False
    assert time.monotonic() - start < 0.5 + MARGIN_S
    start = time.monotonic()
    telemetry.shutdown()
    assert time.monotonic() - start < 0.5 + MARGIN_S


def test_a_dead_backend_does_not_use_up_another_exporter_s_shutdown_budget(
    blackhole: Blackhole, http_receiver: HttpReceiver
) -> None:
    # Traces go to a backend that never answers; logs to a healthy one that takes 0.3 s a
    # request. Each queue drains against the same deadline, so the healthy one still sends
    # everything instead of getting what the dead one left of the budget (nothing).
    http_receiver.delay["logs"] = (0.3, 0.3)
    telemetry = sfumato.configure(
        None,
        backend="none",
        exporters=[
            {
                "type": "otlp-grpc",
                "endpoint": f"http://127.0.0.1:{blackhole.port}",
                "signals": ["traces"],
            },
            {"type": "otlp-http", "endpoint": http_receiver.endpoint, "signals": ["logs"]},
        ],
        export_timeout_ms=30_000,
        export_retry_ms=30_000,
        shutdown_timeout_ms=2_000,
        batch_timeout_ms=60_000,
    )
    tracer = telemetry.tracer()
    for _ in range(10):
        with tracer.start_as_current_span("to-nowhere"):
            pass
    app = logging.getLogger("dead-backend-test")
    for i in range(10):
        app.warning("kept %d", i)
    started = time.monotonic()
    telemetry.shutdown()
    assert time.monotonic() - started < 3.5
    stats = telemetry.stats()
    assert stats["logs.exported"] == 10 and stats["logs.dropped.shutdown"] == 0, stats
    assert http_receiver.log_records == 10


class _Stuck:
    """An exporter whose export hangs until shut down, and whose shutdown takes 10 s."""

    def __init__(self) -> None:
        self.released = threading.Event()

    def export(self, batch: object) -> None:
        self.released.wait(10)

    def shutdown(self) -> None:
        time.sleep(10)
        self.released.set()


class _Counting:
    def __init__(self) -> None:
        self.spans = 0

    def export(self, batch: list[object]) -> None:
        self.spans += len(batch)

    def shutdown(self) -> None:
        pass


class StuckExporter(Exporter):
    signals: ClassVar[frozenset[Signal]] = frozenset({"traces"})

    def create(self, signal: Signal, options: Any, context: BuildContext) -> Any:
        return _Stuck()


class CountingExporter(Exporter):
    signals: ClassVar[frozenset[Signal]] = frozenset({"traces"})

    def create(self, signal: Signal, options: Any, context: BuildContext) -> Any:
        return _Counting()


def test_an_exporter_stuck_in_shutdown_does_not_eat_the_others_budget() -> None:
    stuck, counting = f"{__name__}:StuckExporter", f"{__name__}:CountingExporter"
    telemetry = sfumato.configure(
        None,
        backend="none",
        logs={"enabled": False},
        metrics={"enabled": False},
        exporters=[{"type": stuck}, {"type": counting}],
        batch_size=10,
        batch_timeout_ms=60_000,
        shutdown_timeout_ms=1500,
    )
    tracer = telemetry.tracer()
    for i in range(25):  # two full batches, and five that wait for shutdown
        with tracer.start_as_current_span(f"s{i}"):
            pass
    start = time.monotonic()
    assert telemetry.shutdown() is False  # the stuck one lost its spans
    assert time.monotonic() - start < 1.5 + 0.5
    assert telemetry.exporter(counting, "traces").spans == 25
    stats = telemetry.stats()
    assert stats[f"exporters.{counting}.traces.exported"] == 25
