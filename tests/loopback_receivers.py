"""OTLP receivers on loopback that answer slowly or with a chosen status, for export tests.

``HttpReceiver`` serves OTLP/HTTP (protobuf) with Python's ``http.server``; ``GrpcReceiver``
serves OTLP/gRPC with ``grpc``. Each decodes what it accepts and counts the spans and log
records in it, and each can be told per signal to wait before answering (``delay``, a range
in seconds) or to refuse (``status``: an HTTP status, or a gRPC ``StatusCode`` name).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

__all__ = ["GrpcReceiver", "HttpReceiver", "grpc_receiver", "http_receiver"]

_SIGNAL_OF_PATH = {"/v1/traces": "traces", "/v1/logs": "logs", "/v1/metrics": "metrics"}


class _Counts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.spans: list[str] = []  # span names, in arrival order
        self.log_records = 0
        self.requests: dict[str, int] = {"traces": 0, "logs": 0, "metrics": 0}
        self.delay: dict[str, tuple[float, float]] = {}
        self.status: dict[str, Any] = {}
        self.retry_after: str | None = None

    def take(self, signal: str, body: bytes) -> None:
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as lp
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as tp

        with self.lock:
            if signal == "traces":
                request = tp.ExportTraceServiceRequest.FromString(body)
                self.spans.extend(
                    span.name
                    for rs in request.resource_spans
                    for ss in rs.scope_spans
                    for span in ss.spans
                )
            elif signal == "logs":
                request = lp.ExportLogsServiceRequest.FromString(body)
                self.log_records += sum(
                    len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs
                )

    def wait(self, signal: str) -> None:
        with self.lock:
            self.requests[signal] += 1
            low, high = self.delay.get(signal, (0.0, 0.0))
        if high:
            time.sleep(random.uniform(low, high))


class HttpReceiver(_Counts):
    def start(self) -> HttpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                signal = _SIGNAL_OF_PATH.get(self.path.split("?")[0], "")
                receiver.wait(signal)
                status = receiver.status.get(signal, 200)
                if status == 200 and signal:
                    receiver.take(signal, body)
                self.send_response(status)
                if status != 200 and receiver.retry_after is not None:
                    self.send_header("Retry-After", receiver.retry_after)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class GrpcReceiver(_Counts):
    def start(self) -> GrpcReceiver:
        import grpc
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as lp
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc as lg
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as tp
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as tg

        receiver = self

        def handle(signal: str, request: Any, context: Any) -> None:
            receiver.wait(signal)
            status = receiver.status.get(signal)
            if status is not None:
                context.abort(getattr(grpc.StatusCode, status), f"refused with {status}")
            receiver.take(signal, request.SerializeToString())

        class Traces(tg.TraceServiceServicer):  # type: ignore[misc]
            def Export(self, request: Any, context: Any) -> Any:
                handle("traces", request, context)
                return tp.ExportTraceServiceResponse()

        class Logs(lg.LogsServiceServicer):  # type: ignore[misc]
            def Export(self, request: Any, context: Any) -> Any:
                handle("logs", request, context)
                return lp.ExportLogsServiceResponse()

        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        tg.add_TraceServiceServicer_to_server(Traces(), self._server)
        lg.add_LogsServiceServicer_to_server(Logs(), self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        return self

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.stop(grace=None)


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture
def grpc_receiver() -> Iterator[GrpcReceiver]:
    receiver = GrpcReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()
