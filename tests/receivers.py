"""Real receivers for tests: Rotel (OTLP over gRPC and HTTP) and Prometheus.

Rotel is started on free loopback ports and forwards everything it receives, over OTLP/gRPC,
to a sink running inside the test process, so a test reads back exactly what Rotel accepted
as protobuf messages. Prometheus is started with a temporary config scraping sfumato's
endpoint and is asked through its HTTP API.

A missing binary fails the test under CI (``CI`` set to a true value) and skips it otherwise;
``missing`` applies the same rule to anything else a test needs of the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest

__all__ = [
    "OtlpSink",
    "PrometheusServer",
    "RotelServer",
    "free_port",
    "missing",
    "prometheus_binary",
    "redis_binary",
    "redis_server",
    "require",
    "rotel_binary",
    "wait_until",
]


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing(what: str) -> NoReturn:
    """``what`` this test needs is not on this machine: fail under CI (where ``.ci/run``
    installs everything the tests need), skip elsewhere."""
    message = f"{what} not found"
    if _in_ci():
        pytest.fail(f"{message}; it is required under CI", pytrace=False)
    pytest.skip(message)


def require(path: str | None, what: str) -> str:
    """``path`` if it is an executable; else ``missing(what)``."""
    if path and os.path.isfile(path) and os.access(path, os.X_OK):
        return path
    missing(what)


def rotel_binary() -> str | None:
    """The ``rotel-agent`` shipped inside the ``rotel`` wheel (or ``$ROTEL_AGENT``)."""
    if os.environ.get("ROTEL_AGENT"):
        return os.environ["ROTEL_AGENT"]
    try:
        import rotel
    except ImportError:
        return None
    return str(Path(rotel.__file__).parent / "rotel-agent")


def prometheus_binary() -> str | None:
    """Debian's ``prometheus`` (``/usr/bin/prometheus``), or ``$PROMETHEUS`` or PATH's."""
    return os.environ.get("PROMETHEUS") or shutil.which("prometheus")


def redis_binary() -> str | None:
    """Debian's ``redis-server``, or ``$REDIS_SERVER`` or PATH's."""
    return os.environ.get("REDIS_SERVER") or shutil.which("redis-server")


@contextmanager
def redis_server() -> Iterator[int]:
    """A ``redis-server`` on a free loopback port, nothing persisted; yields the port."""
    binary = require(redis_binary(), "redis-server (apt-get install redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_port(port, process)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy; return that, or the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            out = process.stdout.read().decode(errors="replace") if process.stdout else ""
            raise RuntimeError(f"receiver exited with {process.returncode}: {out[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"receiver did not listen on port {port} within {timeout}s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


# -- the in-process OTLP sink ----------------------------------------------------------------


@dataclass
class OtlpSink:
    """An OTLP/gRPC server keeping every export request it is sent."""

    traces: list[Any] = field(default_factory=list)
    metrics: list[Any] = field(default_factory=list)
    logs: list[Any] = field(default_factory=list)
    port: int = 0

    def start(self) -> OtlpSink:
        import grpc
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as lp
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc as lg
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as mp
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc as mg
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as tp
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as tg

        sink = self
        lock = threading.Lock()

        class Traces(tg.TraceServiceServicer):  # type: ignore[misc]
            def Export(self, request: Any, context: Any) -> Any:
                with lock:
                    sink.traces.append(request)
                return tp.ExportTraceServiceResponse()

        class Metrics(mg.MetricsServiceServicer):  # type: ignore[misc]
            def Export(self, request: Any, context: Any) -> Any:
                with lock:
                    sink.metrics.append(request)
                return mp.ExportMetricsServiceResponse()

        class Logs(lg.LogsServiceServicer):  # type: ignore[misc]
            def Export(self, request: Any, context: Any) -> Any:
                with lock:
                    sink.logs.append(request)
                return lp.ExportLogsServiceResponse()

        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        tg.add_TraceServiceServicer_to_server(Traces(), self._server)
        mg.add_MetricsServiceServicer_to_server(Metrics(), self._server)
        lg.add_LogsServiceServicer_to_server(Logs(), self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(grace=None)

    # What arrived, flattened: (resource attributes, item) pairs.

    def spans(self) -> list[tuple[dict[str, Any], Any]]:
        return [
            (_attributes(rs.resource.attributes), span)
            for request in list(self.traces)
            for rs in request.resource_spans
            for ss in rs.scope_spans
            for span in ss.spans
        ]

    def metric_points(self) -> list[tuple[dict[str, Any], str, Any]]:
        """(resource attributes, metric name, the Metric message)."""
        return [
            (_attributes(rm.resource.attributes), metric.name, metric)
            for request in list(self.metrics)
            for rm in request.resource_metrics
            for sm in rm.scope_metrics
            for metric in sm.metrics
        ]

    def log_records(self) -> list[tuple[dict[str, Any], Any]]:
        return [
            (_attributes(rl.resource.attributes), record)
            for request in list(self.logs)
            for rl in request.resource_logs
            for sl in rl.scope_logs
            for record in sl.log_records
        ]


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs}


attributes = _attributes


# -- Rotel -----------------------------------------------------------------------------------


@dataclass
class RotelServer:
    """A running ``rotel-agent`` with its OTLP receivers on loopback, forwarding to ``sink``."""

    process: subprocess.Popen[bytes]
    grpc_port: int
    http_port: int
    sink: OtlpSink

    @property
    def grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    @property
    def http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @classmethod
    def start(cls, binary: str, workdir: Path) -> RotelServer:
        sink = OtlpSink().start()
        grpc_port, http_port = free_port(), free_port()
        command = [
            binary,
            "start",
            "--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}",
            "--otlp-http-endpoint", f"127.0.0.1:{http_port}",
            "--exporter", "otlp",
            "--otlp-exporter-endpoint", f"http://127.0.0.1:{sink.port}",
            "--otlp-exporter-protocol", "grpc",
            "--otlp-exporter-compression", "none",
            "--batch-timeout", "50ms",
            "--pid-file", str(workdir / "rotel.pid"),
            "--log-file", str(workdir / "rotel.log"),
        ]  # fmt: skip
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            _wait_for_port(grpc_port, process)
            _wait_for_port(http_port, process)
        except Exception:
            _stop(process)
            sink.stop()
            raise
        return cls(process, grpc_port, http_port, sink)

    def stop(self) -> None:
        _stop(self.process)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self.sink.stop()


@pytest.fixture
def rotel(tmp_path: Path) -> Iterator[RotelServer]:
    """Rotel on free loopback ports; ``rotel.sink`` holds what it forwarded."""
    binary = require(rotel_binary(), "rotel-agent (pip install rotel)")
    server = RotelServer.start(binary, tmp_path)
    try:
        yield server
    finally:
        server.stop()


# -- Prometheus ------------------------------------------------------------------------------


@dataclass
class PrometheusServer:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(
        cls, binary: str, workdir: Path, targets: list[str], interval_s: float = 0.5
    ) -> PrometheusServer:
        config = workdir / "prometheus.yml"
        scrape = f"{int(interval_s * 1000)}ms"
        config.write_text(
            "global:\n"
            f"  scrape_interval: {scrape}\n"
            f"  evaluation_interval: {scrape}\n"
            "scrape_configs:\n"
            "  - job_name: sfumato\n"
            f"    scrape_interval: {scrape}\n"
            f"    scrape_timeout: {scrape}\n"
            f"    static_configs:\n      - targets: {json.dumps(targets)}\n"
        )
        port = free_port()
        command = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        server = cls(process, port)
        try:
            _wait_for_port(port, process, timeout=30)
            wait_until(server.ready, timeout=30, interval=0.1)
        except Exception:
            _stop(process)
            raise
        return server

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The result vector of an instant query."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus query {expr!r} failed: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def stop(self) -> None:
        _stop(self.process)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[list[str]], PrometheusServer]]:
    """A factory: ``prometheus(["127.0.0.1:9464"])`` starts a server scraping those targets."""
    binary = require(prometheus_binary(), "prometheus (apt-get install prometheus)")
    started: list[PrometheusServer] = []

    def start(targets: list[str]) -> PrometheusServer:
        server = PrometheusServer.start(binary, tmp_path, targets)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()
