"""A push metric exporter that counts what it exports, as the export queues count spans and
log records: ``metrics.exported`` and ``metrics.dropped.export_failed``, in data points.

Metrics do not go through an export queue: the SDK's PeriodicExportingMetricReader collects
and exports on its own thread. Wrapping its exporter counts each export's result; an
exporter that raises counts as a failure, is logged once, and never reaches the reader.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult

from ._stats import Stats

__all__ = ["CountingMetricExporter"]

log = logging.getLogger("sfumato")


def _points(metrics_data: Any) -> int:
    """Data points in one export (0 for something that is not MetricsData)."""
    try:
        return sum(
            len(metric.data.data_points)
            for rm in metrics_data.resource_metrics
            for sm in rm.scope_metrics
            for metric in sm.metrics
        )
    except Exception:
        return 0


class CountingMetricExporter(MetricExporter):
    """Wraps ``exporter``; keeps its preferred temporality and aggregation."""

    def __init__(self, exporter: MetricExporter, stats: Stats, name: str) -> None:
        super().__init__(
            preferred_temporality=getattr(exporter, "_preferred_temporality", None),
            preferred_aggregation=getattr(exporter, "_preferred_aggregation", None),
        )
        self.exporter = exporter
        self.name = name
        self._exported = stats.counter("metrics.exported")
        self._failed = stats.counter("metrics.dropped.export_failed")
        self._failure_logged = False

    def export(
        self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        result: Any
        try:
            result = self.exporter.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception as exc:
            result = exc
        ok = result is MetricExportResult.SUCCESS
        (self._exported if ok else self._failed).add(_points(metrics_data))
        if ok:
            return MetricExportResult.SUCCESS
        if not self._failure_logged:
            self._failure_logged = True
            log.warning(
                "sfumato: metrics export through %s failed (%s); failures are counted in "
                "stats(), this warning is not repeated",
                self.name,
                result,
            )
        return MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        try:
            return bool(self.exporter.force_flush(timeout_millis=timeout_millis))
        except Exception:
            log.debug("sfumato: %s force_flush raised", self.name, exc_info=True)
            return False

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        try:
            self.exporter.shutdown(timeout_millis=timeout_millis, **kwargs)
        except Exception:
            log.debug("sfumato: %s shutdown raised", self.name, exc_info=True)
