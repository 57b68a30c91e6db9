"""sfumato._otel.Series: the shortened record path must leave exactly what the SDK's own does."""

from __future__ import annotations

import dataclasses
import math
import random
from typing import Any

import pytest
from opentelemetry.sdk.metrics import (
    AlwaysOffExemplarFilter,
    AlwaysOnExemplarFilter,
    Counter,
    Histogram,
    MeterProvider,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import View
from opentelemetry.sdk.trace import TracerProvider
from sfumato._otel import SeriesRecorder

# These tests are of the short path; the SDK's own path (SFUMATO_OTEL_FALLBACK) records through
# each instrument's own method (the metrics tests cover records on either path).
pytestmark = pytest.mark.fast_path

SETS = [
    {"narrative.type": "curation", "outcome": "success"},
    {"narrative.type": "posting", "outcome": "failure"},
    {"narrative.type": "curation", "outcome": "success", "attempt": 2},
]
# Valid values, and ones the SDK warns about and ignores (negative, non-finite, bool).
VALUES: list[Any] = [1, 2.5, 0, 7, -1, math.inf, math.nan, 0.004, 12, True]
KINDS = {
    "counter": ("create_counter", "add"),
    "histogram": ("create_histogram", "record"),
    "up_down_counter": ("create_up_down_counter", "add"),
    "gauge": ("create_gauge", "set"),
}
DELTA = {
    Counter: AggregationTemporality.DELTA,
    UpDownCounter: AggregationTemporality.DELTA,
    Histogram: AggregationTemporality.DELTA,
}


def _provider(**kwargs: Any) -> tuple[MeterProvider, InMemoryMetricReader, InMemoryMetricReader]:
    cumulative = InMemoryMetricReader()
    delta = InMemoryMetricReader(preferred_temporality=DELTA)  # type: ignore[arg-type]
    provider = MeterProvider(metric_readers=[cumulative, delta], shutdown_on_exit=False, **kwargs)
    return provider, cumulative, delta


def _points(reader: InMemoryMetricReader) -> list[dict[str, Any]]:
    """Every data point, time stamps and exemplar times left out, in a stable order."""
    data = reader.get_metrics_data()
    out: list[dict[str, Any]] = []
    if data is None:
        return out
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    values = {
                        f.name: getattr(point, f.name)
                        for f in dataclasses.fields(point)
                        if f.name not in ("start_time_unix_nano", "time_unix_nano", "exemplars")
                    }
                    values["attributes"] = dict(values["attributes"] or {})
                    exemplars = sorted(
                        (
                            e.value,
                            tuple(sorted((e.filtered_attributes or {}).items())),
                            e.span_id,
                            e.trace_id,
                        )
                        for e in point.exemplars
                    )
                    out.append({"metric": metric.name, **values, "exemplars": exemplars})
    return sorted(out, key=repr)


def _run(kind: str, fast: bool, extra: dict[str, Any]) -> list[list[dict[str, Any]]]:
    """Record VALUES under SETS, collecting after each pass (twice: delta aggregations are
    re-created in between); the points of both readers after each pass."""
    create, method = KINDS[kind]
    provider, cumulative, delta = _provider(**extra)
    instrument = getattr(provider.get_meter("m"), create)("x.value")
    if fast:
        recorder = SeriesRecorder(instrument, method)
        assert recorder.fast
        records = [recorder.series(attrs).record for attrs in SETS]
    else:
        own = getattr(instrument, method)
        records = [lambda v, attrs=attrs: own(v, attrs) for attrs in SETS]
    random.seed(7)  # the counters' exemplar reservoir samples at random
    snapshots = []
    with TracerProvider().get_tracer("t").start_as_current_span("sampled"):
        for _ in range(2):
            for value in VALUES:
                for record in records:
                    record(value)
            snapshots.append(_points(cumulative) + _points(delta))
    provider.shutdown()
    return snapshots


def _record_both(kind: str, *, views: Any = (), exemplar_filter: Any = None) -> None:
    """The same records through Series.record and through the instrument's own method on
    two providers: the collected points (cumulative and delta) must be equal."""
    extra: dict[str, Any] = {"views": list(views)}
    if exemplar_filter is not None:
        extra["exemplar_filter"] = exemplar_filter
    fast = _run(kind, True, extra)
    assert fast[0] and fast[1]
    off = isinstance(exemplar_filter, AlwaysOffExemplarFilter)
    # Recorded under a sampled span: exemplars unless the filter is off.
    assert any(point["exemplars"] for point in fast[0]) is not off
    assert fast == _run(kind, False, extra)


@pytest.mark.parametrize("kind", list(KINDS))
def test_series_records_what_the_sdk_records(kind: str) -> None:
    _record_both(kind)


@pytest.mark.parametrize("kind", ["counter", "histogram"])
def test_views_with_attribute_keys_and_always_on_exemplars(kind: str) -> None:
    views = [View(instrument_name="x.value", attribute_keys={"narrative.type"})]
    _record_both(kind, views=views, exemplar_filter=AlwaysOnExemplarFilter())


@pytest.mark.parametrize("kind", list(KINDS))
def test_exemplars_off(kind: str) -> None:
    _record_both(kind, exemplar_filter=AlwaysOffExemplarFilter())


def test_attributes_the_sdk_would_clean_take_its_path() -> None:
    provider, reader, _ = _provider()
    counter = provider.get_meter("m").create_counter("c")
    recorder = SeriesRecorder(counter, "add")
    s = recorder.series({"tags": ["a", "b"], "": "empty key"})
    assert not s.fast
    s.record(3)
    [point] = [p for p in _points(reader) if p["metric"] == "c"]
    assert point["value"] == 3
    assert point["attributes"] == {"tags": ("a", "b")}  # cleaned by the SDK: "" dropped
    provider.shutdown()


def test_a_proxy_instrument_is_recorded_through_its_own_method() -> None:
    from opentelemetry.metrics import NoOpMeterProvider

    counter = NoOpMeterProvider().get_meter("m").create_counter("c")
    recorder = SeriesRecorder(counter, "add")
    assert not recorder.fast
    recorder.series({"a": "b"}).record(1)  # no error, nothing to check beyond that


@pytest.mark.parametrize(
    "given,expected",
    [
        ({}, "AlwaysOffExemplarFilter"),
        ({"metrics": {"exemplars": "trace_based"}}, "TraceBasedExemplarFilter"),
        ({"metrics": {"exemplars": "always_on"}}, "AlwaysOnExemplarFilter"),
    ],
)
def test_the_exemplar_filter_follows_the_settings(given: dict[str, Any], expected: str) -> None:
    import sfumato

    with sfumato.configure(None, service_name="t", backend="none", **given) as handle:
        pipes = handle._pipes
        assert pipes is not None and pipes.meter_provider is not None
        config = pipes.meter_provider._sdk_config
        assert type(config.exemplar_filter).__name__ == expected


def test_otel_metrics_exemplar_filter_sets_the_key() -> None:
    import sfumato

    settings = sfumato.load_settings(
        env={"OTEL_METRICS_EXEMPLAR_FILTER": "trace_based"}, resolve_plugins=False
    )
    assert settings.metrics.exemplars == "trace_based"


# -- the deferred path (exemplars off: values wait in a buffer until a fold) ---------------


def _deferred(kind: str = "counter") -> tuple[Any, Any, InMemoryMetricReader, Any]:
    provider, cumulative, delta = _provider(exemplar_filter=AlwaysOffExemplarFilter())
    create, method = KINDS[kind]
    instrument = getattr(provider.get_meter("m"), create)("x.value")
    return provider, SeriesRecorder(instrument, method), cumulative, delta


def _totals(points: list[dict[str, Any]], field: str = "value") -> dict[str, Any]:
    return {f"{p['metric']}:{sorted(p['attributes'].items())}": p[field] for p in points}


@pytest.mark.parametrize("kind", ["counter", "histogram", "up_down_counter"])
def test_values_wait_and_are_all_collected(kind: str) -> None:
    provider, recorder, cumulative, delta = _deferred(kind)
    series = recorder.series(SETS[0])
    series.record(3)
    assert series.deferred and series.pending == [3]  # not folded yet
    series.record(4.5)
    # Collected right away: both values are in, for both temporalities.
    field = "sum" if kind == "histogram" else "value"
    assert list(_totals(_points(cumulative), field).values()) == [7.5]
    assert series.pending == []
    assert list(_totals(_points(delta), field).values()) == [7.5]
    series.record(1)
    assert list(_totals(_points(delta), field).values()) == [1]  # the next delta period
    assert list(_totals(_points(cumulative), field).values()) == [8.5]
    provider.shutdown()


def test_the_recording_thread_folds_every_fold_at_values() -> None:
    from sfumato._otel import FOLD_AT

    provider, recorder, _, _ = _deferred()
    series = recorder.series(SETS[1])
    for _ in range(FOLD_AT - 1):
        series.record(1)
    assert len(series.pending) == FOLD_AT - 1
    series.record(1)
    assert series.pending == []
    aggregation = series.matches[0].aggregation
    assert aggregation._value == FOLD_AT  # folded into the SDK's aggregation
    provider.shutdown()


def test_gauges_and_exemplars_take_the_immediate_path() -> None:
    provider, recorder, _, _ = _deferred("gauge")
    gauge = recorder.series(SETS[0])
    gauge.record(2)
    assert not gauge.deferred and gauge.pending == []
    provider.shutdown()
    provider, _, _ = _provider(exemplar_filter=AlwaysOnExemplarFilter())
    counter = SeriesRecorder(provider.get_meter("m").create_counter("c"), "add")
    series = counter.series(SETS[0])
    series.record(2)
    assert not series.deferred and series.pending == []
    provider.shutdown()


@pytest.mark.parametrize("kind", ["counter", "histogram"])
def test_concurrent_records_and_collections_lose_nothing(kind: str) -> None:
    import threading

    provider, recorder, cumulative, delta = _deferred(kind)
    series = [recorder.series(attrs) for attrs in SETS]
    threads_n, per_thread = 4, 5000
    start = threading.Barrier(threads_n + 1)
    field = "sum" if kind == "histogram" else "value"
    delta_totals: dict[str, float] = {}

    def work(k: int) -> None:
        start.wait()
        for i in range(per_thread):
            series[(i + k) % len(series)].record(1)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(threads_n)]
    for t in threads:
        t.start()
    start.wait()
    while any(t.is_alive() for t in threads):  # collections while the threads record
        for key, value in _totals(_points(delta), field).items():
            delta_totals[key] = delta_totals.get(key, 0) + value
    for t in threads:
        t.join()
    for key, value in _totals(_points(delta), field).items():
        delta_totals[key] = delta_totals.get(key, 0) + value
    cumulative_totals = _totals(_points(cumulative), field)
    assert sum(cumulative_totals.values()) == threads_n * per_thread
    assert delta_totals == cumulative_totals
    if kind == "histogram":
        counts = _totals(_points(cumulative), "count")
        assert sum(counts.values()) == threads_n * per_thread
    provider.shutdown()


def test_a_reader_added_later_sees_values_recorded_after_it() -> None:
    provider, recorder, cumulative, _ = _deferred()
    series = recorder.series(SETS[0])
    series.record(2)
    late = InMemoryMetricReader()
    provider._measurement_consumer.add_metric_reader(late)
    late._set_collect_callback(provider._measurement_consumer.collect)
    series.record(5)
    assert list(_totals(_points(late)).values()) == [5]
    assert list(_totals(_points(cumulative)).values()) == [7]
    provider.shutdown()


def test_shutdown_exports_pending_values() -> None:
    from opentelemetry.sdk.metrics.export import (
        MetricExporter,
        MetricExportResult,
        PeriodicExportingMetricReader,
    )

    exported: list[float] = []

    class Keep(MetricExporter):
        def export(self, metrics_data: Any, timeout_millis: float = 10_000, **_: Any) -> Any:
            for rm in metrics_data.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        exported.extend(p.value for p in metric.data.data_points)
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis: float = 10_000) -> bool:
            return True

        def shutdown(self, timeout_millis: float = 30_000, **_: Any) -> None:
            pass

    reader = PeriodicExportingMetricReader(Keep(), export_interval_millis=3_600_000)
    provider = MeterProvider(
        metric_readers=[reader],
        shutdown_on_exit=False,
        exemplar_filter=AlwaysOffExemplarFilter(),
    )
    series = SeriesRecorder(provider.get_meter("m").create_counter("c"), "add").series(SETS[0])
    series.record(4)
    series.record(6)
    assert series.pending == [4, 6]
    provider.shutdown()
    assert exported == [10]
