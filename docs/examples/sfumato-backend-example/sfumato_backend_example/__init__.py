"""An example third-party sfumato backend: spans and log records as JSON lines in a file.

``backend = "example"`` with ``[telemetry.backend_options] path = "..."``. Each line is one
object with a ``kind`` of ``span`` or ``log``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from pydantic import BaseModel, ConfigDict, Field
from sfumato import ConfigError
from sfumato.plugin import Backend, BuildContext, Exporter, ExporterUse
from sfumato.settings import Settings, Signal

__all__ = ["JsonLinesBackend", "JsonLinesExporter", "JsonLinesFile"]


class JsonLinesFile:
    """Appends JSON objects to a file, one per line; shared by the span and log exporters."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def write(self, objects: Sequence[dict[str, Any]]) -> None:
        text = "".join(json.dumps(o, sort_keys=True, default=str) + "\n" for o in objects)
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write(text)


def _attributes(attributes: Any) -> dict[str, Any]:
    # Attribute values are scalars or sequences of scalars; JSON takes the latter as lists.
    return {
        k: v if isinstance(v, (str, bool, int, float)) else list(v)
        for k, v in (attributes or {}).items()
    }


class JsonLinesSpanExporter(SpanExporter):
    def __init__(self, out: JsonLinesFile) -> None:
        self.out = out

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            self.out.write(
                [
                    {
                        "kind": "span",
                        "name": span.name,
                        "trace_id": f"{span.context.trace_id:032x}" if span.context else None,
                        "span_id": f"{span.context.span_id:016x}" if span.context else None,
                        "service": span.resource.attributes.get("service.name"),
                        "attributes": _attributes(span.attributes),
                    }
                    for span in spans
                ]
            )
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS


def _log_line(readable: ReadableLogRecord) -> dict[str, Any]:
    record = readable.log_record
    return {
        "kind": "log",
        "body": record.body,
        "severity": record.severity_text,
        "trace_id": f"{record.trace_id:032x}" if record.trace_id else None,
        "service": readable.resource.attributes.get("service.name"),
    }


class JsonLinesLogExporter(LogRecordExporter):
    def __init__(self, out: JsonLinesFile) -> None:
        self.out = out

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        try:
            self.out.write([_log_line(r) for r in batch])
        except OSError:
            return LogRecordExportResult.FAILURE
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True  # every export is written before it returns


class JsonLinesOptions(BaseModel):
    # extra="forbid": a misspelt option is a ConfigError naming the key, like sfumato's own.
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="File the JSON lines are appended to; created if missing.")


class JsonLinesExporter(Exporter):
    """Exporter plugin ``example-jsonl``: traces and logs (metrics are not line-shaped)."""

    Options: ClassVar[type[BaseModel]] = JsonLinesOptions
    signals: ClassVar[frozenset[Signal]] = frozenset({"traces", "logs"})

    def create(self, signal: Signal, options: Any, context: BuildContext) -> Any:
        out = JsonLinesFile(options.path)
        if signal == "traces":
            return JsonLinesSpanExporter(out)
        return JsonLinesLogExporter(out)


class JsonLinesBackend(Backend):
    """Backend plugin ``example``: every span and log record to ``backend_options.path``."""

    Options: ClassVar[type[BaseModel]] = JsonLinesOptions
    signals: ClassVar[frozenset[Signal]] = frozenset({"traces", "logs"})

    def plan(self, settings: Settings, options: Any, context: BuildContext) -> list[ExporterUse]:
        if Path(options.path).is_dir():
            # key: the option's full dotted key, so the error names it with its line.
            raise ConfigError(
                f"{options.path!r} is a directory; expected a file to append to",
                key="telemetry.backend_options.path",
            )
        return [ExporterUse("example-jsonl", frozenset({"traces", "logs"}), {"path": options.path})]
