"""Reading a local store back: every file of a signal in write order, line by line.

:class:`Store` is what reports build on: ``requests(signal)`` yields the decoded JSON of each
export request, ``spans()`` flattens trace requests into :class:`SpanRecord` objects.

The reader takes whatever is in the directory: a bad line (not JSON, nested too deeply, not
an export request of the expected shape, longer than ``max_line_bytes``) is skipped,
counted in ``Store.skipped`` and named by file and line in ``Store.skipped_text()``, never
fatal. Lines are read in bounded chunks, so a huge line costs no more memory than the limit;
only regular files are opened (no symlinks, FIFOs or devices).
"""

from __future__ import annotations

import base64
import json
import math
import os
import stat
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


# Longest line read: 16 times the default write limit. A store written with a larger
# ``max_line_bytes`` is read with ``Store(directory, max_line_bytes=...)``.
MAX_LINE_BYTES = 16 * 1024**2
_CHUNK = 64 * 1024
_LISTED = 10  # bad lines named in skipped_text(); the rest are counted
# What a line of the wrong shape raises while it is turned into records.
_SHAPE_ERRORS = (TypeError, ValueError, AttributeError, KeyError, RecursionError, OverflowError)
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)  # a FIFO must not block the open
    | getattr(os, "O_CLOEXEC", 0)
)


class Store:
    """A store directory, read-only."""

    def __init__(
        self, directory: str | os.PathLike[str], *, max_line_bytes: int = MAX_LINE_BYTES
    ) -> None:
        self.directory = Path(directory)
        self.max_line_bytes = max_line_bytes
        self.skipped = 0  # lines that could not be read
        self._bad: dict[str, str] = {}  # "file:line" -> why, the first few
        self._bad_files: dict[str, str] = {}  # the first few files not read, and why

    def exists(self) -> bool:
        return self.directory.is_dir()

    def files(self, signal: str | None = None) -> list[StoreFile]:
        others: list[Path] = []
        found = list_files(self.directory, signal, others)
        for path in others:
            self._bad_file(path.name, "not a regular file")
        return found

    # -- what was skipped ----------------------------------------------------------------------

    def _bad_file(self, name: str, why: str) -> None:
        if name not in self._bad_files and len(self._bad_files) < _LISTED:
            self._bad_files[name] = why

    def _skip(self, name: str, number: int, why: str) -> None:
        self.skipped += 1
        if len(self._bad) < _LISTED:
            self._bad.setdefault(f"{name}:{number}", why)

    def skipped_text(self) -> str:
        """What was skipped, in one line (empty when nothing was): ``skipped 3 bad lines:
        traces.jsonl:17 (not JSON), ...``, then the files that are not regular files."""
        parts = []
        if self.skipped:
            listed = ", ".join(f"{where} ({why})" for where, why in self._bad.items())
            more = self.skipped - len(self._bad)
            extra = f" and {more} more" if more > 0 else ""
            noun = "bad line" if self.skipped == 1 else "bad lines"
            parts.append(f"skipped {self.skipped} {noun}: {listed}{extra}")
        if self._bad_files:
            listed = ", ".join(f"{name} ({why})" for name, why in self._bad_files.items())
            parts.append(f"not read: {listed}")
        return "; ".join(parts)

    # -- reading -------------------------------------------------------------------------------

    def _lines(self, store_file: StoreFile) -> Iterator[tuple[int, bytes | None]]:
        """``(line number, line)`` of a file, ``None`` for a line over the limit; read in
        chunks, so a line over the limit is passed over without being held."""
        name = store_file.path.name
        try:
            fd = os.open(store_file.path, _OPEN_FLAGS)
        except FileNotFoundError:  # deleted by the cap while we read
            return
        except OSError as exc:  # a symlink (ELOOP), no permission, ...
            why = "not a regular file" if os.path.islink(store_file.path) else exc.strerror
            self._bad_file(name, str(why or exc))
            return
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                self._bad_file(name, "not a regular file")
                return
            limit = self.max_line_bytes
            line = bytearray()
            too_long = False
            number = 0
            while True:
                chunk = os.read(fd, _CHUNK)
                if not chunk:
                    break
                start = 0
                while True:
                    end = chunk.find(b"\n", start)
                    piece = chunk[start:] if end < 0 else chunk[start:end]
                    if not too_long:
                        if len(line) + len(piece) > limit:
                            too_long = True
                            line.clear()
                        else:
                            line += piece
                    if end < 0:
                        break
                    number += 1
                    yield number, None if too_long else bytes(line)
                    line.clear()
                    too_long = False
                    start = end + 1
            if line or too_long:
                yield number + 1, None if too_long else bytes(line)
        finally:
            os.close(fd)

    def _requests(self, signal: str) -> Iterator[tuple[str, int, dict[str, Any]]]:
        for store_file in self.files(signal):
            name = store_file.path.name
            for number, raw in self._lines(store_file):
                if raw is None:
                    self._skip(name, number, f"longer than {_size(self.max_line_bytes)}")
                    continue
                if not raw.strip():
                    continue
                try:
                    tree = json.loads(raw)
                except RecursionError:
                    self._skip(name, number, "nested too deeply")
                    continue
                except ValueError:
                    self._skip(name, number, "not JSON")
                    continue
                if isinstance(tree, dict):
                    yield name, number, tree
                else:
                    self._skip(name, number, "not an export request")

    def requests(self, signal: str) -> Iterator[dict[str, Any]]:
        """The JSON object of every export request of ``signal``, oldest first."""
        for _, _, tree in self._requests(signal):
            yield tree

    def spans(self) -> Iterator[SpanRecord]:
        """Every span of the store, in write order."""
        for name, number, request in self._requests("traces"):
            try:
                records = list(_spans_of(request))
            except _SHAPE_ERRORS:
                self._skip(name, number, "not an export request of spans")
                continue
            yield from records


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB"):
        if n < 1024 or n % 1024:
            return f"{n} {unit}"
        n //= 1024
    return f"{n} GiB"


def _spans_of(request: dict[str, Any]) -> Iterator[SpanRecord]:
    for resource_spans in _list(request.get("resourceSpans")):
        resource = attributes(_dict(resource_spans.get("resource")).get("attributes"))
        service = str(resource.get("service.name", "unknown_service"))
        for scope_spans in _list(resource_spans.get("scopeSpans")):
            scope = _text(_dict(scope_spans.get("scope")).get("name", ""))
            for span in _list(scope_spans.get("spans")):
                yield _span(_dict(span), service, scope, resource)


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value


def _dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _span(span: dict[str, Any], service: str, scope: str, resource: dict[str, Any]) -> SpanRecord:
    status = _dict(span.get("status"))
    return SpanRecord(
        service=service,
        scope=scope,
        trace_id=_text(span.get("traceId", "")),
        span_id=_text(span.get("spanId", "")),
        parent_span_id=_text(span.get("parentSpanId", "")),
        name=_text(span.get("name", "")),
        kind=int(span.get("kind", 0)),
        start_ns=int(span.get("startTimeUnixNano", 0)),
        end_ns=int(span.get("endTimeUnixNano", 0)),
        status_code=_status_code(status.get("code", 0)),
        status_message=_text(status.get("message", "")),
        flags=int(span.get("flags", 0)),
        attributes=attributes(span.get("attributes")),
        events=[
            EventRecord(
                _text(e.get("name", "")),
                int(e.get("timeUnixNano", 0)),
                attributes(e.get("attributes")),
            )
            for e in map(_dict, _list(span.get("events")))
        ],
        resource=resource,
        links=[
            (_text(k.get("traceId", "")), _text(k.get("spanId", "")))
            for k in map(_dict, _list(span.get("links")))
        ],
    )


def _status_code(code: Any) -> int:
    # Enums are integers in OTLP JSON; names are accepted too, as a receiver would.
    if isinstance(code, str) and not code.isdigit():
        return {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}.get(code, 0)
    return int(code)
