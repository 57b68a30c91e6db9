"""Exporter plugins: ``console``, ``memory``, ``otlp-grpc`` and ``otlp-http``."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field
from sfumato import ConfigError
from sfumato._otel import (
    GrpcBytes,
    GrpcStatus,
    HttpBytes,
    grpc_bytes_fit,
    http_bytes_fit,
    otlp_log_exporter,
    with_contents,
)
from sfumato.plugin import BuildContext, Exporter
from sfumato.settings import HeaderValue, Settings, Signal

from .otlp_encoding import encode_logs, encode_spans
from .otlp_endpoints import DEFAULT_GRPC, DEFAULT_HTTP, grpc_target, http_signal_url

__all__ = [
    "ConsoleExporter",
    "InMemoryExporter",
    "MemoryExporter",
    "OtlpGrpcExporter",
    "OtlpHttpExporter",
]


class ConsoleExporter(Exporter):
    """Prints spans, metrics and log records to stdout."""

    def create(self, signal: Signal, options: Any, context: BuildContext) -> Any:
        # The SDK's default ``out`` is the sys.stdout of when it was imported; use today's.
        if signal == "traces":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            return ConsoleSpanExporter(out=sys.stdout, formatter=_span_json)
        if signal == "metrics":
            from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

            return ConsoleMetricExporter(out=sys.stdout)
        from sfumato._otel import ConsoleLogRecordExporter

        return ConsoleLogRecordExporter(out=sys.stdout)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _span_json(span: Any) -> str:
    """The SDK's JSON for a span, with bytes attribute values as hex.

    The SDK accepts ``bytes`` attribute values but its ``to_json`` cannot write them: one
    such span would otherwise fail the whole batch it is printed in.
    """
    try:
        return str(span.to_json()) + os.linesep
    except (TypeError, ValueError):
        from opentelemetry.sdk.trace import Event
        from opentelemetry.trace import Link

        def clean(attributes: Any) -> dict[str, Any]:
            return {k: _jsonable(v) for k, v in (attributes or {}).items()}

        copied = with_contents(
            span,
            clean(span.attributes),
            tuple(Event(e.name, clean(e.attributes), e.timestamp) for e in span.events),
            tuple(Link(link.context, clean(link.attributes)) for link in span.links),
        )
        return str(copied.to_json()) + os.linesep


class InMemoryExporter:
    """Keeps what it is given (spans or log records), for tests."""

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._lock = threading.Lock()

    def export(self, batch: Sequence[Any]) -> Any:
        with self._lock:
            self._items.extend(batch)
        return None

    def get_finished_spans(self) -> tuple[Any, ...]:
        with self._lock:
            return tuple(self._items)

    items = property(get_finished_spans)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class MemoryExporter(Exporter):
    """In-memory exporters for tests: spans and log records kept in lists, metrics read on
    demand. Spans are exported on the caller's thread, so a test sees them at once."""

    batched: ClassVar[bool] = False

    def create(self, signal: Signal, options: Any, context: BuildContext) -> Any:
        if signal == "metrics":
            from opentelemetry.sdk.metrics.export import InMemoryMetricReader

            return InMemoryMetricReader()
        return InMemoryExporter()


class OtlpOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint: str | None = Field(default=None, description="Default: telemetry.otlp_endpoint.")
    headers: dict[str, HeaderValue] = Field(
        default_factory=dict, description="Merged over telemetry.headers. Secret."
    )
    insecure: bool | None = Field(default=None, description="Default: telemetry.insecure.")
    compression: Literal["none", "gzip"] | None = Field(
        default=None, description="Default: telemetry.compression."
    )
    certificate_file: str | None = Field(default=None, description="CA bundle for https.")
    timeout_ms: int | None = Field(default=None, ge=1, description="Default: export_timeout_ms.")
    encoder: Literal["sfumato", "sdk"] = Field(
        default="sfumato",
        description="Who encodes spans and log records: sfumato's own encoder (the same "
        "bytes, several times faster) or the SDK's.",
    )


def _common(options: OtlpOptions, settings: Settings) -> tuple[dict[str, str], bool, str, float]:
    headers = settings.header_values()
    headers.update({k: v.get_secret_value() for k, v in options.headers.items()})
    insecure = options.insecure if options.insecure is not None else settings.insecure
    compression = options.compression or settings.compression
    timeout = (options.timeout_ms or settings.export_timeout_ms) / 1000
    return headers, insecure, compression, timeout


def _check_certificate(options: OtlpOptions) -> None:
    if options.certificate_file and not os.access(options.certificate_file, os.R_OK):
        raise ConfigError(
            f"certificate_file {options.certificate_file!r} does not exist or cannot be read"
        )


def _requires(package: str, *modules: str) -> dict[str, str]:
    return dict.fromkeys(modules, package)


class OtlpGrpcExporter(Exporter):
    """OTLP over gRPC for all three signals."""

    Options: ClassVar[type[BaseModel]] = OtlpOptions
    requires: ClassVar[dict[str, str]] = _requires(
        "opentelemetry-exporter-otlp-proto-grpc",
        "grpc",
        "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
    )

    def check(self, signal: Signal, options: Any, context: BuildContext) -> None:
        _grpc_target(options, context.settings)
        _check_certificate(options)

    def create(self, signal: Signal, options: Any, context: BuildContext) -> Any:
        import grpc

        settings = context.settings
        headers, _, compression, timeout = _common(options, settings)
        target, plaintext = _grpc_target(options, settings)
        kwargs: dict[str, Any] = {
            "endpoint": target,
            "insecure": plaintext,
            "headers": headers or None,
            "timeout": timeout,
            "compression": grpc.Compression.Gzip if compression == "gzip" else None,
        }
        if options.certificate_file and not plaintext:
            with open(options.certificate_file, "rb") as f:
                kwargs["credentials"] = grpc.ssl_channel_credentials(f.read())
        cls: type
        if signal == "metrics":
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

            return _with_status(OTLPMetricExporter, GrpcStatus)(**kwargs)
        if signal == "traces":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            cls = OTLPSpanExporter
        else:
            cls = otlp_log_exporter("grpc")
        mixins: tuple[type, ...] = (GrpcStatus,)
        if options.encoder == "sfumato" and grpc_bytes_fit(cls):
            mixins += (_SpanBytes if signal == "traces" else _LogBytes,)
        return _with_status(cls, *mixins)(**kwargs)


def _recording_session(verify: bool | str | None = None) -> Any:
    """A requests session that remembers its last response's status (and Retry-After), so
    that the export queue can tell a refusal (404, 401, ...) from a retryable failure: the
    SDK's HTTP exporters return only SUCCESS or FAILURE.

    With ``verify`` it always uses that: requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE
    override a session's own ``verify``, so a configured CA bundle (or ``insecure``) would be
    silently ignored wherever those are set.
    """
    import requests

    class RecordingSession(requests.Session):
        """``last``: the status of the calling thread's last request (export workers may
        send at once)."""

        def __init__(self) -> None:
            super().__init__()
            self._calls = threading.local()

        @property
        def last(self) -> tuple[str, float | None, str] | None:
            value: tuple[str, float | None, str] | None = getattr(self._calls, "last", None)
            return value

        @last.setter
        def last(self, value: tuple[str, float | None, str] | None) -> None:
            self._calls.last = value

        def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> Any:
            if verify is not None:
                kwargs["verify"] = verify
            self.last = None  # a connection error leaves no status
            response = super().request(method, url, *args, **kwargs)
            self.last = (
                str(response.status_code),
                _retry_after(response.headers.get("Retry-After")),
                str(url),
            )
            return response

    return RecordingSession()


def _credential_provider(signal: Signal) -> bool:
    """Whether the SDK will load a credential provider's session for this signal (set by
    OTEL_PYTHON_EXPORTER_OTLP_HTTP_[<SIGNAL>_]CREDENTIAL_PROVIDER): sfumato gives none then."""
    return bool(
        os.environ.get("OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER")
        or os.environ.get(f"OTEL_PYTHON_EXPORTER_OTLP_HTTP_{signal.upper()}_CREDENTIAL_PROVIDER")
    )


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), capped at 60."""
    if not value:
        return None
    try:
        return min(max(float(value), 0.0), 60.0)
    except ValueError:
        pass
    try:
        import datetime
        import email.utils
        import time

        when = email.utils.parsedate_to_datetime(value)
        if when.tzinfo is None:  # "-0000" parses without a zone: HTTP dates are in UTC
            when = when.replace(tzinfo=datetime.timezone.utc)
        return min(max(when.timestamp() - time.time(), 0), 60)
    except (TypeError, ValueError, OverflowError):
        return None


class _HttpStatus:
    """Mixed into the SDK's OTLP/HTTP exporters: ``sfumato_failure()`` is the status of the
    calling thread's last failed export, from the session the exporter was given (public API
    only); export workers may call ``export`` at once."""

    sfumato_concurrent = True

    _sfumato_session: Any

    def export(self, batch: Any, *args: Any, **kwargs: Any) -> Any:
        if self._sfumato_session is not None:
            self._sfumato_session.last = None
        return super().export(batch, *args, **kwargs)  # type: ignore[misc]

    def sfumato_failure(self) -> tuple[str, float | None, str] | None:
        last: tuple[str, float | None, str] | None = getattr(self._sfumato_session, "last", None)
        return last


_STATUS_CLASSES: dict[tuple[type, ...], type] = {}


def _with_status(cls: type, *mixins: type) -> type:
    """``cls`` (an SDK exporter class) with ``mixins`` in front, made once per combination."""
    key = (cls, *mixins)
    made = _STATUS_CLASSES.get(key)
    if made is None:
        made = _STATUS_CLASSES[key] = type(cls.__name__, (*mixins, cls), {"__module__": __name__})
    return made


class _SpanBytes(GrpcBytes):
    """OTLP/gRPC spans encoded by sfumato (see ``plugins/otlp_encoding.py``)."""

    sfumato_method = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
    sfumato_encode = staticmethod(encode_spans)

    @property
    def sfumato_response(self) -> Any:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceResponse,
        )

        return ExportTraceServiceResponse


class _SpanHttpBytes(HttpBytes):
    """OTLP/HTTP spans encoded by sfumato."""

    sfumato_encode = staticmethod(encode_spans)

    @property
    def sfumato_result(self) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        return SpanExportResult


class _LogHttpBytes(HttpBytes):
    """OTLP/HTTP log records encoded by sfumato."""

    sfumato_encode = staticmethod(encode_logs)

    @property
    def sfumato_result(self) -> Any:
        from sfumato._otel import LogRecordExportResult

        return LogRecordExportResult


class _LogBytes(GrpcBytes):
    """OTLP/gRPC log records encoded by sfumato."""

    sfumato_method = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
    sfumato_encode = staticmethod(encode_logs)

    @property
    def sfumato_response(self) -> Any:
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
            ExportLogsServiceResponse,
        )

        return ExportLogsServiceResponse


def _grpc_target(options: OtlpOptions, settings: Settings) -> tuple[str, bool]:
    insecure = options.insecure if options.insecure is not None else settings.insecure
    return grpc_target(options.endpoint or settings.otlp_endpoint or DEFAULT_GRPC, insecure)


def _http_url(options: OtlpOptions, settings: Settings, signal: Signal) -> str:
    return http_signal_url(options.endpoint or settings.otlp_endpoint or DEFAULT_HTTP, signal)


class OtlpHttpExporter(Exporter):
    """OTLP over HTTP (protobuf) for all three signals; ``/v1/<signal>`` paths added."""

    Options: ClassVar[type[BaseModel]] = OtlpOptions
    requires: ClassVar[dict[str, str]] = _requires(
        "opentelemetry-exporter-otlp-proto-http",
        "requests",
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    )

    def check(self, signal: Signal, options: Any, context: BuildContext) -> None:
        _http_url(options, context.settings, signal)
        _check_certificate(options)

    def create(self, signal: Signal, options: Any, context: BuildContext) -> Any:
        from opentelemetry.exporter.otlp.proto.http import Compression

        settings = context.settings
        headers, insecure, compression, timeout = _common(options, settings)
        kwargs: dict[str, Any] = {
            "endpoint": _http_url(options, settings, signal),
            "headers": headers or None,
            "timeout": timeout,
            "compression": Compression.Gzip if compression == "gzip" else Compression.NoCompression,
        }
        if options.certificate_file:
            kwargs["certificate_file"] = options.certificate_file
            kwargs["session"] = _recording_session(options.certificate_file)
        elif insecure and kwargs["endpoint"].startswith("https:"):
            # Verification off only when asked (the SDK reads a false certificate_file as True).
            kwargs["session"] = _recording_session(False)
        cls: type
        if signal == "metrics":
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

            cls = OTLPMetricExporter
        elif signal == "traces":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            cls = OTLPSpanExporter
        else:
            cls = otlp_log_exporter("http/protobuf")
        if "session" not in kwargs and not _credential_provider(signal):
            kwargs["session"] = _recording_session()
        mixins: tuple[type, ...] = (_HttpStatus,)
        if options.encoder == "sfumato" and signal != "metrics" and http_bytes_fit(cls):
            mixins += (_SpanHttpBytes if signal == "traces" else _LogHttpBytes,)
        exporter = _with_status(cls, *mixins)(**kwargs)
        # A credential provider's session (the SDK loads it when given none) is left as it
        # is: its failures carry no status here, so they stay retryable, as before.
        exporter._sfumato_session = kwargs.get("session")
        return exporter
