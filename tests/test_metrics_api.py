"""``sfumato.metrics``: instruments by name, cached, no-ops before configure, views applied."""

from __future__ import annotations

from typing import Any

import pytest
import sfumato
from sfumato import metrics


def collected(telemetry: sfumato.Telemetry) -> dict[str, Any]:
    """name -> Metric, from the memory exporter's reader."""
    data = telemetry.exporter("memory", "metrics").get_metrics_data()
    if data is None:
        return {}
    return {
        m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
    }


def memory(**overrides: Any) -> sfumato.Telemetry:
    return sfumato.configure(None, backend="none", exporters=[{"type": "memory"}], **overrides)


def test_instruments_are_cached_by_name() -> None:
    assert metrics.counter("cache.c") is metrics.counter("cache.c")
    assert metrics.histogram("cache.h") is metrics.histogram("cache.h")
    assert metrics.gauge("cache.g") is metrics.gauge("cache.g")
    assert metrics.up_down_counter("cache.u") is metrics.up_down_counter("cache.u")
    assert metrics.counter("cache.c") is not metrics.counter("cache.c2")


def test_one_name_one_kind() -> None:
    metrics.counter("kind.clash")
    with pytest.raises(ValueError, match="already a counter, not a histogram"):
        metrics.histogram("kind.clash")


def test_usable_before_configure_as_no_ops() -> None:
    assert sfumato.active() is None or sfumato.active()._closed
    early = metrics.counter("early.counter")
    early.add(100)  # nowhere to go, and no error
    metrics.histogram("early.histogram").record(1.5)
    metrics.gauge("early.gauge").set(3)
    metrics.up_down_counter("early.updown").add(-1)
    with memory() as telemetry:
        early.add(2)  # the same object now records into the configured provider
        [point] = collected(telemetry)["early.counter"].data.data_points
        assert point.value == 2


def test_all_four_kinds_with_description_unit_and_attributes() -> None:
    with memory() as telemetry:
        metrics.counter("kinds.tokens", description="LLM tokens", unit="{token}").add(
            7, {"model": "m"}
        )
        metrics.up_down_counter("kinds.inflight").add(3)
        metrics.up_down_counter("kinds.inflight").add(-1)
        metrics.histogram("kinds.latency", unit="ms").record(12.5)
        metrics.gauge("kinds.queue", unit="1").set(4)
        metrics.gauge("kinds.queue", unit="1").set(9)
        got = collected(telemetry)
    tokens = got["kinds.tokens"]
    assert (tokens.description, tokens.unit) == ("LLM tokens", "{token}")
    [point] = tokens.data.data_points
    assert (point.value, dict(point.attributes)) == (7, {"model": "m"})
    assert got["kinds.inflight"].data.data_points[0].value == 2
    assert got["kinds.inflight"].data.is_monotonic is False
    assert got["kinds.latency"].data.data_points[0].sum == 12.5
    assert got["kinds.queue"].data.data_points[0].value == 9


def test_follows_a_new_configure_after_shutdown() -> None:
    counter = metrics.counter("reconfigured.counter")
    with memory() as first:
        counter.add(5)
        assert collected(first)["reconfigured.counter"].data.data_points[0].value == 5
    counter.add(1000)  # after shutdown: dropped quietly
    with memory() as second:
        counter.add(1)
        assert collected(second)["reconfigured.counter"].data.data_points[0].value == 1


def test_views_set_histogram_buckets_per_instrument() -> None:
    with memory(metrics={"views": {"viewed.latency": {"buckets": [1, 10, 100]}}}) as telemetry:
        for value in (0.5, 5, 50, 500, 7):
            metrics.histogram("viewed.latency").record(value)
        metrics.histogram("unviewed.latency").record(5)
        got = collected(telemetry)
    [point] = got["viewed.latency"].data.data_points
    assert tuple(point.explicit_bounds) == (1, 10, 100)
    assert tuple(point.bucket_counts) == (1, 2, 1, 1)
    [default] = got["unviewed.latency"].data.data_points
    assert tuple(default.explicit_bounds) != (1, 10, 100)
    assert len(default.explicit_bounds) > 3


def test_view_can_rename_an_instrument() -> None:
    with memory(
        metrics={"views": {"old.name": {"name": "new.name", "description": "renamed"}}}
    ) as t:
        metrics.counter("old.name").add(1)
        got = collected(t)
    assert "old.name" not in got
    assert got["new.name"].description == "renamed"


def test_bad_values_never_raise() -> None:
    with memory():
        metrics.counter("bad.counter").add(-5)  # the SDK refuses a negative add
        metrics.histogram("bad.histogram").record("x")  # type: ignore[arg-type]
        metrics.counter("bad.attributes").add(1, {"k": object()})  # type: ignore[dict-item]


def test_metrics_disabled_means_no_meter_provider() -> None:
    with memory(metrics={"enabled": False}) as telemetry:
        metrics.counter("disabled.counter").add(1)
        with pytest.raises(KeyError):
            telemetry.exporter("memory", "metrics")
