"""SDK exporters writing the local store, one per signal, and the ``local`` exporter plugin.

They run on export threads (the export queue's worker, the periodic metric reader) and never
raise: a failed write is logged once per exporter, counted, and reported to the caller as a
failed export.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from pydantic import BaseModel
from sfumato._metric_export import data_points
from sfumato._otel import LogRecordExporter, LogRecordExportResult
from sfumato.plugin import BuildContext, Exporter
from sfumato.settings import Signal

from .files import RotatingFile
from .options import LocalOptions
from .otlp_json import encode_logs_line, encode_metrics_line, encode_spans_line

__all__ = ["LocalExporter", "LocalLogExporter", "LocalMetricExporter", "LocalSpanExporter"]

log = logging.getLogger("sfumato")


def split_lines(
    items: Sequence[Any], encode: Callable[[Sequence[Any]], bytes], limit: int
) -> tuple[list[bytes], list[Any]]:
    """Encode ``items`` as few lines as possible, each at most ``limit`` bytes.

    A batch whose line is too long is halved until it fits; a single item too long for a
    line is dropped. Returns the lines and the items dropped.
    """
    if not items:
        return [], []
    line = encode(items)
    if len(line) <= limit:
        return [line], []
    if len(items) == 1:
        return [], [items[0]]
    middle = len(items) // 2
    left, dropped_left = split_lines(items[:middle], encode, limit)
    right, dropped_right = split_lines(items[middle:], encode, limit)
    return left + right, dropped_left + dropped_right


class _Writer:
    """What the three exporters share: the file, the limits and the failure accounting."""

    def __init__(
        self, file: RotatingFile, max_line_bytes: int, context: BuildContext | None, signal: str
    ) -> None:
        self.file = file
        self.max_line_bytes = max_line_bytes
        self.signal = signal
        self._failure_logged = False
        # The items of the last write too large for any line. The export queue reads how
        # many through the exporter's ``sfumato_partial()`` and counts them as
        # dropped.too_large, not exported (the metric reader's wrapper likewise).
        self.too_large: list[Any] = []

    def write(self, items: Sequence[Any], encode: Callable[[Sequence[Any]], bytes]) -> bool:
        self.too_large = []
        try:
            lines, self.too_large = split_lines(items, encode, self.max_line_bytes)
            self.file.write_lines(lines)
            return True
        except Exception as exc:
            if not self._failure_logged:
                self._failure_logged = True
                log.warning(
                    "sfumato: local store could not write %s to %s (%s: %s); further "
                    "failures are counted in stats(), not logged",
                    self.signal,
                    self.file.path,
                    type(exc).__name__,
                    exc,
                )
            return False


class LocalSpanExporter(SpanExporter):
    def __init__(self, writer: _Writer) -> None:
        self.writer = writer

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        ok = self.writer.write(spans, encode_spans_line)
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE

    def sfumato_partial(self) -> tuple[int, str] | None:
        """Spans of the last export too large for a line (dropped, not written)."""
        return _partial(self.writer.too_large, len)

    def shutdown(self) -> None:
        self.writer.file.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # every export is written through at once


class LocalLogExporter(LogRecordExporter):
    def __init__(self, writer: _Writer) -> None:
        self.writer = writer

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        ok = self.writer.write(batch, encode_logs_line)
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE

    def sfumato_partial(self) -> tuple[int, str] | None:
        """Log records of the last export too large for a line (dropped, not written)."""
        return _partial(self.writer.too_large, len)

    def shutdown(self) -> None:
        self.writer.file.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _one_metric_each(data: MetricsData) -> list[MetricsData]:
    """Split a collection into one MetricsData per metric, each with its resource and scope."""
    return [
        MetricsData(
            resource_metrics=[
                ResourceMetrics(
                    resource=rm.resource,
                    scope_metrics=[
                        ScopeMetrics(scope=sm.scope, metrics=[m], schema_url=sm.schema_url)
                    ],
                    schema_url=rm.schema_url,
                )
            ]
        )
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
    ]


class LocalMetricExporter(MetricExporter):
    """Push exporter for the periodic reader: one line per collection (cumulative).

    What it exports is counted by the reader's wrapper (``metrics.exported``, in data
    points), from the result returned here: a failed write is a FAILURE, never counted
    exported."""

    def __init__(self, writer: _Writer, context: BuildContext | None = None) -> None:
        super().__init__()
        self.writer = writer

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        def encode(parts: Sequence[MetricsData]) -> bytes:
            if len(parts) == 1:
                return encode_metrics_line(parts[0])
            merged = [rm for part in parts for rm in part.resource_metrics]
            return encode_metrics_line(MetricsData(resource_metrics=merged))

        # Written whole when it fits a line (the usual case); split per metric when not.
        whole = encode_metrics_line(metrics_data) if metrics_data.resource_metrics else b""
        if not whole:
            return MetricExportResult.SUCCESS
        if len(whole) <= self.writer.max_line_bytes:
            ok = self.writer.write([metrics_data], lambda _: whole)
        else:
            ok = self.writer.write(_one_metric_each(metrics_data), encode)
        return MetricExportResult.SUCCESS if ok else MetricExportResult.FAILURE

    def sfumato_partial(self) -> tuple[int, str] | None:
        """Data points of the last export in metrics too large for a line (dropped)."""
        return _partial(self.writer.too_large, lambda dropped: sum(map(data_points, dropped)))

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.writer.file.close()


def _partial(dropped: list[Any], count: Callable[[list[Any]], int]) -> tuple[int, str] | None:
    n = count(dropped) if dropped else 0
    return (n, "too_large") if n else None


def open_store_file(options: LocalOptions, signal: str) -> RotatingFile:
    directory = os.path.abspath(os.path.expanduser(options.directory))
    return RotatingFile(
        directory,
        signal,
        max_file_bytes=options.max_file_bytes,
        max_total_bytes=options.max_total_bytes,
    )


class LocalExporter(Exporter):
    """Writes all three signals as OTLP/JSON lines into a local directory (see docs)."""

    Options: ClassVar[type[BaseModel]] = LocalOptions

    def create(self, signal: Signal, options: Any, context: BuildContext) -> Any:
        file = open_store_file(options, signal)
        try:
            file.make_directory()
            file.enforce_cap(rescan=True)  # the limits may have shrunk since the last run
        except OSError as exc:
            context.notice(
                f"local store: cannot use {file.directory} ({exc.strerror or exc}); "
                f"{signal} written there will be counted as failed exports"
            )
        line_limit = min(options.max_line_bytes, options.max_file_bytes)
        writer = _Writer(file, line_limit, context, signal)
        if signal == "traces":
            return LocalSpanExporter(writer)
        if signal == "metrics":
            return LocalMetricExporter(writer, context)
        return LocalLogExporter(writer)
