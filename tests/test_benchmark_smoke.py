"""The benchmark suite's machinery, run once and small: every shipped configuration builds,
its narratives reach the null exporter, and each measurement returns sane figures.
The real measurements run with ``pytest --benchmark-only`` (benchmarks/)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
from opentelemetry import trace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from harness import CONFIGS, METRICS, api_narrative, configured, helper_narrative
from test_overhead import measure_overhead
from test_span_cost import measure_span_costs
from test_startup_memory import buffered_trace_bytes


@pytest.mark.parametrize("name", list(CONFIGS))
def test_each_configuration_exports_through_the_null_exporter(name: str) -> None:
    with configured(name) as (handle, null):
        for _ in range(20):
            helper_narrative(name in METRICS)()
            api_narrative(trace.get_tracer("smoke"))
        handle.force_flush(timeout=5.0)
        if name == "disabled":
            assert not handle.enabled and null.spans == 0
        elif name == "otlp":
            assert null.spans == 400  # always on: every span of the 40 narratives
        else:
            assert 0 < null.spans <= 400 or name == "ratio-0.1"


def test_overhead_measurement_runs() -> None:
    figures = measure_overhead("error-always", rounds=2, calls=2)
    assert figures["us_per_span"] > 0
    assert math.isfinite(figures["ab_pct"]) and math.isfinite(figures["ab_null_pct"])
    assert figures["own_ms"] > 1.0
    assert figures["crossover_ms"] == pytest.approx(figures["us_per_span"] / 10)


def test_span_cost_measurement_runs() -> None:
    table = measure_span_costs(rounds=1, calls=2)
    assert table["sdk AlwaysOn+Batch"]["ratio"] == pytest.approx(1.0)
    assert set(CONFIGS) - {"disabled"} <= set(table)


def test_buffered_trace_memory_runs() -> None:
    per_trace, held = buffered_trace_bytes(traces=20)
    assert held == 20
    assert per_trace > 0
