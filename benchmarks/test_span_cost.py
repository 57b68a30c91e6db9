"""Per-span cost of sfumato's pipelines against the bare SDK, as ratios in the same run.

The same ten spans (the reference narrative's names and start attributes, through the plain
OpenTelemetry API) go through each pipeline; the bare SDK is AlwaysOn + BatchSpanProcessor and
ParentBased over TraceIdRatioBased(0.1) + BatchSpanProcessor, both to a null exporter.
The default production configuration must be cheaper per span than AlwaysOn + batch.

Run with ``pytest --benchmark-only benchmarks/test_span_cost.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from harness import (
    BASELINES,
    CONFIGS,
    PRODUCTION,
    SPANS_PER_NARRATIVE,
    api_narrative,
    configured,
    interleaved,
    results,
)
from opentelemetry import trace

BASE = "sdk AlwaysOn+Batch"


def measure_span_costs(*, rounds: int = 25, calls: int = 60) -> dict[str, dict[str, float]]:
    """Microseconds per span of every pipeline, interleaved in one set of rounds.

    sfumato's providers are built by ``configure()`` one at a time (it owns the global
    slot), so each configuration is timed in its own set of rounds with both baselines
    beside it, and its ratio is taken against the baseline of that same set.
    """
    out: dict[str, dict[str, float]] = {}
    for name in CONFIGS:
        if name == "disabled":
            continue
        with ExitStack() as stack:
            sides: dict[str, Callable[[], Any]] = {}
            for base_name, make in BASELINES.items():
                provider = make()
                stack.callback(provider.shutdown)
                tracer = provider.get_tracer("bench")
                sides[base_name] = lambda t=tracer: api_narrative(t)
            stack.enter_context(configured(name))
            ours = trace.get_tracer("bench")
            sides[name] = lambda t=ours: api_narrative(t)
            r = interleaved(sides, rounds=rounds, calls=calls)
        base = r.min(BASE)
        for side in sides:
            row = out.setdefault(side, {"us_min": [], "ratio": []})  # type: ignore[dict-item]
            row["us_min"].append(r.min(side) / SPANS_PER_NARRATIVE * 1e6)  # type: ignore[attr-defined]
            row["ratio"].append(r.min(side) / base)  # type: ignore[attr-defined]
    table: dict[str, dict[str, float]] = {}
    for side, row in out.items():
        us = sorted(row["us_min"])  # type: ignore[arg-type]
        ratios = sorted(row["ratio"])  # type: ignore[arg-type]
        table[side] = {
            "us_per_span": us[len(us) // 2],
            "ratio": ratios[len(ratios) // 2],
            # CPU work per span at which this pipeline alone reaches 1% overhead.
            "crossover_ms": us[len(us) // 2] / 10,
        }
    return table


def test_per_span_cost_against_bare_sdk(benchmark: Any) -> None:
    table = measure_span_costs()
    results["span_cost"] = table
    benchmark.extra_info.update({k: v["ratio"] for k, v in table.items()})
    with configured(PRODUCTION):
        ours = trace.get_tracer("bench")
        benchmark.pedantic(lambda: api_narrative(ours), rounds=5, iterations=200, warmup_rounds=1)
    production = table[PRODUCTION]["ratio"]
    assert production < 1.0, (
        f"{PRODUCTION}: {table[PRODUCTION]['us_per_span']:.2f} us per span, "
        f"{production:.2f}x the bare SDK's AlwaysOn + BatchSpanProcessor"
    )
