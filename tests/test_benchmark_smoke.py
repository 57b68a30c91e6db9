"""The benchmark suite's machinery, run once and small: every shipped configuration builds
and exports in both forms (null exporters, and for real to a Rotel), and each measurement
returns sane figures. The real measurements run with ``pytest --benchmark-only``
(benchmarks/)."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry import trace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from harness import CONFIGS, METRICS, api_narrative, configured, helper_narrative, rotel
from test_export_throughput import _run_at, bare_sdk_pipeline, sfumato_pipeline
from test_overhead import measure_overhead
from test_span_cost import measure_span_costs
from test_startup_memory import buffered_trace_bytes

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with rotel() as where:
        yield where


@pytest.mark.parametrize("form", ["hot", "full"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_each_configuration_exports(name: str, form: str, endpoint: str) -> None:
    with configured(name, endpoint if form == "full" else None) as running:
        for _ in range(20):
            helper_narrative(name in METRICS)()
            api_narrative(trace.get_tracer("smoke"))
        running.flush()
        assert running.dropped() == 0
        handle = running.handle
        assert handle is not None
        exported = handle.stats().get("traces.exported", 0)
        if name == "disabled":
            assert not handle.enabled and exported == 0
        elif name == "otlp":
            assert exported == 400  # always on: every span of the 40 narratives
        else:
            assert 0 < exported <= 400 or name == "ratio-0.1"


def test_overhead_measurement_runs(endpoint: str) -> None:
    figures = measure_overhead("error-always", endpoint, rounds=2, calls=2, ab_rounds=2, ab_calls=2)
    assert figures["us_per_span"] > 0 and figures["hot_us_per_span"] > 0
    assert math.isfinite(figures["ab_pct"]) and math.isfinite(figures["ab_null_pct"])
    assert figures["own_ms"] > 1.0
    assert figures["crossover_ms"] == pytest.approx(figures["us_per_span"] / 10)


def test_span_cost_measurement_runs(endpoint: str) -> None:
    table = measure_span_costs(endpoint, rounds=1, calls=2)
    assert table["sdk AlwaysOn+Batch"]["full_ratio"] == pytest.approx(1.0)
    assert table["sdk AlwaysOn+Batch"]["hot_ratio"] == pytest.approx(1.0)
    assert set(CONFIGS) - {"disabled"} <= set(table)


@pytest.mark.parametrize("pipeline", [sfumato_pipeline, bare_sdk_pipeline])
def test_sustained_export_step_counts_what_it_loses(pipeline: object, endpoint: str) -> None:
    reached, lost = _run_at(lambda: pipeline(endpoint), 2_000)  # type: ignore[operator]
    assert reached > 1_000
    assert lost == 0


def test_buffered_trace_memory_runs() -> None:
    per_trace, held = buffered_trace_bytes(traces=20)
    assert held == 20
    assert per_trace > 0
