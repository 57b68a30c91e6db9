"""OTLP exporters on the wire: signal paths, gzip, TLS verification, plaintext rules."""

from __future__ import annotations

import gzip
import http.server
import logging
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sfumato
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from receivers import require
from sfumato import ConfigError
from sfumato.plugins.otlp_endpoints import grpc_target, http_signal_url

# -- a recording OTLP/HTTP endpoint -----------------------------------------------------------


@dataclass
class Recorded:
    path: str
    encoding: str | None
    body: bytes
    headers: dict[str, str]


@dataclass
class Recorder:
    url: str
    requests: list[Recorded] = field(default_factory=list)

    def paths(self) -> set[str]:
        return {r.path for r in self.requests}


def _serve(context: ssl.SSLContext | None = None) -> Iterator[Recorder]:
    recorder = Recorder("")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            encoding = self.headers.get("Content-Encoding")
            if encoding == "gzip":
                body = gzip.decompress(body)
            recorder.requests.append(
                Recorded(self.path, encoding, body, {k.lower(): v for k, v in self.headers.items()})
            )
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    scheme = "https" if context else "http"
    recorder.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    yield from _serve()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost."""
    openssl = require(shutil.which("openssl"), "openssl")
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_recorder(certificate: tuple[Path, Path]) -> Iterator[Recorder]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    yield from _serve(context)


def emit_all_three(telemetry: sfumato.Telemetry) -> None:
    from sfumato import metrics

    with telemetry.tracer().start_as_current_span("paths-span"):
        logging.getLogger("app.paths").warning("a log record")
    metrics.counter("paths.counter").add(1)
    assert telemetry.force_flush(10)


# -- signal paths --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "prefix"),
    [
        ("{url}", ""),
        ("{url}/", ""),
        ("{url}/v1/traces", ""),
        ("{url}/v1/logs/", ""),
        ("{url}/otlp", "/otlp"),
        ("{url}/otlp/v1/metrics", "/otlp"),
    ],
)
def test_http_signal_paths_from_base_or_full_url(
    recorder: Recorder, given: str, prefix: str
) -> None:
    endpoint = given.format(url=recorder.url)
    with sfumato.configure(
        None, backend="otlp", protocol="http/protobuf", otlp_endpoint=endpoint
    ) as telemetry:
        emit_all_three(telemetry)
    assert recorder.paths() == {f"{prefix}/v1/traces", f"{prefix}/v1/metrics", f"{prefix}/v1/logs"}


def test_http_signal_url_rules() -> None:
    assert http_signal_url("http://c:4318", "logs") == "http://c:4318/v1/logs"
    assert http_signal_url("https://c/otlp/v1/traces", "metrics") == "https://c/otlp/v1/metrics"
    assert http_signal_url("https://c/x?y=1", "traces") == "https://c/x/v1/traces?y=1"
    with pytest.raises(ConfigError):
        http_signal_url("c:4318", "traces")


# -- compression ---------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_http_compression(recorder: Recorder, compression: str) -> None:
    with sfumato.configure(
        None,
        service_name="zipped",
        backend="otlp",
        protocol="http/protobuf",
        otlp_endpoint=recorder.url,
        compression=compression,
    ) as telemetry:
        emit_all_three(telemetry)
    traces = [r for r in recorder.requests if r.path == "/v1/traces"]
    assert traces
    assert {r.encoding for r in recorder.requests} == {"gzip" if compression == "gzip" else None}
    request = ExportTraceServiceRequest.FromString(traces[0].body)
    assert request.resource_spans[0].scope_spans[0].spans[0].name == "paths-span"


def test_grpc_compression_option_reaches_the_exporter() -> None:
    import grpc

    with sfumato.configure(
        None,
        backend="otlp",
        compression="gzip",
        metrics={"enabled": False},
        logs={"enabled": False},
    ) as t:
        exporter = t.exporter("otlp-grpc", "traces")
        assert exporter._compression == grpc.Compression.Gzip
    with sfumato.configure(
        None, backend="otlp", metrics={"enabled": False}, logs={"enabled": False}
    ) as t:
        assert t.exporter("otlp-grpc", "traces")._compression in (
            None,
            grpc.Compression.NoCompression,
        )


def test_headers_are_sent_and_never_shown(recorder: Recorder) -> None:
    with sfumato.configure(
        None,
        backend="otlp",
        protocol="http/protobuf",
        otlp_endpoint=recorder.url,
        headers={"x-api-key": "very-secret"},
        metrics={"enabled": False},
        logs={"enabled": False},
    ) as telemetry:
        with telemetry.tracer().start_as_current_span("s"):
            pass
        assert telemetry.force_flush(10)
        assert "very-secret" not in repr(telemetry.settings)
        assert "very-secret" not in repr(telemetry.plan)
    assert recorder.requests and recorder.requests[0].headers["x-api-key"] == "very-secret"


# -- TLS -----------------------------------------------------------------------------------


def _send_one_span(endpoint: str, **options: Any) -> tuple[sfumato.Telemetry, dict[str, int]]:
    telemetry = sfumato.configure(
        None,
        backend="none",
        exporters=[{"type": "otlp-http", "endpoint": endpoint, "timeout_ms": 2000, **options}],
        export_retry_ms=0,  # a failed batch is counted at once, not retried
        metrics={"enabled": False},
        logs={"enabled": False},
    )
    try:
        with telemetry.tracer().start_as_current_span("tls-span"):
            pass
        telemetry.force_flush(10)
        return telemetry, telemetry.stats()
    finally:
        telemetry.shutdown(5)


def test_https_verifies_certificates(tls_recorder: Recorder) -> None:
    _, stats = _send_one_span(tls_recorder.url)
    assert tls_recorder.requests == []
    assert stats["traces.dropped.export_failed"] == 1


def test_https_with_the_right_ca_bundle(
    tls_recorder: Recorder, certificate: tuple[Path, Path]
) -> None:
    _, stats = _send_one_span(tls_recorder.url, certificate_file=str(certificate[0]))
    assert [r.path for r in tls_recorder.requests] == ["/v1/traces"]
    assert stats["traces.exported"] == 1


def test_https_unverified_only_when_insecure(tls_recorder: Recorder) -> None:
    with pytest.warns(Warning):  # urllib3 says so on every unverified request
        _, stats = _send_one_span(tls_recorder.url, insecure=True)
    assert [r.path for r in tls_recorder.requests] == ["/v1/traces"]
    assert stats["traces.exported"] == 1


# -- plaintext gRPC ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "insecure", "expected"),
    [
        ("http://localhost:4317", False, ("localhost:4317", True)),
        ("http://127.0.0.1:4317", False, ("127.0.0.1:4317", True)),
        ("http://[::1]:4317", False, ("[::1]:4317", True)),
        ("https://collector:4317", False, ("collector:4317", False)),
        ("collector:4317", False, ("collector:4317", False)),
        ("collector:4317", True, ("collector:4317", True)),
        ("http://collector:4317", True, ("collector:4317", True)),
    ],
)
def test_grpc_target_rules(endpoint: str, insecure: bool, expected: tuple[str, bool]) -> None:
    assert grpc_target(endpoint, insecure) == expected


def test_plaintext_grpc_to_a_remote_host_needs_insecure() -> None:
    with pytest.raises(ConfigError) as info:
        sfumato.configure(None, backend="signoz", otlp_endpoint="http://signoz.internal:4317")
    assert "insecure = true" in str(info.value)
    assert sfumato.active() is None or sfumato.active()._closed
    with sfumato.configure(
        None, backend="signoz", otlp_endpoint="http://signoz.internal:4317", insecure=True
    ) as telemetry:
        assert telemetry.exporter("otlp-grpc", "traces")._endpoint == "signoz.internal:4317"
