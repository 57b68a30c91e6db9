"""OTLP protobuf bytes for spans and log records, written directly.

The SDK's exporters build a tree of protobuf message objects per batch (one per span, event,
link, attribute and value) and then serialize it; most of an export's CPU goes there. These
encoders write the same bytes straight from the spans: the wire format of
``ExportTraceServiceRequest`` and ``ExportLogsServiceRequest``, fields in field-number order
as protobuf writes them, each resource and scope encoded once per batch, and the encoded
bytes of plain key/value pairs kept in a bounded cache.

What they write means exactly what the SDK's ``encode_spans`` / ``encode_logs`` write for the
same data, field by field (``tests/test_otlp_encoding.py`` decodes both with the official
classes and compares them, and compares the bytes): the same grouping by resource and
scope, the same defaults left out, the same span flags (the parent's is-remote bits), the
same handling of an attribute value the wire cannot carry (that attribute is left out and
logged, as the SDK does).
"""

from __future__ import annotations

import base64
import json
import logging
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.trace import SpanKind, StatusCode
from sfumato._otel import TUPLE_LAYOUT, span_fields

__all__ = ["encode_logs", "encode_logs_json", "encode_spans", "encode_spans_json"]

log = logging.getLogger("sfumato")

_pack_double = struct.Struct("<d").pack
_pack_fixed64 = struct.Struct("<Q").pack
_pack_fixed32 = struct.Struct("<I").pack
# A span's trace id (1) and span id (2) in one call: tag, the trace id's two halves, tag,
# the span id. The parent's span id (4). Start (7) and end (8) times (fixed64).
_pack_ids = struct.Struct(">2sQQ2sQ").pack
_pack_parent = struct.Struct(">2sQ").pack
_pack_times = struct.Struct("<cQcQ").pack
_LOW64 = (1 << 64) - 1
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_UINT64 = (1 << 64) - 1

# Varints of 0 .. 2047: the lengths and counts of almost every field but the containers.
_SMALL = [bytes((n,)) if n < 0x80 else bytes(((n & 0x7F) | 0x80, n >> 7)) for n in range(1 << 11)]


def _varint(n: int) -> bytes:
    if n < 2048:
        return _SMALL[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: its tag, the payload's length and the payload."""
    n = len(payload)
    return tag + (_SMALL[n] if n < 2048 else _varint(n)) + payload


# -- values --------------------------------------------------------------------------------

# AnyValue's fields (a oneof: written even when it holds the type's default).
_STRING = b"\x0a"
_BOOL = (b"\x10\x00", b"\x10\x01")
_INT = b"\x18"
_DOUBLE = b"\x21"
_ARRAY = b"\x2a"
_KVLIST = b"\x32"
_BYTES = b"\x3a"
# KeyValue: key (1), value (2).
_KEY = b"\x0a"
_VALUE = b"\x12"
_EMPTY_VALUE = b"\x12\x00"  # a None value: an empty AnyValue, present


def _any_value(value: Any) -> bytes:
    """AnyValue's encoding of ``value`` (the message's content, without its tag);
    ValueError or TypeError for what the wire cannot carry, as the SDK's encoder raises."""
    kind = type(value)
    if kind is str:
        return _field(_STRING, value.encode("utf-8"))
    if kind is bool:
        return _BOOL[value]
    if kind is int:
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"Value out of range: {value}")
        return _INT + _varint(value & _UINT64)
    if kind is float:
        return _DOUBLE + _pack_double(value)
    if value is None:
        return b""
    if isinstance(value, bool):
        return _BOOL[bool(value)]
    if isinstance(value, str):
        return _field(_STRING, str(value).encode("utf-8"))
    if isinstance(value, int):
        return _any_value(int(value))
    if isinstance(value, float):
        return _DOUBLE + _pack_double(float(value))
    if isinstance(value, bytes):
        return _field(_BYTES, bytes(value))
    if isinstance(value, Sequence):
        items = b"".join(_field(b"\x0a", _any_value(v)) for v in value)
        return _field(_ARRAY, items)
    if isinstance(value, Mapping):
        pairs = b"".join(_field(b"\x0a", _key_value(str(k), v)) for k, v in value.items())
        return _field(_KVLIST, pairs)
    raise TypeError(f"Invalid type {type(value)} of value {value}")


def _key_value(key: str, value: Any) -> bytes:
    """KeyValue's content for ``key`` and ``value``."""
    encoded = _any_value(value)
    head = _field(_KEY, key.encode("utf-8")) if key else b""
    return head + (_field(_VALUE, encoded) if encoded else _EMPTY_VALUE)


# (tag, key, type, value) -> the whole repeated-field entry (tag, length, KeyValue), for plain
# values: the same attribute is on most spans of a service. Bounded: cleared when full.
_KV_CACHE: dict[tuple[bytes, str, type, Any], bytes] = {}
_KV_CACHE_MAX = 8192
_PLAIN = frozenset((str, int, float, bool))


def _attributes(tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
    """The repeated KeyValue field ``tag`` of ``attributes``; an entry the wire cannot carry
    is left out and logged (as the SDK's encoder does)."""
    if not attributes:
        return b""
    out = []
    cache = _KV_CACHE
    for key, value in attributes.items():
        kind = type(value)
        # Cached by value, so not a float equal to another of other bytes (0.0 and -0.0) or
        # to none (NaN).
        if kind in _PLAIN and type(key) is str and (kind is not float or value == value != 0.0):
            ck = (tag, key, kind, value)
            entry = cache.get(ck)
            if entry is None:
                try:
                    entry = _field(tag, _key_value(key, value))
                except (ValueError, TypeError) as exc:
                    log.error("Failed to encode key %s: %s", key, exc)
                    continue
                if len(cache) >= _KV_CACHE_MAX:
                    cache.clear()
                cache[ck] = entry
            out.append(entry)
            continue
        try:
            out.append(_field(tag, _key_value(str(key), value)))
        except (ValueError, TypeError, RecursionError) as exc:
            log.error("Failed to encode key %s: %s", key, exc)
    return b"".join(out)


# -- resource and scope -----------------------------------------------------------------------


def _resource(resource: Any) -> bytes:
    """Resource's content (attributes only, as the SDK writes it)."""
    return _attributes(b"\x0a", resource.attributes)


def _scope(scope: Any) -> bytes:
    """InstrumentationScope's content; empty for no scope."""
    if scope is None:
        return b""
    out = b""
    if scope.name:
        out += _field(b"\x0a", scope.name.encode("utf-8"))
    if scope.version:
        out += _field(b"\x12", scope.version.encode("utf-8"))
    return out + _attributes(b"\x1a", scope.attributes)


def _grouped(items: Sequence[Any], parts: Any) -> list[tuple[Any, list[tuple[Any, list[bytes]]]]]:
    """``items`` encoded by ``parts(item) -> (resource, scope, bytes)``, grouped by resource
    then scope in order of first appearance, equal resources and scopes together and each
    group in the items' order (as the SDK groups them), without hashing a resource per
    item: items are grouped by the objects' identity first, and groups of equal objects
    merged after."""
    by_id: dict[tuple[int, int], list[tuple[int, bytes]]] = {}
    firsts: dict[tuple[int, int], tuple[Any, Any]] = {}
    for index, item in enumerate(items):
        resource, scope, encoded = parts(item)
        key = (id(resource), id(scope))
        found = by_id.get(key)
        if found is None:
            found = by_id[key] = []
            firsts[key] = (resource, scope)
        found.append((index, encoded))
    groups: dict[Any, dict[Any, list[tuple[int, bytes]]]] = {}
    merged = False
    for key, encoded_items in by_id.items():
        resource, scope = firsts[key]
        scopes = groups.setdefault(resource, {})
        into = scopes.get(scope)
        if into is None:
            scopes[scope] = encoded_items
        else:
            into.extend(encoded_items)
            merged = True
    return [
        (
            resource,
            [
                (scope, [e for _, e in (sorted(found) if merged else found)])
                for scope, found in scopes.items()
            ],
        )
        for resource, scopes in groups.items()
    ]


def _request(groups: list[tuple[Any, list[tuple[Any, list[bytes]]]]], item_tag: bytes) -> bytes:
    """ExportTrace/LogsServiceRequest: resource_* (1) of resource (1), scope_* (2) of scope
    (1), items (2) and schema_url (3), then the resource's schema_url (3)."""
    out = []
    for resource, scopes in groups:
        body = [_field(b"\x0a", _resource(resource))]
        for scope, encoded in scopes:
            inner = [_field(b"\x0a", _scope(scope))]
            inner.extend(_field(item_tag, e) for e in encoded)
            schema = scope.schema_url if scope is not None else None
            if schema:
                inner.append(_field(b"\x1a", schema.encode("utf-8")))
            body.append(_field(b"\x12", b"".join(inner)))
        if resource.schema_url:
            body.append(_field(b"\x1a", resource.schema_url.encode("utf-8")))
        out.append(_field(b"\x0a", b"".join(body)))
    return b"".join(out)


# -- spans ----------------------------------------------------------------------------------

# Keyed by the members' ids: an Enum member's hash is a Python-level call, its id is not.
_KINDS: dict[int, bytes] = {id(kind): bytes((0x30, kind.value + 1)) for kind in SpanKind}
# flags (16, fixed32): the parent's is-remote bits, as the SDK writes them.
_FLAGS_LOCAL = b"\x85\x01" + _pack_fixed32(0x100)
_FLAGS_REMOTE = b"\x85\x01" + _pack_fixed32(0x300)
_LINK_FLAGS_LOCAL = b"\x35" + _pack_fixed32(0x100)
_LINK_FLAGS_REMOTE = b"\x35" + _pack_fixed32(0x300)
_STATUS_UNSET = b"\x7a\x00"
_STATUS_CODES: dict[int, bytes] = {
    id(code): (b"\x18" + _varint(code.value) if code.value else b"") for code in StatusCode
}
# Trace states (shared by the spans of a trace) -> their field, by identity; each entry
# keeps its state, so that its id is not reused while cached. Bounded: cleared when full.
_STATES: dict[int, tuple[Any, bytes]] = {}
_STATES_MAX = 1024


def _trace_state(state: Any) -> bytes:
    if state is None:
        return b""
    cached = _STATES.get(id(state))
    if cached is not None and cached[0] is state:
        return cached[1]
    text = state.to_header()
    encoded = _field(b"\x1a", text.encode("utf-8")) if text else b""
    if len(_STATES) >= _STATES_MAX:
        _STATES.clear()
    _STATES[id(state)] = (state, encoded)
    return encoded


def _events(events: Sequence[Any]) -> bytes:
    out = []
    for event in events:
        body = b""
        if event.timestamp:
            body += b"\x09" + _pack_fixed64(event.timestamp)
        if event.name:
            body += _field(b"\x12", event.name.encode("utf-8"))
        body += _attributes(b"\x1a", event.attributes)
        if event.dropped_attributes:
            body += b"\x20" + _varint(event.dropped_attributes)
        out.append(_field(b"\x5a", body))
    return b"".join(out)


def _links(links: Sequence[Any]) -> bytes:
    out = []
    for link in links:
        ctx = link.context
        body = (
            b"\x0a\x10"
            + ctx.trace_id.to_bytes(16, "big")
            + b"\x12\x08"
            + ctx.span_id.to_bytes(8, "big")
            + _attributes(b"\x22", link.attributes)
        )
        if link.dropped_attributes:
            body += b"\x28" + _varint(link.dropped_attributes)
        body += _LINK_FLAGS_REMOTE if ctx.is_remote else _LINK_FLAGS_LOCAL
        out.append(_field(b"\x6a", body))
    return b"".join(out)


def _span_parts(span: Any) -> tuple[Any, Any, bytes]:
    (
        context,
        parent,
        name,
        kind,
        start,
        end,
        attributes,
        events,
        links,
        status,
        resource,
        scope,
        dropped_attributes,
        dropped_events,
        dropped_links,
    ) = span_fields(span)
    if not TUPLE_LAYOUT:  # read by index below: (trace_id, span_id, is_remote, flags, state)
        context = (context.trace_id, context.span_id, context.is_remote, 0, context.trace_state)
        if parent is not None:
            parent = (parent.trace_id, parent.span_id, parent.is_remote)
    trace_id = context[0]
    out = bytearray(
        _pack_ids(b"\x0a\x10", trace_id >> 64, trace_id & _LOW64, b"\x12\x08", context[1])
    )
    state = context[4]
    if state is not None:
        out += _trace_state(state)
    if parent is not None:
        out += _pack_parent(b"\x22\x08", parent[1])
    if name:
        out += _field(b"\x2a", name.encode("utf-8"))
    out += _KINDS[id(kind)]
    if start and end:
        out += _pack_times(b"\x39", start, b"\x41", end)
    elif start:
        out += b"\x39"
        out += _pack_fixed64(start)
    elif end:
        out += b"\x41"
        out += _pack_fixed64(end)
    if attributes:
        out += _attributes(b"\x4a", attributes)
    if dropped_attributes:
        out += b"\x50" + _varint(dropped_attributes)
    if events:
        out += _events(events)
    if dropped_events:
        out += b"\x60" + _varint(dropped_events)
    if links:
        out += _links(links)
    if dropped_links:
        out += b"\x70" + _varint(dropped_links)
    if status is not None:
        description = status.description
        if description:
            code = _STATUS_CODES[id(status.status_code)]
            out += _field(b"\x7a", _field(b"\x12", description.encode("utf-8")) + code)
        else:
            code = _STATUS_CODES[id(status.status_code)]
            out += _field(b"\x7a", code) if code else _STATUS_UNSET
    out += _FLAGS_REMOTE if parent is not None and parent[2] else _FLAGS_LOCAL
    return resource, scope, out  # type: ignore[return-value]  # bytes-like, joined later


def encode_spans(spans: Sequence[Any]) -> bytes:
    """The serialized ``ExportTraceServiceRequest`` of ``spans`` (ended SDK spans)."""
    return _request(_grouped(spans, _span_parts), b"\x12")


# -- log records -----------------------------------------------------------------------------


def _log_parts(readable: Any) -> tuple[Any, Any, bytes]:
    record = readable.log_record
    out = []
    if record.timestamp:
        out.append(b"\x09" + _pack_fixed64(record.timestamp))
    severity = getattr(record.severity_number, "value", None)
    if severity:
        out.append(b"\x10" + _varint(severity))
    if record.severity_text:
        out.append(_field(b"\x1a", record.severity_text.encode("utf-8")))
    out.append(_field(b"\x2a", _any_value(record.body)))
    attributes = record.attributes
    if attributes:
        out.append(_attributes(b"\x32", attributes))
    if readable.dropped_attributes:
        out.append(b"\x38" + _varint(readable.dropped_attributes))
    flags = int(record.trace_flags) if record.trace_flags is not None else 0
    if flags:
        out.append(b"\x45" + _pack_fixed32(flags))
    if record.trace_id:
        out.append(b"\x4a\x10" + record.trace_id.to_bytes(16, "big"))
    if record.span_id:
        out.append(b"\x52\x08" + record.span_id.to_bytes(8, "big"))
    if record.observed_timestamp:
        out.append(b"\x59" + _pack_fixed64(record.observed_timestamp))
    if record.event_name:
        out.append(_field(b"\x62", record.event_name.encode("utf-8")))
    return readable.resource, readable.instrumentation_scope or None, b"".join(out)


def encode_logs(records: Sequence[Any]) -> bytes:
    """The serialized ``ExportLogsServiceRequest`` of ``records`` (ReadableLogRecords)."""
    return _request(_grouped(records, _log_parts), b"\x12")


# -- OTLP/JSON -------------------------------------------------------------------------------
#
# The same requests as OTLP/JSON lines, in the form the local store writes (see
# ``plugins/local/otlp_json.py``): protobuf's JSON mapping (lowerCamelCase names, 64-bit
# integers as decimal strings, enums as integers, bytes as base64) with trace and span ids as
# hex; no spaces, non-ASCII as it is. Written as text, key by key in field-number order: the
# line ``json.dumps`` writes of what ``MessageToDict`` makes of the SDK's message. The text of
# plain key/value pairs is cached, as the protobuf bytes are.

_quote = json.JSONEncoder(ensure_ascii=False).encode  # a JSON string literal
_INF = float("inf")


def _json_double(value: float) -> str:
    if value != value:
        return '"NaN"'
    if value == _INF:
        return '"Infinity"'
    if value == -_INF:
        return '"-Infinity"'
    return repr(value)


def _json_value(value: Any) -> str:
    """AnyValue's JSON object for ``value``; ValueError or TypeError as ``_any_value``."""
    kind = type(value)
    if kind is str:
        return '{"stringValue":' + _quote(value) + "}"
    if kind is bool:
        return '{"boolValue":true}' if value else '{"boolValue":false}'
    if kind is int:
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"Value out of range: {value}")
        return '{"intValue":"' + str(value) + '"}'
    if kind is float:
        return '{"doubleValue":' + _json_double(value) + "}"
    if value is None:
        return "{}"
    if isinstance(value, bool):
        return _json_value(bool(value))
    if isinstance(value, str):
        return _json_value(str(value))
    if isinstance(value, int):
        return _json_value(int(value))
    if isinstance(value, float):
        return _json_value(float(value))
    if isinstance(value, bytes):
        return '{"bytesValue":"' + base64.b64encode(value).decode("ascii") + '"}'
    if isinstance(value, Sequence):
        items = ",".join(_json_value(v) for v in value)
        return '{"arrayValue":{"values":[' + items + "]}}" if items else '{"arrayValue":{}}'
    if isinstance(value, Mapping):
        pairs = ",".join(_json_key_value(str(k), v) for k, v in value.items())
        return '{"kvlistValue":{"values":[' + pairs + "]}}" if pairs else '{"kvlistValue":{}}'
    raise TypeError(f"Invalid type {type(value)} of value {value}")


def _json_key_value(key: str, value: Any) -> str:
    head = '{"key":' + _quote(key) + "," if key else "{"
    return head + '"value":' + _json_value(value) + "}"


_JSON_KV_CACHE: dict[tuple[str, type, Any], str] = {}


def _json_attributes(attributes: Mapping[str, Any] | None) -> str:
    """The KeyValue objects of ``attributes``, comma-separated ("" for none)."""
    if not attributes:
        return ""
    out = []
    cache = _JSON_KV_CACHE
    for key, value in attributes.items():
        kind = type(value)
        if kind in _PLAIN and type(key) is str and (kind is not float or value == value != 0.0):
            ck = (key, kind, value)
            entry = cache.get(ck)
            if entry is None:
                try:
                    entry = _json_key_value(key, value)
                except (ValueError, TypeError) as exc:
                    log.error("Failed to encode key %s: %s", key, exc)
                    continue
                if len(cache) >= _KV_CACHE_MAX:
                    cache.clear()
                cache[ck] = entry
            out.append(entry)
            continue
        try:
            out.append(_json_key_value(str(key), value))
        except (ValueError, TypeError, RecursionError) as exc:
            log.error("Failed to encode key %s: %s", key, exc)
    return ",".join(out)


def _json_resource(resource: Any) -> str:
    attributes = _json_attributes(resource.attributes)
    return '{"attributes":[' + attributes + "]}" if attributes else "{}"


def _json_scope(scope: Any) -> str:
    if scope is None:
        return "{}"
    parts = []
    if scope.name:
        parts.append('"name":' + _quote(scope.name))
    if scope.version:
        parts.append('"version":' + _quote(scope.version))
    attributes = _json_attributes(scope.attributes)
    if attributes:
        parts.append('"attributes":[' + attributes + "]")
    return "{" + ",".join(parts) + "}"


def _json_request(
    groups: list[tuple[Any, list[tuple[Any, list[Any]]]]], names: tuple[str, str, str]
) -> str:
    """``{"resourceSpans":[{"resource":..,"scopeSpans":[{"scope":..,"spans":[..],
    "schemaUrl":..}],"schemaUrl":..}]}`` (``names``: the three keys, for spans or logs)."""
    top, middle, items = names
    resources = []
    for resource, scopes in groups:
        entries = []
        for scope, encoded in scopes:
            entry = '{"scope":' + _json_scope(scope)
            if encoded:
                entry += ',"' + items + '":[' + ",".join(encoded) + "]"
            schema = scope.schema_url if scope is not None else None
            if schema:
                entry += ',"schemaUrl":' + _quote(schema)
            entries.append(entry + "}")
        item = '{"resource":' + _json_resource(resource)
        if entries:
            item += ',"' + middle + '":[' + ",".join(entries) + "]"
        if resource.schema_url:
            item += ',"schemaUrl":' + _quote(resource.schema_url)
        resources.append(item + "}")
    if not resources:
        return "{}"
    return '{"' + top + '":[' + ",".join(resources) + "]}"


def _line(text: str) -> bytes:
    """The line as UTF-8; UnicodeEncodeError for text that has none (a lone surrogate), which
    the local store's ``encode_*_line`` hand to the SDK's encoder, as before."""
    return (text + "\n").encode("utf-8")


_JSON_KINDS: dict[int, str] = {id(kind): ',"kind":' + str(kind.value + 1) for kind in SpanKind}
_JSON_CODES: dict[int, str] = {id(code): f'"code":{code.value}' for code in StatusCode}


def _json_span(span: Any) -> tuple[Any, Any, str]:
    (
        context,
        parent,
        name,
        kind,
        start,
        end,
        attributes,
        events,
        links,
        status,
        resource,
        scope,
        dropped_attributes,
        dropped_events,
        dropped_links,
    ) = span_fields(span)
    out = f'{{"traceId":"{context.trace_id:032x}","spanId":"{context.span_id:016x}"'
    state = context.trace_state
    if state:
        out += ',"traceState":' + _quote(state.to_header())
    if parent is not None:
        out += f',"parentSpanId":"{parent.span_id:016x}"'
    if name:
        out += ',"name":' + _quote(name)
    out += _JSON_KINDS[id(kind)]
    if start:
        out += ',"startTimeUnixNano":"' + str(start) + '"'
    if end:
        out += ',"endTimeUnixNano":"' + str(end) + '"'
    if attributes:
        encoded = _json_attributes(attributes)
        if encoded:
            out += ',"attributes":[' + encoded + "]"
    if dropped_attributes:
        out += ',"droppedAttributesCount":' + str(dropped_attributes)
    if events:
        out += ',"events":[' + ",".join(_json_event(event) for event in events) + "]"
    if dropped_events:
        out += ',"droppedEventsCount":' + str(dropped_events)
    if links:
        out += ',"links":[' + ",".join(_json_link(link) for link in links) + "]"
    if dropped_links:
        out += ',"droppedLinksCount":' + str(dropped_links)
    if status is not None:
        parts = []
        if status.description:
            parts.append('"message":' + _quote(status.description))
        if status.status_code is not StatusCode.UNSET:
            parts.append(_JSON_CODES[id(status.status_code)])
        out += ',"status":{' + ",".join(parts) + "}"
    out += ',"flags":768}' if parent is not None and parent.is_remote else ',"flags":256}'
    return resource, scope, out


def _json_event(event: Any) -> str:
    parts = []
    if event.timestamp:
        parts.append('"timeUnixNano":"' + str(event.timestamp) + '"')
    if event.name:
        parts.append('"name":' + _quote(event.name))
    attributes = _json_attributes(event.attributes)
    if attributes:
        parts.append('"attributes":[' + attributes + "]")
    if event.dropped_attributes:
        parts.append('"droppedAttributesCount":' + str(event.dropped_attributes))
    return "{" + ",".join(parts) + "}"


def _json_link(link: Any) -> str:
    ctx = link.context
    out = f'{{"traceId":"{ctx.trace_id:032x}","spanId":"{ctx.span_id:016x}"'
    attributes = _json_attributes(link.attributes)
    if attributes:
        out += ',"attributes":[' + attributes + "]"
    if link.dropped_attributes:
        out += ',"droppedAttributesCount":' + str(link.dropped_attributes)
    return out + (',"flags":768}' if ctx.is_remote else ',"flags":256}')


def encode_spans_json(spans: Sequence[Any]) -> bytes:
    """One OTLP/JSON line (newline included) of the ``ExportTraceServiceRequest`` of
    ``spans``."""
    groups = _grouped(spans, _json_span)
    return _line(_json_request(groups, ("resourceSpans", "scopeSpans", "spans")))


def _json_log(readable: Any) -> tuple[Any, Any, str]:
    record = readable.log_record
    parts = []
    if record.timestamp:
        parts.append('"timeUnixNano":"' + str(record.timestamp) + '"')
    severity = getattr(record.severity_number, "value", None)
    if severity:
        parts.append('"severityNumber":' + str(severity))
    if record.severity_text:
        parts.append('"severityText":' + _quote(record.severity_text))
    parts.append('"body":' + _json_value(record.body))
    attributes = _json_attributes(record.attributes)
    if attributes:
        parts.append('"attributes":[' + attributes + "]")
    if readable.dropped_attributes:
        parts.append('"droppedAttributesCount":' + str(readable.dropped_attributes))
    flags = int(record.trace_flags) if record.trace_flags is not None else 0
    if flags:
        parts.append('"flags":' + str(flags))
    if record.trace_id:
        parts.append(f'"traceId":"{record.trace_id:032x}"')
    if record.span_id:
        parts.append(f'"spanId":"{record.span_id:016x}"')
    if record.observed_timestamp:
        parts.append('"observedTimeUnixNano":"' + str(record.observed_timestamp) + '"')
    if record.event_name:
        parts.append('"eventName":' + _quote(record.event_name))
    text = "{" + ",".join(parts) + "}"
    return readable.resource, readable.instrumentation_scope or None, text


def encode_logs_json(records: Sequence[Any]) -> bytes:
    """One OTLP/JSON line of the ``ExportLogsServiceRequest`` of ``records``."""
    groups = _grouped(records, _json_log)
    return _line(_json_request(groups, ("resourceLogs", "scopeLogs", "logRecords")))
