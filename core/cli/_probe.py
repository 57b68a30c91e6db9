"""The OTLP probes of ``sfumato doctor``: one empty export request per signal.

An empty ``Export<Signal>ServiceRequest`` (no resource_spans, resource_metrics or
resource_logs) is a valid OTLP request that creates nothing in the backend. It is sent as the
exporter would send a batch: the same URL or gRPC target, headers, TLS settings and
compression, so the backend's answer is the answer an export would get. Each answer is
turned into one :class:`Probe`: ``ok``, ``FAIL`` when exports would fail, ``note`` when the
answer cannot tell.
"""

from __future__ import annotations

import gzip
import re
import socket
import ssl
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Probe", "ProbeTarget", "probe"]

Level = Literal["ok", "note", "FAIL"]

_REQUESTS = {
    "traces": (
        "opentelemetry.proto.collector.trace.v1",
        "trace_service",
        "ExportTraceServiceRequest",
        "TraceServiceStub",
    ),
    "metrics": (
        "opentelemetry.proto.collector.metrics.v1",
        "metrics_service",
        "ExportMetricsServiceRequest",
        "MetricsServiceStub",
    ),
    "logs": (
        "opentelemetry.proto.collector.logs.v1",
        "logs_service",
        "ExportLogsServiceRequest",
        "LogsServiceStub",
    ),
}


@dataclass(frozen=True)
class ProbeTarget:
    """Where and how one exporter sends one signal."""

    wire: Literal["grpc", "http"]
    signal: str
    address: str  # the gRPC target (host:port) or the signal's URL
    hostport: str  # host:port, for messages
    tls: bool
    headers: tuple[tuple[str, str], ...] = field(repr=False)  # values: sent, never shown
    gzip: bool
    certificate_file: str | None
    verify: bool  # https only: check the server's certificate
    timeout: float
    export_timeout: float  # the exporter's own deadline
    own_table: bool  # listed under [[telemetry.exporters]] (else planned by the backend)


@dataclass(frozen=True)
class Probe:
    level: Level
    answer: str  # short: "OK", "HTTP 404", "gRPC UNIMPLEMENTED", "timeout", ...
    detail: str  # the rest of the message


def _messages(signal: str) -> tuple[Any, str, Any]:
    """(the empty request, its message name, the gRPC stub class) for ``signal``."""
    import importlib

    package, module, request, stub = _REQUESTS[signal]
    pb2 = importlib.import_module(f"{package}.{module}_pb2")
    grpc_module = importlib.import_module(f"{package}.{module}_pb2_grpc")
    return getattr(pb2, request)(), request, getattr(grpc_module, stub)


def probe(target: ProbeTarget) -> Probe:
    """Send the empty export request for ``target`` and classify the answer."""
    try:
        return _probe_grpc(target) if target.wire == "grpc" else _probe_http(target)
    except Exception as exc:  # a probe that fails in itself cannot tell: a note
        said = _redact(str(exc), target)
        return Probe(
            "note", "error", f"cannot tell: the probe failed: {type(exc).__name__}: {said}"
        )


# -- hints ------------------------------------------------------------------------------------


def _switch(target: ProbeTarget, to: Literal["grpc", "http"]) -> str:
    """How to make this exporter speak the other protocol."""
    if target.own_table:
        return f'type = "otlp-{to}"'
    return f'protocol = "{"grpc" if to == "grpc" else "http/protobuf"}"'


def _signal_hint(target: ProbeTarget) -> str:
    signal = target.signal
    if signal == "traces":
        return "check the endpoint (and its path prefix, for OTLP/HTTP)"
    hint = f"this backend takes no {signal}: set [telemetry.{signal}] enabled = false"
    if target.own_table:
        hint += f" or drop {signal} from this exporter's signals"
    return hint


def _auth_hint(target: ProbeTarget) -> str:
    # Header names only: their values are secrets.
    if target.headers:
        keys = ", ".join(sorted({k.lower() for k, _ in target.headers}))
        return f"the backend refused the credentials (headers sent: {keys}): check their values"
    return "the backend wants credentials and no headers configured: set [telemetry.headers]"


def _redact(text: str, target: ProbeTarget, limit: int = 160) -> str:
    """A server's own words, shortened, with any configured header value masked."""
    text = " ".join(text.split())
    for _, value in target.headers:
        if len(value) >= 4:
            text = text.replace(value, "***")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _timeout(target: ProbeTarget) -> Probe:
    waited = f"no answer within {target.timeout:g}s"
    if target.timeout >= target.export_timeout:
        return Probe("FAIL", "timeout", f"{waited}, the exporter's own deadline")
    return Probe(
        "note",
        "timeout",
        f"{waited} (exports wait up to {target.export_timeout:g}s): cannot tell; "
        "try a longer --timeout",
    )


# -- gRPC -------------------------------------------------------------------------------------


def _probe_grpc(target: ProbeTarget) -> Probe:
    answer = _call_grpc(target, target.address)
    if answer.answer == "connection refused":
        # gRPC reports the last address it tried: with a name such as localhost (::1 and
        # 127.0.0.1) that may be one nothing listens on while the other answers, and the
        # exporter gets through. Ask the address that accepts connections.
        reachable = _accepting_address(target)
        if reachable is not None and reachable != target.address:
            return _call_grpc(target, reachable)
    return answer


def _accepting_address(target: ProbeTarget) -> str | None:
    """ip:port of the first address of ``target.hostport`` that accepts a connection."""
    host, _, port = target.hostport.rpartition(":")
    try:
        addresses = socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_STREAM)
    except (OSError, ValueError):
        return None
    for family, kind, proto, _, address in addresses:
        try:
            with socket.socket(family, kind, proto) as s:
                s.settimeout(target.timeout)
                s.connect(address)
        except OSError:
            continue
        ip = str(address[0])
        return f"[{ip}]:{port}" if family == socket.AF_INET6 else f"{ip}:{port}"
    return None


def _call_grpc(target: ProbeTarget, address: str) -> Probe:
    import grpc

    request, name, stub_class = _messages(target.signal)
    # Asked by address: TLS still checks the certificate against the endpoint's host name.
    host = target.hostport.rpartition(":")[0].strip("[]")
    options = [] if address == target.address else [("grpc.ssl_target_name_override", host)]
    if target.tls:
        roots = None
        if target.certificate_file:
            with open(target.certificate_file, "rb") as f:
                roots = f.read()
        credentials = grpc.ssl_channel_credentials(roots)
        channel = grpc.secure_channel(address, credentials, options=options)
    else:
        channel = grpc.insecure_channel(address)
    try:
        stub_class(channel).Export(
            request,
            timeout=target.timeout,
            metadata=[(k.lower(), v) for k, v in target.headers] or None,
            compression=grpc.Compression.Gzip if target.gzip else None,
        )
    except grpc.RpcError as exc:
        return _grpc_answer(target, exc.code(), exc.details() or "")
    finally:
        channel.close()
    return Probe("ok", "OK", f"OTLP/gRPC export accepted (an empty {name})")


def _grpc_answer(target: ProbeTarget, code: Any, details: str) -> Probe:
    import grpc

    answer = f"gRPC {code.name}"
    said = details.lower()
    if _answered_http(said):
        # An HTTP server answered the gRPC call: an OTLP/HTTP port (or a plain web server).
        status = re.search(r"status: (\d{3})", details)
        said_http = f" (HTTP {status.group(1)})" if status else ""
        return Probe(
            "FAIL",
            answer,
            f"{target.hostport} answers HTTP, not gRPC{said_http}: use its "
            f"gRPC port (4317 by default) or {_switch(target, 'http')}",
        )
    if any(s in said for s in ("certificate_verify_failed", "certificate verify failed")):
        return Probe("FAIL", "TLS", _tls_verify_hint(target))
    if any(s in said for s in ("wrong_version_number", "100000f7")):
        return Probe(
            "FAIL",
            "TLS",
            f"TLS handshake with {target.hostport} failed: it does not speak TLS "
            "(use an http:// endpoint)",
        )
    if "handshake" in said:
        return Probe(
            "FAIL",
            "TLS",
            f"TLS handshake with {target.hostport} failed ({_redact(details, target)}): "
            "does it speak TLS? use an http:// endpoint for plaintext",
        )
    if code == grpc.StatusCode.UNIMPLEMENTED:
        return Probe(
            "FAIL", answer, f"the server has no {target.signal} service: {_signal_hint(target)}"
        )
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return Probe("FAIL", answer, _auth_hint(target))
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return _timeout(target)
    if code == grpc.StatusCode.UNAVAILABLE:
        if "connection refused" in said:
            return Probe("FAIL", "connection refused", f"{target.hostport} refused the connection")
        if any(s in said for s in ("socket closed", "connection reset", "end of tcp stream")):
            if not target.tls and _speaks_tls(target):
                return _wants_tls(target)
            return Probe(
                "FAIL",
                answer,
                f"{target.hostport} closed the connection on a gRPC call "
                f"({_redact(details, target)}): is it a gRPC port? (or a TLS one: use https://)",
            )
        return Probe("FAIL", answer, f"unavailable: {_redact(details, target)}")
    return Probe(
        "note",
        answer,
        f"answered {code.name} ({_redact(details, target)}) to an empty export request: "
        "reachable, but cannot tell whether exports are accepted",
    )


def _tls_verify_hint(target: ProbeTarget) -> str:
    fix = (
        f"is certificate_file ({target.certificate_file}) the CA that signed it?"
        if target.certificate_file
        else "set certificate_file to the CA bundle that signed it"
    )
    return f"TLS: the certificate of {target.hostport} failed verification: {fix}"


# -- HTTP -------------------------------------------------------------------------------------


def _probe_http(target: ProbeTarget) -> Probe:
    import requests

    request, name, _ = _messages(target.signal)
    body = request.SerializeToString()
    headers = dict(target.headers)
    headers["Content-Type"] = "application/x-protobuf"
    if target.gzip:
        body = gzip.compress(body)
        headers["Content-Encoding"] = "gzip"
    verify: bool | str = target.certificate_file or target.verify
    try:
        with warnings.catch_warnings():
            # insecure = true asked for no certificate check: no warning about it.
            warnings.simplefilter("ignore")
            response = requests.post(
                target.address,
                data=body,
                headers=headers,
                timeout=target.timeout,
                verify=verify,
            )
    except requests.exceptions.SSLError as exc:
        return _http_tls(target, exc)
    except requests.exceptions.Timeout as exc:
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return Probe("FAIL", "timeout", f"cannot connect to {target.hostport}: timed out")
        return _timeout(target)
    except requests.exceptions.ConnectionError as exc:
        return _http_connection(target, exc)
    except requests.exceptions.RequestException as exc:
        return Probe("note", "error", f"cannot tell: {_redact(str(exc), target)}")
    return _http_answer(target, response.status_code, response.reason or "", name)


def _http_answer(target: ProbeTarget, status: int, reason: str, name: str) -> Probe:
    answer = f"HTTP {status}"
    said = _redact(f"{answer} {reason}", target)
    path = target.address.split("://", 1)[-1].partition("/")[2]
    if 200 <= status < 300:
        return Probe("ok", answer, f"OTLP/HTTP export accepted (an empty {name}, {answer})")
    if status in (404, 405):
        return Probe("FAIL", answer, f"{said} on /{path}: {_signal_hint(target)}")
    if status in (401, 403):
        return Probe("FAIL", answer, f"{said}: {_auth_hint(target)}")
    if status >= 500:
        return Probe("FAIL", answer, f"{said}: the backend fails exports now")
    return Probe(
        "note",
        answer,
        f"{said} to an empty export request: reachable, but cannot tell whether exports are "
        "accepted",
    )


def _http_tls(target: ProbeTarget, exc: Exception) -> Probe:
    said = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in said or "certificate verify failed" in said:
        return Probe("FAIL", "TLS", _tls_verify_hint(target))
    if "WRONG_VERSION_NUMBER" in said or "wrong version number" in said:
        return Probe(
            "FAIL",
            "TLS",
            f"TLS handshake with {target.hostport} failed: it does not speak TLS "
            "(use an http:// endpoint)",
        )
    return Probe("FAIL", "TLS", f"TLS with {target.hostport} failed: {_redact(said, target)}")


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and every error inside it: requests wraps urllib3's, which wraps the socket's
    (as ``reason``, an argument, or the cause)."""
    found: list[BaseException] = []
    todo = [exc]
    while todo and len(found) < 32:
        error = todo.pop(0)
        if any(error is seen for seen in found):
            continue
        found.append(error)
        inner = [error.__cause__, error.__context__, getattr(error, "reason", None), *error.args]
        todo += [e for e in inner if isinstance(e, BaseException)]
    return found


def _http_connection(target: ProbeTarget, exc: Exception) -> Probe:
    causes = _causes(exc)
    if any(isinstance(e, ConnectionRefusedError) for e in causes):
        return Probe("FAIL", "connection refused", f"{target.hostport} refused the connection")
    for error in causes:
        if isinstance(error, ssl.SSLError):
            return _http_tls(target, error)
    # http.client's RemoteDisconnected is a ConnectionResetError.
    if any(isinstance(e, (ConnectionResetError, ConnectionAbortedError)) for e in causes):
        if not target.tls and _speaks_grpc(target):
            return Probe(
                "FAIL",
                "gRPC",
                f"{target.hostport} speaks gRPC, not OTLP/HTTP: use its OTLP/HTTP port "
                f"(4318 by default) or {_switch(target, 'grpc')}",
            )
        if not target.tls and _speaks_tls(target):
            return _wants_tls(target)
        return Probe(
            "FAIL",
            "connection closed",
            f"{target.hostport} closed the connection without an HTTP answer: a gRPC port, or "
            "one that wants TLS (https://)?",
        )
    return Probe("FAIL", "error", _redact(str(causes[-1]) or str(exc), target))


def _answered_http(details: str) -> bool:
    """Whether gRPC's error ``details`` (lowercased) say an HTTP server answered."""
    return any(
        s in details
        for s in ("http1.x server", "http2 header with status", "failed parsing http/2")
    )


def _wants_tls(target: ProbeTarget) -> Probe:
    return Probe(
        "FAIL",
        "TLS",
        f"{target.hostport} speaks TLS and the endpoint is plaintext: use an https:// endpoint",
    )


def _speaks_tls(target: ProbeTarget) -> bool:
    """Whether ``target.hostport`` completes a TLS handshake (certificate not checked: this
    only asks which protocol the port speaks)."""
    host, _, port = target.hostport.rpartition(":")
    host = host.strip("[]")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        connection = socket.create_connection((host, int(port)), timeout=target.timeout)
        with connection, context.wrap_socket(connection, server_hostname=host):
            return True
    except (OSError, ValueError):
        return False


def _speaks_grpc(target: ProbeTarget) -> bool:
    """Whether a plaintext gRPC call to the same host:port gets a gRPC answer."""
    import grpc

    request, _, stub_class = _messages(target.signal)
    channel = grpc.insecure_channel(target.hostport)
    try:
        stub_class(channel).Export(request, timeout=target.timeout)
    except grpc.RpcError as exc:
        if _answered_http((exc.details() or "").lower()):
            return False
        return exc.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    finally:
        channel.close()
    return True
