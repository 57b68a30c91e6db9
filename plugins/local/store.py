"""Reading a local store back: every file of a signal in write order, line by line.

:class:`Store` is what reports build on: ``requests(signal)`` yields the decoded JSON of each
export request, ``spans()`` flattens trace requests into :class:`SpanRecord` objects. A line
that is not valid JSON (a write cut short by a crash, a file truncated by hand) is skipped
and counted in ``Store.skipped``, never fatal.
"""

from __future__ import annotations

import base64
import json
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .files import StoreFile, list_files

__all__ = [
    "ADJUSTED_COUNT",
    "EventRecord",
    "SpanRecord",
    "Store",
    "any_value",
    "attributes",
]

# The attribute samplers write on each kept span: how many spans it stands for.
ADJUSTED_COUNT = "sampling.adjusted_count"

STATUS_ERROR = 2  # Status.code in OTLP: 0 unset, 1 ok, 2 error
_FLAG_HAS_IS_REMOTE = 0x100  # SpanFlags: the parent's is-remote bit is known ...
_FLAG_IS_REMOTE = 0x200  # ... and set


def any_value(value: dict[str, Any]) -> Any:
    """An OTLP JSON AnyValue as a Python value."""
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [any_value(v) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return attributes(value["kvlistValue"].get("values", []))
    if "bytesValue" in value:
        return base64.b64decode(value["bytesValue"])
    return None


def attributes(items: list[dict[str, Any]] | None) -> dict[str, Any]:
    """OTLP JSON attributes (a list of key/value objects) as a dict."""
    return {kv["key"]: any_value(kv.get("value", {})) for kv in items or () if "key" in kv}


@dataclass(frozen=True)
class EventRecord:
    name: str
    time_ns: int
    attributes: dict[str, Any]


@dataclass
class SpanRecord:
    """One span as read from the store, with its resource's service name."""

    service: str
    scope: str
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: int
    start_ns: int
    end_ns: int
    status_code: int
    status_message: str
    flags: int
    attributes: dict[str, Any]
    events: list[EventRecord] = field(default_factory=list)
    resource: dict[str, Any] = field(default_factory=dict)
    links: list[tuple[str, str]] = field(default_factory=list)  # (trace id, span id)

    @property
    def duration_ns(self) -> int:
        return max(0, self.end_ns - self.start_ns)

    @property
    def is_local_root(self) -> bool:
        """No parent, or a parent in another process (a trace entering this service)."""
        if not self.parent_span_id:
            return True
        return bool(self.flags & _FLAG_HAS_IS_REMOTE and self.flags & _FLAG_IS_REMOTE)

    @property
    def adjusted_count(self) -> float:
        """How many spans this one stands for under sampling (1 when not weighted)."""
        value = self.attributes.get(ADJUSTED_COUNT, 1)
        try:
            weight = float(value)
        except (TypeError, ValueError):
            return 1.0
        return weight if math.isfinite(weight) and weight > 0 else 1.0

    @property
    def exceptions(self) -> list[EventRecord]:
        return [e for e in self.events if e.name == "exception"]

    @property
    def is_error(self) -> bool:
        return self.status_code == STATUS_ERROR or bool(self.exceptions)

    @property
    def error_message(self) -> str:
        """The status message, else the first exception as ``Type: message``."""
        if self.status_message:
            return self.status_message
        for event in self.exceptions:
            kind = str(event.attributes.get("exception.type", "") or "")
            text = str(event.attributes.get("exception.message", "") or "")
            return f"{kind}: {text}" if kind and text else kind or text
        return ""


class Store:
    """A store directory, read-only."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.skipped = 0  # lines that could not be read

    def exists(self) -> bool:
        return self.directory.is_dir()

    def files(self, signal: str | None = None) -> list[StoreFile]:
        return list_files(self.directory, signal)

    def requests(self, signal: str) -> Iterator[dict[str, Any]]:
        """The JSON object of every export request of ``signal``, oldest first."""
        for store_file in self.files(signal):
            try:
                handle = open(store_file.path, "rb")  # noqa: SIM115 - closed below
            except FileNotFoundError:  # deleted by the cap while we read
                continue
            with handle:
                for raw in handle:
                    if not raw.strip():
                        continue
                    try:
                        tree = json.loads(raw)
                    except ValueError:
                        self.skipped += 1
                        continue
                    if isinstance(tree, dict):
                        yield tree
                    else:
                        self.skipped += 1

    def spans(self) -> Iterator[SpanRecord]:
        """Every span of the store, in write order."""
        for request in self.requests("traces"):
            for resource_spans in request.get("resourceSpans", ()):
                resource = attributes(resource_spans.get("resource", {}).get("attributes"))
                service = str(resource.get("service.name", "unknown_service"))
                for scope_spans in resource_spans.get("scopeSpans", ()):
                    scope = scope_spans.get("scope", {}).get("name", "")
                    for span in scope_spans.get("spans", ()):
                        yield _span(span, service, scope, resource)


def _span(span: dict[str, Any], service: str, scope: str, resource: dict[str, Any]) -> SpanRecord:
    status = span.get("status", {})
    return SpanRecord(
        service=service,
        scope=scope,
        trace_id=span.get("traceId", ""),
        span_id=span.get("spanId", ""),
        parent_span_id=span.get("parentSpanId", ""),
        name=span.get("name", ""),
        kind=int(span.get("kind", 0)),
        start_ns=int(span.get("startTimeUnixNano", 0)),
        end_ns=int(span.get("endTimeUnixNano", 0)),
        status_code=_status_code(status.get("code", 0)),
        status_message=status.get("message", ""),
        flags=int(span.get("flags", 0)),
        attributes=attributes(span.get("attributes")),
        events=[
            EventRecord(
                e.get("name", ""), int(e.get("timeUnixNano", 0)), attributes(e.get("attributes"))
            )
            for e in span.get("events", ())
        ],
        resource=resource,
        links=[(k.get("traceId", ""), k.get("spanId", "")) for k in span.get("links", ())],
    )


def _status_code(code: Any) -> int:
    # Enums are integers in OTLP JSON; names are accepted too, as a receiver would.
    if isinstance(code, str) and not code.isdigit():
        return {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}.get(code, 0)
    return int(code)
