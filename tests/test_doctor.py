"""``sfumato doctor``: exit 1 on any finding, 0 when everything is reachable."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from docs_support import Block, blocks, pages
from receivers import RotelServer, free_port, require
from sfumato._loading import load_config
from sfumato.cli import main
from sfumato.cli.doctor import checks
from test_docs_snippets import ENV


def write(tmp_path: Path, body: str) -> str:
    path = tmp_path / "app.toml"
    path.write_text('[telemetry]\nservice_name = "doc"\n' + body)
    return str(path)


def test_unreachable_endpoint_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()  # nothing listens there
    path = write(tmp_path, f'backend = "otlp"\notlp_endpoint = "http://127.0.0.1:{port}"\n')
    assert main(["doctor", path, "--timeout", "0.5"]) == 1
    out = capsys.readouterr().out
    assert f"FAIL  otlp-grpc (traces, metrics, logs) http://127.0.0.1:{port}: cannot connect" in out
    assert "1 finding" in out


def test_unreachable_http_endpoint_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    path = write(
        tmp_path,
        f'backend = "signoz"\nprotocol = "http/protobuf"\notlp_endpoint = "http://127.0.0.1:{port}/"\n',
    )
    assert main(["doctor", path, "--timeout", "0.5"]) == 1
    assert f"cannot connect to 127.0.0.1:{port}" in capsys.readouterr().out


@pytest.mark.server
@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_running_rotel_exits_0(
    rotel: RotelServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], protocol: str
) -> None:
    endpoint = rotel.grpc_endpoint if protocol == "grpc" else rotel.http_endpoint
    path = write(
        tmp_path, f'backend = "signoz"\nprotocol = "{protocol}"\notlp_endpoint = "{endpoint}"\n'
    )
    assert main(["doctor", path]) == 0
    out = capsys.readouterr().out
    wire = "OTLP/gRPC" if protocol == "grpc" else "OTLP/HTTP"
    for signal in ("traces", "metrics", "logs"):
        assert f"ok    otlp-{protocol[:4]} ({signal}) {endpoint}: {wire} export accepted" in out
    assert "FAIL" not in out and "note" not in out
    assert out.rstrip().endswith("no findings")
    # Empty export requests: nothing reaches the backend's storage.
    assert not rotel.sink.spans() and not rotel.sink.metric_points()
    assert not rotel.sink.log_records()


@pytest.mark.server
def test_grpc_at_an_http_port_is_a_finding(
    rotel: RotelServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # By name: localhost may be ::1 as well as 127.0.0.1, where Rotel listens; the answer is
    # the one from where the exporter gets through, not a refusal from ::1.
    endpoint = f"http://localhost:{rotel.http_port}"
    path = write(tmp_path, f'backend = "signoz"\notlp_endpoint = "{endpoint}"\n')
    assert main(["doctor", path, "--timeout", "1"]) == 1
    out = capsys.readouterr().out
    assert out.count(f"localhost:{rotel.http_port} answers HTTP, not gRPC") == 3, out
    line = next(x for x in out.splitlines() if x.startswith("FAIL  otlp-grpc (traces)"))
    assert 'protocol = "http/protobuf"' in line
    assert out.rstrip().endswith("3 findings")


@pytest.mark.server
def test_http_at_a_grpc_port_is_a_finding(
    rotel: RotelServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        'backend = "none"\n[[telemetry.exporters]]\ntype = "otlp-http"\n'
        f'endpoint = "{rotel.grpc_endpoint}"\nsignals = ["traces"]\n',
    )
    assert main(["doctor", path, "--timeout", "1"]) == 1
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("FAIL  otlp-http (traces)"))
    assert f"127.0.0.1:{rotel.grpc_port} speaks gRPC, not OTLP/HTTP" in line
    assert 'type = "otlp-grpc"' in line  # an exporter of its own: the hint names its type
    assert "1 finding" in out


@pytest.mark.server
def test_signals_a_backend_cannot_take_are_notes_not_findings(
    rotel: RotelServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, f'backend = "jaeger"\notlp_endpoint = "{rotel.grpc_endpoint}"\n')
    assert main(["doctor", path]) == 0
    out = capsys.readouterr().out
    assert "note  backend 'jaeger' cannot take metrics" in out
    assert "note  backend 'jaeger' cannot take logs" in out
    assert "FAIL" not in out and out.rstrip().endswith("no findings (2 notes)")


def test_plaintext_grpc_to_a_remote_host_is_invalid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # configure() refuses it, so doctor (like validate) does before checking anything else.
    path = write(tmp_path, 'backend = "jaeger"\notlp_endpoint = "http://jaeger.example:4317"\n')
    assert main(["doctor", path, "--timeout", "0.2"]) == 2
    assert "insecure = true" in capsys.readouterr().err


def test_prometheus_port_in_use_is_a_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = write(
            tmp_path,
            f'backend = "none"\n[[telemetry.exporters]]\ntype = "prometheus"\nport = {port}\n',
        )
        assert main(["doctor", path]) == 1
        assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().out
    assert main(["doctor", path]) == 0


def test_invalid_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, 'backend = "no-such-backend"\n')
    assert main(["doctor", path]) == 2
    assert "no-such-backend" in capsys.readouterr().err


def test_disabled_is_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "app.toml"
    path.write_text("[other]\nx = 1\n")
    assert main(["doctor", str(path)]) == 0
    assert "disabled" in capsys.readouterr().out


def test_a_port_in_time_wait_is_free_to_listen_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The side that closes a TCP connection first holds its port in TIME_WAIT for a while: a
    # Prometheus endpoint that served a scrape and stopped (a restart). It binds with
    # SO_REUSEADDR, as its next run does, so that port is no obstacle.
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server's end closes first: it goes to TIME_WAIT
        client.close()
    path = write(
        tmp_path, f'backend = "none"\n[[telemetry.exporters]]\ntype = "prometheus"\nport = {port}\n'
    )
    assert main(["doctor", path]) == 0, capsys.readouterr().out
    assert f"127.0.0.1:{port} is free to listen on" in capsys.readouterr().out


def test_json_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    path = write(
        tmp_path,
        f'backend = "jaeger"\notlp_endpoint = "http://127.0.0.1:{port}"\n',
    )
    assert main(["doctor", path, "--json", "--timeout", "0.3"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is True and report["findings"] == 1
    levels = [check["level"] for check in report["checks"]]
    assert levels == ["ok", "note", "note", "ok", "FAIL"], report  # ok: the sampler version
    assert "cannot connect" in report["checks"][-1]["message"]
    assert main(["doctor", write(tmp_path, "batch_size = 0\n"), "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["valid"] is False
    assert report["problems"][0]["key"] == "telemetry.batch_size"


CONFIGS = [
    b
    for b in (b for page in pages() for b in blocks(page))
    if b.lang == "toml" and "[telemetry" in b.text and not b.markers
]


@pytest.mark.parametrize("block", CONFIGS, ids=[b.where for b in CONFIGS])
def test_the_docs_example_configs_come_out_clean(
    block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing in a documented config is a finding, but that its servers are not running."""
    for name in [n for n in os.environ if n.startswith(("SFUMATO_", "OTEL_"))]:
        monkeypatch.delenv(name)
    path = tmp_path / "app.toml"
    path.write_text(block.text)
    loaded = load_config(path, env=ENV)
    found = [c for c in checks(loaded, timeout=0.05) if c.level == "FAIL"]
    assert all("cannot connect" in c.message for c in found), f"{block.where}: {found}"


# -- a loopback OTLP/HTTP receiver that refuses what a backend may refuse --------------------


class Receiver(ThreadingHTTPServer):
    """OTLP/HTTP on loopback: 404 for the paths in ``missing``; 401 unless the request has
    ``authorization: <token>`` when ``token`` is set. Keeps (path, headers, body) of each."""

    def __init__(self, missing: tuple[str, ...] = (), token: str | None = None) -> None:
        self.missing, self.token = missing, token
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.server.requests.append((self.path, dict(self.headers.items()), body))
        if self.path in self.server.missing:
            status = 404
        elif self.server.token and self.headers.get("authorization") != self.server.token:
            status = 401
        else:
            status = 200
        self.send_response(status)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve(receiver: Receiver) -> Iterator[Receiver]:
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.shutdown()
        receiver.server_close()
        thread.join(5)


@pytest.fixture
def no_logs() -> Iterator[Receiver]:
    yield from serve(Receiver(missing=("/v1/logs",)))


@pytest.fixture
def with_token() -> Iterator[Receiver]:
    yield from serve(Receiver(token="Bearer s3cret-token"))


def test_a_signal_the_backend_does_not_take_is_a_finding_with_the_fix(
    no_logs: Receiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        f'backend = "otlp"\nprotocol = "http/protobuf"\notlp_endpoint = "{no_logs.endpoint}"\n'
        'compression = "gzip"\n',
    )
    assert main(["doctor", path, "--timeout", "1"]) == 1
    out = capsys.readouterr().out
    assert f"ok    otlp-http (traces) {no_logs.endpoint}: OTLP/HTTP export accepted" in out
    assert f"ok    otlp-http (metrics) {no_logs.endpoint}: OTLP/HTTP export accepted" in out
    line = next(x for x in out.splitlines() if x.startswith("FAIL"))
    assert line.startswith(f"FAIL  otlp-http (logs) {no_logs.endpoint}: HTTP 404")
    assert "this backend takes no logs: set [telemetry.logs] enabled = false" in line
    assert out.rstrip().endswith("1 finding")
    # What was sent: an empty export request per signal, protobuf, gzip as configured.
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    sent = {p: (h, b) for p, h, b in no_logs.requests}
    assert set(sent) == {"/v1/traces", "/v1/metrics", "/v1/logs"}
    headers, body = sent["/v1/traces"]
    assert headers["Content-Type"] == "application/x-protobuf"
    assert headers["Content-Encoding"] == "gzip"
    assert ExportTraceServiceRequest.FromString(body) == ExportTraceServiceRequest()
    assert ExportLogsServiceRequest.FromString(sent["/v1/logs"][1]) == ExportLogsServiceRequest()


def test_a_refused_credential_names_the_header_never_its_value(
    with_token: Receiver, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = with_token.endpoint
    path = write(
        tmp_path,
        f'backend = "otlp"\nprotocol = "http/protobuf"\notlp_endpoint = "{endpoint}"\n'
        'headers = { authorization = "Bearer wrong-token", x-team = "team-4f9q" }\n',
    )
    assert main(["doctor", path, "--timeout", "1"]) == 1
    out = capsys.readouterr().out
    assert out.count("FAIL") == 3, out
    line = next(x for x in out.splitlines() if x.startswith("FAIL  otlp-http (traces)"))
    assert "HTTP 401" in line and "headers sent: authorization, x-team" in line
    assert "wrong-token" not in out and "team-4f9q" not in out and "s3cret" not in out
    assert main(["doctor", path, "--timeout", "1", "--json"]) == 1
    report = capsys.readouterr().out
    assert "wrong-token" not in report and "team-4f9q" not in report
    failed = [c for c in json.loads(report)["checks"] if c["level"] == "FAIL"]
    assert [(c["exporter"], c["signal"], c["answer"]) for c in failed] == [
        ("otlp-http", s, "HTTP 401") for s in ("traces", "metrics", "logs")
    ]
    # The right value gets through; with no header at all, the hint says none was sent.
    right = write(
        tmp_path,
        f'backend = "otlp"\nprotocol = "http/protobuf"\notlp_endpoint = "{endpoint}"\n'
        'headers = { authorization = "Bearer s3cret-token" }\n',
    )
    assert main(["doctor", right, "--timeout", "1"]) == 0
    assert "s3cret" not in capsys.readouterr().out
    bare = write(
        tmp_path,
        f'backend = "otlp"\nprotocol = "http/protobuf"\notlp_endpoint = "{endpoint}"\n',
    )
    assert main(["doctor", bare, "--timeout", "1"]) == 1
    assert "no headers configured" in capsys.readouterr().out


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_connection_refused_is_one_finding_per_endpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], protocol: str
) -> None:
    port = free_port()
    path = write(
        tmp_path,
        f'backend = "otlp"\nprotocol = "{protocol}"\notlp_endpoint = "http://127.0.0.1:{port}"\n',
    )
    assert main(["doctor", path, "--timeout", "0.5"]) == 1
    out = capsys.readouterr().out
    assert f"cannot connect to 127.0.0.1:{port}: Connection refused" in out
    assert out.count("FAIL") == 1 and "1 finding" in out
    assert main(["doctor", path, "--timeout", "0.5", "--json"]) == 1
    (failed,) = [c for c in json.loads(capsys.readouterr().out)["checks"] if c["level"] == "FAIL"]
    assert failed["answer"] == "connection refused"
    assert failed["exporter"] == f"otlp-{protocol[:4]}" and "signal" not in failed


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[str, str]:
    """A self-signed certificate for localhost and 127.0.0.1: (cert file, key file)."""
    openssl = require(shutil.which("openssl"), "openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return str(cert), str(key)


def exporter(tmp_path: Path, type: str, endpoint: str, extra: str = "") -> str:
    return write(
        tmp_path,
        f'backend = "none"\n[[telemetry.exporters]]\ntype = "{type}"\n'
        f'endpoint = "{endpoint}"\nsignals = ["traces"]\n{extra}',
    )


def test_tls_certificate_checks_and_plaintext_to_a_tls_port(
    certificate: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    receiver = Receiver()
    receiver.socket = context.wrap_socket(receiver.socket, server_side=True)
    for running in serve(receiver):
        port = running.server_address[1]
        https = f"https://localhost:{port}"
        assert main(["doctor", exporter(tmp_path, "otlp-http", https), "--timeout", "1"]) == 1
        out = capsys.readouterr().out
        assert f"FAIL  otlp-http (traces) {https}: TLS: the certificate of localhost:{port} " in out
        assert "set certificate_file" in out
        for extra in (f'certificate_file = "{cert}"\n', "insecure = true\n"):
            path = exporter(tmp_path, "otlp-http", https, extra)
            assert main(["doctor", path, "--timeout", "1"]) == 0
            assert "OTLP/HTTP export accepted" in capsys.readouterr().out
        http = f"http://localhost:{port}"
        assert main(["doctor", exporter(tmp_path, "otlp-http", http), "--timeout", "1"]) == 1
        assert "speaks TLS and the endpoint is plaintext" in capsys.readouterr().out


def test_grpc_tls_and_a_missing_service(
    certificate: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as tp
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as tg

    class Traces(tg.TraceServiceServicer):  # type: ignore[misc]
        def Export(self, request: Any, context: Any) -> Any:
            return tp.ExportTraceServiceResponse()

    cert, key = certificate
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    tg.add_TraceServiceServicer_to_server(Traces(), server)  # traces only, as Jaeger
    with open(cert, "rb") as c, open(key, "rb") as k:
        credentials = grpc.ssl_server_credentials([(k.read(), c.read())])
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        https = f"https://localhost:{port}"
        assert main(["doctor", exporter(tmp_path, "otlp-grpc", https), "--timeout", "1"]) == 1
        assert "failed verification" in capsys.readouterr().out
        path = write(
            tmp_path,
            f'backend = "none"\n[[telemetry.exporters]]\ntype = "otlp-grpc"\n'
            f'endpoint = "{https}"\ncertificate_file = "{cert}"\n',
        )
        assert main(["doctor", path, "--timeout", "1"]) == 1
        out = capsys.readouterr().out
        assert f"ok    otlp-grpc (traces) {https}: OTLP/gRPC export accepted" in out
        line = next(x for x in out.splitlines() if x.startswith("FAIL  otlp-grpc (logs)"))
        assert "no logs service: this backend takes no logs: set [telemetry.logs] enabled" in line
        assert "or drop logs from this exporter's signals" in line
        assert out.count("FAIL") == 2  # metrics and logs
        plaintext = exporter(tmp_path, "otlp-grpc", f"http://localhost:{port}")
        assert main(["doctor", plaintext, "--timeout", "1"]) == 1
        assert "speaks TLS and the endpoint is plaintext" in capsys.readouterr().out
    finally:
        server.stop(grace=None)


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_no_answer_is_a_timeout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], protocol: str
) -> None:
    with socket.socket() as silent:  # accepts connections (the backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        body = f'backend = "jaeger"\nprotocol = "{protocol}"\notlp_endpoint = "{endpoint}"\n'
        # Within the exporter's own deadline: exports would time out too.
        path = write(tmp_path, body + "export_timeout_ms = 200\n")
        assert main(["doctor", path, "--timeout", "1"]) == 1
        assert "no answer within 0.2s, the exporter's own deadline" in capsys.readouterr().out
        # A shorter --timeout than the exporter's cannot tell.
        assert main(["doctor", write(tmp_path, body), "--timeout", "0.2"]) == 0
        out = capsys.readouterr().out
        assert "note  otlp-" in out and "no answer within 0.2s (exports wait up to 10s)" in out
