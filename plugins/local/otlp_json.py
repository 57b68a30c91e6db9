"""OTLP/JSON lines: SDK data -> one export request per line, and back.

OTLP/JSON is protobuf's JSON mapping with lowerCamelCase field names (the mapping's default)
and two departures: trace and span ids are hex strings (the mapping writes bytes as base64)
and enum values are integers (the mapping writes names). 64-bit integers stay decimal
strings, as the mapping writes them; receivers accept strings and numbers alike.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from typing import Any

from google.protobuf.json_format import MessageToDict, ParseDict
from google.protobuf.message import Message

__all__ = [
    "REQUEST_TYPES",
    "decode_line",
    "encode_logs_line",
    "encode_metrics_line",
    "encode_spans_line",
    "to_line",
]

# The bytes fields of OTLP that hold ids, by where they sit; no other bytes field
# (AnyValue.bytesValue) is hex-encoded. Walking these paths only, rather than the whole tree,
# keeps the conversion cheap next to the encoding itself.
_ID_KEYS = ("traceId", "spanId", "parentSpanId")
_POINT_KINDS = ("gauge", "sum", "histogram", "exponentialHistogram", "summary")


def _fix(obj: dict[str, Any], convert: Callable[[str], str]) -> None:
    for key in _ID_KEYS:
        value = obj.get(key)
        if isinstance(value, str) and value:
            obj[key] = convert(value)


def _ids(tree: dict[str, Any], signal: str, convert: Callable[[str], str]) -> None:
    """Rewrite the id fields of one OTLP JSON export request in place."""
    if signal == "traces":
        for rs in tree.get("resourceSpans", ()):
            for ss in rs.get("scopeSpans", ()):
                for span in ss.get("spans", ()):
                    _fix(span, convert)
                    for link in span.get("links", ()):
                        _fix(link, convert)
    elif signal == "logs":
        for rl in tree.get("resourceLogs", ()):
            for sl in rl.get("scopeLogs", ()):
                for record in sl.get("logRecords", ()):
                    _fix(record, convert)
    else:
        for rm in tree.get("resourceMetrics", ()):
            for sm in rm.get("scopeMetrics", ()):
                for metric in sm.get("metrics", ()):
                    for kind in _POINT_KINDS:
                        for point in metric.get(kind, {}).get("dataPoints", ()):
                            for exemplar in point.get("exemplars", ()):
                                _fix(exemplar, convert)


def _request_types() -> dict[str, type[Message]]:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    return {
        "traces": ExportTraceServiceRequest,
        "metrics": ExportMetricsServiceRequest,
        "logs": ExportLogsServiceRequest,
    }


REQUEST_TYPES: dict[str, type[Message]] = _request_types()


def _b64_to_hex(text: str) -> str:
    return base64.b64decode(text).hex()


def _hex_to_b64(text: str) -> str:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"id {text!r} is not hex") from None
    return base64.b64encode(raw).decode("ascii")


def to_line(message: Message, signal: str) -> bytes:
    """One OTLP/JSON line (newline included) for an export request of ``signal``."""
    tree = MessageToDict(message, use_integers_for_enums=True)
    _ids(tree, signal, _b64_to_hex)
    try:
        text = json.dumps(tree, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return (text + "\n").encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: fall back to \u escapes, still valid JSON
        text = json.dumps(tree, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
        return (text + "\n").encode("ascii")


def encode_spans_line(spans: Sequence[Any]) -> bytes:
    """One line of ``spans``, by sfumato's own encoder: the line ``to_line`` writes of the
    SDK's message, several times faster. Text with no UTF-8 form (a lone surrogate) goes the
    SDK's way, which leaves out an attribute it cannot encode."""
    from ..otlp_encoding import encode_spans_json

    try:
        return encode_spans_json(spans)
    except UnicodeEncodeError:
        from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

        return to_line(encode_spans(spans), "traces")


def encode_metrics_line(data: Any) -> bytes:
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics

    return to_line(encode_metrics(data), "metrics")


def encode_logs_line(records: Sequence[Any]) -> bytes:
    """One line of ``records``, by sfumato's own encoder (see ``encode_spans_line``)."""
    from ..otlp_encoding import encode_logs_json

    try:
        return encode_logs_json(records)
    except UnicodeEncodeError:
        from sfumato._otel import encode_logs

        return to_line(encode_logs(records), "logs")


def decode_line(line: str | bytes, signal: str) -> Message:
    """Parse one line back into its export request message (hex ids become bytes again).

    Raises ``ValueError`` (``json.JSONDecodeError``, protobuf's ``ParseError``) on a bad line.
    """
    tree = json.loads(line)
    return decode_tree(tree, signal)


def decode_tree(tree: dict[str, Any], signal: str) -> Message:
    """Like :func:`decode_line`, from an already parsed JSON object (which is modified)."""
    if not isinstance(tree, dict):
        raise ValueError(f"an export request is a JSON object, got {type(tree).__name__}")
    _ids(tree, signal, _hex_to_b64)
    message = REQUEST_TYPES[signal]()
    ParseDict(tree, message)
    return message
