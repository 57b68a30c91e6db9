"""tempera._series: the shortened record path must leave exactly what the SDK's own does."""

from __future__ import annotations

import dataclasses
import math
import random
from typing import Any

import pytest
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    UpDownCounter,
)
from opentelemetry.sdk.metrics._internal.exemplar import (
    AlwaysOffExemplarFilter,
    AlwaysOnExemplarFilter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import View
from opentelemetry.sdk.trace import TracerProvider
from tempera._series import SeriesRecorder

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
    import tempera

    with tempera.configure(None, service_name="t", backend="none", **given) as handle:
        pipes = handle._pipes
        assert pipes is not None and pipes.meter_provider is not None
        config = pipes.meter_provider._sdk_config
        assert type(config.exemplar_filter).__name__ == expected


def test_otel_metrics_exemplar_filter_sets_the_key() -> None:
    import tempera

    settings = tempera.load_settings(
        env={"OTEL_METRICS_EXEMPLAR_FILTER": "trace_based"}, resolve_plugins=False
    )
    assert settings.metrics.exemplars == "trace_based"
