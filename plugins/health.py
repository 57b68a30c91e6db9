"""Health rules computed from the telemetry itself: what ``/healthz`` answers.

A :class:`HealthMonitor` owns a metric reader with delta temporality, added to sfumato's
MeterProvider. Each ``collect()`` (every ``collect_interval_ms``, and on each request) turns
the deltas since the previous one into one sample per rule, stamped with the monitor's clock;
a rule is evaluated over the samples inside its window. Counters and histogram counts are
summed; a histogram's ``max`` is exact per collection, so the ``max`` kind sees the largest
observation of the window. The clock is injectable, so tests move time instead of waiting.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from sfumato.settings import HealthRule

__all__ = ["HealthMonitor", "RuleState", "delta_reader"]


def delta_reader() -> InMemoryMetricReader:
    """A pull reader that reports what changed since its previous collection."""
    delta, cumulative = AggregationTemporality.DELTA, AggregationTemporality.CUMULATIVE
    return InMemoryMetricReader(
        preferred_temporality={
            Counter: delta,
            Histogram: delta,
            ObservableCounter: delta,
            UpDownCounter: cumulative,
            ObservableUpDownCounter: cumulative,
            ObservableGauge: cumulative,
        }
    )


@dataclass(frozen=True)
class _Sample:
    """One rule's share of one collection: matched and total increase, largest value."""

    matched: float
    total: float
    largest: float | None


@dataclass(frozen=True)
class RuleState:
    rule: HealthRule
    value: float | None  # None: no data in the window
    ok: bool

    def to_dict(self) -> dict[str, Any]:
        r = self.rule
        return {
            "name": r.name,
            "metric": r.metric,
            "kind": r.kind,
            "window": r.window,
            "threshold": r.threshold,
            **({"quota": r.quota} if r.quota is not None else {}),
            "value": self.value,
            "ok": self.ok,
            **({"summary": r.summary} if r.summary else {}),
        }


def _matches(attributes: Mapping[str, Any] | None, where: Mapping[str, str]) -> bool:
    attrs = attributes or {}
    return all(str(attrs.get(key)) == value for key, value in where.items())


def _points(data: Any) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    if data is None:
        return found
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


def _sample(rule: HealthRule, points: Sequence[Any]) -> _Sample:
    matched = total = 0.0
    largest: float | None = None
    for point in points:
        histogram = hasattr(point, "bucket_counts")
        amount = float(point.count if histogram else point.value)
        total += amount
        if not _matches(point.attributes, rule.where):
            continue
        matched += amount
        if rule.kind == "max":
            top = (point.max if point.count else None) if histogram else point.value
            if top is not None and (largest is None or top > largest):
                largest = float(top)
    return _Sample(matched, total, largest)


class HealthMonitor:
    """Samples the metrics the rules name and evaluates the rules over their windows."""

    def __init__(
        self,
        rules: Iterable[HealthRule],
        *,
        reader: InMemoryMetricReader | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rules = list(rules)
        self.reader = reader if reader is not None else delta_reader()
        self.clock = clock
        self._samples: deque[tuple[float, list[_Sample]]] = deque()
        self._horizon = max((r.window_s for r in self.rules), default=0)
        self._lock = threading.Lock()

    def collect(self) -> None:
        """Take the deltas since the last collection as one sample per rule."""
        with self._lock:
            points = _points(self.reader.get_metrics_data())
            now = self.clock()
            self._samples.append((now, [_sample(r, points.get(r.metric, ())) for r in self.rules]))
            while self._samples and self._samples[0][0] < now - self._horizon:
                self._samples.popleft()

    def evaluate(self) -> list[RuleState]:
        """Collect, then the state of every rule over its window."""
        self.collect()
        with self._lock:
            now = self.clock()
            samples = list(self._samples)
        states = []
        for i, rule in enumerate(self.rules):
            inside = [s[i] for t, s in samples if t > now - rule.window_s]
            states.append(self._state(rule, inside))
        return states

    @staticmethod
    def _state(rule: HealthRule, samples: Sequence[_Sample]) -> RuleState:
        matched = sum(s.matched for s in samples)
        total = sum(s.total for s in samples)
        value: float | None
        if rule.kind == "ratio":
            value = matched / total if total and total >= rule.min_total else None
        elif rule.kind == "count":
            value = matched
        elif rule.kind == "quota":
            value = matched / rule.quota if rule.quota else None
        else:
            maxima = [s.largest for s in samples if s.largest is not None]
            value = max(maxima) if maxima else None
        return RuleState(rule, value, value is None or value <= rule.threshold)
