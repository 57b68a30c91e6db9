"""Per-span cost of sfumato's pipelines against the bare SDK, as ratios in the same run, on
the full pipeline (real encoding, sent to a Rotel on loopback, every thread's CPU) with the
hot path's cost alone (exporters replaced by null ones) beside it.

The same ten spans (the reference narrative's names and start attributes, through the plain
OpenTelemetry API) go through each pipeline; the bare SDK is AlwaysOn + BatchSpanProcessor and
ParentBased over TraceIdRatioBased(0.1) + BatchSpanProcessor, with the SDK's OTLP/gRPC
exporter to the same Rotel. Each block of 60 narratives ends with a flush inside its timing,
so a pipeline's export is counted in its own blocks. Targets (ratios to the SDK's AlwaysOn +
batch + OTLP): the production configuration at most 0.2x, always-on OTLP at most 0.35x.

Run with ``pytest --benchmark-only benchmarks/test_span_cost.py``.
"""

from __future__ import annotations

import statistics
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
    sdk_pipeline,
)
from opentelemetry import trace

BASE = "sdk AlwaysOn+Batch"
ALWAYS_ON = "otlp"  # the default tree keeps every trace
LIMITS = {PRODUCTION: 0.2, ALWAYS_ON: 0.35}


def _rounds(
    name: str, endpoint: str | None, rounds: int, calls: int
) -> dict[str, tuple[float, float]]:
    """One set of interleaved rounds: configuration ``name`` beside both baselines; per side,
    (seconds per span, ratio to AlwaysOn + batch), medians of the rounds."""
    with ExitStack() as stack:
        sides: dict[str, Callable[[], Any]] = {}
        settle: dict[str, Callable[[], Any]] = {}
        running = {}
        for base_name in BASELINES:
            provider, run = stack.enter_context(sdk_pipeline(base_name, endpoint))
            tracer = provider.get_tracer("bench")
            sides[base_name] = lambda t=tracer: api_narrative(t)
            settle[base_name] = run.flush
            running[base_name] = run
        ours = stack.enter_context(configured(name, endpoint))
        tracer = trace.get_tracer("bench")
        sides[name] = lambda t=tracer: api_narrative(t)
        settle[name] = ours.flush
        running[name] = ours
        r = interleaved(sides, rounds=rounds, calls=calls, settle=settle)
        lost = {side: run.dropped() for side, run in running.items()}
    assert not any(lost.values()), f"spans lost, the figures would leave them out: {lost}"
    base = r.samples[BASE]
    return {
        side: (
            statistics.median(r.samples[side]) / SPANS_PER_NARRATIVE,
            statistics.median(a / b for a, b in zip(r.samples[side], base, strict=True)),
        )
        for side in sides
    }


def measure_span_costs(
    endpoint: str | None, *, rounds: int = 15, calls: int = 60
) -> dict[str, dict[str, float]]:
    """Microseconds per span and ratio to the SDK's AlwaysOn + batch, full pipeline (to
    ``endpoint``) and hot path only, for every pipeline.

    sfumato's providers are built by ``configure()`` one at a time (it owns the global
    slot), so each configuration is timed in its own set of rounds with both baselines
    beside it, and its ratio is taken against the baseline of that same set; a baseline's
    figures are the median over the sets.
    """
    rows: dict[str, dict[str, list[float]]] = {}
    forms = {"full": endpoint, "hot": None} if endpoint is not None else {"hot": None}
    for name in CONFIGS:
        if name == "disabled":
            continue
        for form, where in forms.items():
            for side, (seconds, ratio) in _rounds(name, where, rounds, calls).items():
                row = rows.setdefault(side, {})
                row.setdefault(f"{form}_us", []).append(seconds * 1e6)
                row.setdefault(f"{form}_ratio", []).append(ratio)
    table: dict[str, dict[str, float]] = {}
    for side, row in rows.items():
        table[side] = {key: statistics.median(values) for key, values in row.items()}
        us = table[side].get("full_us", table[side]["hot_us"])
        # CPU work per span at which this pipeline alone reaches 1% overhead.
        table[side]["crossover_ms"] = us / 10
    return table


def test_per_span_cost_against_bare_sdk(benchmark: Any, rotel_endpoint: str) -> None:
    table = measure_span_costs(rotel_endpoint)
    results["span_cost"] = table
    benchmark.extra_info.update({k: v["full_ratio"] for k, v in table.items()})
    with configured(PRODUCTION, rotel_endpoint) as running:
        ours = trace.get_tracer("bench")
        benchmark.pedantic(lambda: api_narrative(ours), rounds=5, iterations=200, warmup_rounds=1)
        running.flush()
    for name, limit in LIMITS.items():
        ratio = table[name]["full_ratio"]
        assert ratio <= limit, (
            f"{name}: {table[name]['full_us']:.2f} us per span, export included, "
            f"{ratio:.2f}x the bare SDK's AlwaysOn + BatchSpanProcessor + OTLP (limit {limit}x)"
        )
