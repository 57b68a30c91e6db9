"""OTLP/JSON lines: SDK data -> one export request per line, and back.

The OTLP JSON encoding is protobuf's JSON mapping with three differences that matter here:
trace and span ids are hex strings (protobuf would write base64), enum values are integers,
and field names are lowerCamelCase. 64-bit integers stay decimal strings, as the mapping
writes them; receivers accept both strings and numbers.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
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

# Every bytes field of OTLP that holds an id. No other bytes field (AnyValue.bytesValue)
# is hex-encoded, and these names never appear as keys elsewhere: attributes are lists of
# {"key": ..., "value": ...}.
_ID_FIELDS = frozenset({"traceId", "spanId", "parentSpanId"})


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


def _ids(value: Any, convert: Any) -> None:
    """Rewrite the id fields of an OTLP JSON tree in place."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in _ID_FIELDS and isinstance(item, str):
                value[key] = convert(item)
            elif isinstance(item, (dict, list)):
                _ids(item, convert)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, (dict, list)):
                _ids(item, convert)


def _b64_to_hex(text: str) -> str:
    return base64.b64decode(text).hex()


def _hex_to_b64(text: str) -> str:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"id {text!r} is not hex") from None
    return base64.b64encode(raw).decode("ascii")


def to_line(message: Message) -> bytes:
    """One OTLP/JSON line (newline included) for an export request message."""
    tree = MessageToDict(message, use_integers_for_enums=True)
    _ids(tree, _b64_to_hex)
    try:
        text = json.dumps(tree, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return (text + "\n").encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: fall back to \u escapes, still valid JSON
        text = json.dumps(tree, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
        return (text + "\n").encode("ascii")


def encode_spans_line(spans: Sequence[Any]) -> bytes:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    return to_line(encode_spans(spans))


def encode_metrics_line(data: Any) -> bytes:
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics

    return to_line(encode_metrics(data))


def encode_logs_line(records: Sequence[Any]) -> bytes:
    from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs

    return to_line(encode_logs(records))


def decode_line(line: str | bytes, signal: str) -> Message:
    """Parse one line back into its export request message (hex ids become bytes again).

    Raises ``ValueError`` (``json.JSONDecodeError``, protobuf's ``ParseError``) on a bad line.
    """
    tree = json.loads(line)
    return decode_tree(tree, signal)


def decode_tree(tree: dict[str, Any], signal: str) -> Message:
    """Like :func:`decode_line`, from an already parsed JSON object (which is modified)."""
    try:
        _ids(tree, _hex_to_b64)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None
    message = REQUEST_TYPES[signal]()
    ParseDict(tree, message)
    return message
