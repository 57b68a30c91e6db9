"""Helpers for the Botticelli instrumentation tests: sfumato with in-memory exporters, and
readers for what they hold."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

import sfumato
from sfumato.plugin import Backend, BuildContext, ExporterUse
from sfumato.settings import Settings


class QuietBackend(Backend):
    """Exports nothing itself, for installs that lack the ``none`` backend."""

    def plan(self, settings: Settings, options: Any, context: BuildContext) -> list[ExporterUse]:
        return []


def _quiet_backend() -> str:
    names = {ep.name for ep in entry_points(group="sfumato.backends")}
    return "none" if "none" in names else f"{__name__}:QuietBackend"


def configure_memory(**overrides: Any) -> sfumato.Telemetry:
    """sfumato with nothing exported but the ``memory`` exporter for spans and metrics."""
    settings: dict[str, Any] = {
        "backend": _quiet_backend(),
        "service_name": "botticelli-test",
        "exporters": [{"type": "memory", "signals": ["traces", "metrics"]}],
        "logs": {"enabled": False},
    }
    settings.update(overrides)
    return sfumato.configure(**settings)


def finished_spans(handle: sfumato.Telemetry) -> list[Any]:
    return list(handle.exporter("memory", "traces").get_finished_spans())


def metric_points(handle: sfumato.Telemetry) -> dict[str, Any]:
    """Metric name -> the SDK ``Metric`` (name, unit, description, data points)."""
    data = handle.exporter("memory", "metrics").get_metrics_data()
    found: dict[str, Any] = {}
    if data is None:
        return found
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                found[metric.name] = metric
    return found


def point_sum(metric: Any, **attributes: Any) -> float:
    """Sum of a counter's points (or count of a histogram's) whose attributes include these."""
    total = 0.0
    for point in metric.data.data_points:
        if all(point.attributes.get(k) == v for k, v in attributes.items()):
            total += point.count if hasattr(point, "bucket_counts") else point.value
    return total
