"""A push metric exporter that counts what it exports, as the export queues count spans and
log records: ``metrics.exported``, ``metrics.dropped.export_failed`` (and
``metrics.export_failed.<status>``) and ``metrics.dropped.<reason>`` for what the exporter
dropped itself, in data points, per exporter (``exporters.<name>.metrics.*``) and in total.

Metrics do not go through an export queue: the SDK's PeriodicExportingMetricReader collects
and exports on its own thread. Wrapping its exporter counts each export's result; an
exporter that raises counts as a failure, is logged once, and never reaches the reader.
"""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult

from ._export_queue import RETRYABLE, advice
from ._otel import exporter_preferences
from ._stats import Stats

__all__ = ["CountingMetricExporter", "data_points"]

log = logging.getLogger("sfumato")


def data_points(metrics_data: Any) -> int:
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
        temporality, aggregation = exporter_preferences(exporter)
        super().__init__(
            preferred_temporality=temporality,
            preferred_aggregation=aggregation,
        )
        self.exporter = exporter
        self.name = name
        self._stats = stats
        self._exported = stats.part("metrics.exported", name)
        self._failed = stats.part("metrics.dropped.export_failed", name)
        self._explained: set[str] = set()
        self._failure_logged = False

    def export(
        self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        result: Any
        try:
            result = self.exporter.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception as exc:
            result = exc
        points = data_points(metrics_data)
        if result is MetricExportResult.SUCCESS:
            dropped, reason = self._partial(points)
            if dropped:
                self._stats.part(f"metrics.dropped.{reason}", self.name).add(dropped)
            self._exported.add(points - dropped)
            return MetricExportResult.SUCCESS
        status = "error" if isinstance(result, Exception) else self._export_status()
        self._failed.add(points)
        self._stats.part(f"metrics.export_failed.{status}", self.name).add(points)
        self._log(result, status)
        return MetricExportResult.FAILURE

    def _partial(self, points: int) -> tuple[int, str]:
        """Points of a successful export the exporter reports it dropped itself."""
        report = getattr(self.exporter, "sfumato_partial", None)
        try:
            found = report() if report is not None else None
            if found:
                return min(int(found[0]), points), str(found[1])
        except Exception:
            log.debug("sfumato: %s sfumato_partial raised", self.name, exc_info=True)
        return 0, ""

    def _export_status(self) -> str:
        """The status of the failure as the exporter reports it (HTTP status, gRPC code)."""
        report = getattr(self.exporter, "sfumato_failure", None)
        try:
            failure = report() if report is not None else None
            if failure:
                return str(failure[0])
        except Exception:
            log.debug("sfumato: %s sfumato_failure raised", self.name, exc_info=True)
        return "unreachable"

    def _log(self, result: Any, status: str) -> None:
        # Once per exporter for retryable failures, once per permanent status.
        if status in RETRYABLE or status == "unreachable":
            if self._failure_logged:
                return
            self._failure_logged = True
            log.warning(
                "sfumato: metrics export through %s failed (%s); failures are counted in "
                "stats(), this warning is not repeated",
                self.name,
                status if status != "unreachable" else result,
            )
            return
        if status in self._explained:
            return
        self._explained.add(status)
        if status == "error":
            log.warning(
                "sfumato: metrics export through %s raised %s: %s (counted as "
                "metrics.export_failed.error in stats()), this warning is not repeated",
                self.name,
                type(result).__name__,
                result,
            )
            return
        log.warning(
            "sfumato: metrics export through %s refused with %s: %s (counted as "
            "metrics.export_failed.%s in stats())",
            self.name,
            status,
            advice("metrics", status, stops=False),
            status,
        )

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
