"""sfumato's overhead on the reference Botticelli narrative, per shipped configuration.

The enforced figure is CPU-bound: per-span cost x spans per narrative / the narrative's own
cost, in interleaved rounds (median of paired differences over min of the work). The direct
A/B figure (the narrative with its 10 ms of work, instrumented against bare) and the realistic
form (50 ms of simulated LLM latency per call, on wall time) are reported beside it. The test
fails when a configuration exceeds 1%.

The bare SDK's two pipelines are measured the same way, the helpers recording into them, so
every figure (the direct A/B too) has the hand-written setup beside it; the default
production configuration must cost less per narrative than AlwaysOn + BatchSpanProcessor.

Run with ``pytest --benchmark-only benchmarks/test_overhead.py``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
from harness import (
    BASELINES,
    CONFIGS,
    METRICS,
    NARRATIVE_CPU_MS,
    PRODUCTION,
    SPANS_PER_NARRATIVE,
    bare_narrative,
    baseline_provider,
    configured,
    helper_narrative,
    interleaved,
    results,
)
from sfumato.plugins.botticelli.simulator import reference_narrative, reference_narrative_bare

LIMIT_PERCENT = 1.0
LATENCY_MS = 50.0
SDK = "sdk AlwaysOn+Batch"


@contextmanager
def _baseline(name: str) -> Iterator[None]:
    with baseline_provider(name):
        yield


def pipeline(name: str) -> AbstractContextManager[Any]:
    """A shipped configuration, or one of the bare SDK's pipelines installed globally."""
    return _baseline(name) if name in BASELINES else configured(name)


def measure_overhead(name: str, *, rounds: int = 30, calls: int = 60) -> dict[str, float]:
    """Overhead figures of configuration ``name`` (percent, and microseconds per span)."""
    metrics = name in METRICS
    with pipeline(name):
        cost = interleaved(
            {"sfumato": helper_narrative(metrics), "bare": bare_narrative(0.0)},
            rounds=rounds,
            calls=calls,
        )
        work = interleaved({"bare": bare_narrative(NARRATIVE_CPU_MS)}, rounds=rounds, calls=2)
        # "again" is the bare narrative a second time: its A/B against "bare" is the noise
        # floor of the A/B figure in this same run.
        ab = interleaved(
            {
                "sfumato": lambda: reference_narrative(NARRATIVE_CPU_MS, record_metrics=metrics),
                "bare": bare_narrative(NARRATIVE_CPU_MS),
                "again": bare_narrative(NARRATIVE_CPU_MS),
            },
            rounds=rounds,
            calls=2,
        )
    own = work.min("bare")
    paired = cost.paired("sfumato", "bare")
    half = len(paired) // 2
    per_narrative = statistics.median(paired)
    ab_paired = ab.paired("sfumato", "bare")
    return {
        "us_per_span": per_narrative / SPANS_PER_NARRATIVE * 1e6,
        "us_per_narrative": per_narrative * 1e6,
        "own_ms": own * 1e3,
        "overhead_pct": per_narrative / own * 100,
        "first_half_pct": statistics.median(paired[:half]) / own * 100,
        "second_half_pct": statistics.median(paired[half:]) / own * 100,
        "ab_pct": statistics.median(ab_paired) / ab.median("bare") * 100,
        "ab_null_pct": statistics.median(ab.paired("again", "bare")) / ab.median("bare") * 100,
        # CPU work per span at which this configuration's overhead reaches 1%.
        "crossover_ms": per_narrative / SPANS_PER_NARRATIVE / (LIMIT_PERCENT / 100) * 1e3,
    }


def measure_realistic(name: str, *, rounds: int = 3) -> dict[str, float]:
    """Wall-time overhead with LATENCY_MS of simulated LLM latency per call (reported)."""
    metrics = name in METRICS
    clock = time.perf_counter
    with pipeline(name):
        samples: dict[str, list[float]] = {"sfumato": [], "bare": []}
        for r in range(rounds):
            for side in ("sfumato", "bare") if r % 2 == 0 else ("bare", "sfumato"):
                start = clock()
                if side == "sfumato":
                    reference_narrative(
                        NARRATIVE_CPU_MS, latency_ms=LATENCY_MS, record_metrics=metrics
                    )
                else:
                    reference_narrative_bare(NARRATIVE_CPU_MS, latency_ms=LATENCY_MS)
                samples[side].append(clock() - start)
    bare = statistics.median(samples["bare"])
    diff = statistics.median(
        a - b for a, b in zip(samples["sfumato"], samples["bare"], strict=False)
    )
    return {"wall_ms": bare * 1e3, "ab_wall_pct": diff / bare * 100}


def _measure_all(name: str) -> dict[str, float]:
    figures = measure_overhead(name)
    figures.update(measure_realistic(name))
    figures["realistic_pct"] = figures["us_per_narrative"] / 1e3 / figures["wall_ms"] * 100
    results.setdefault("overhead", {})[name] = figures
    return figures


@pytest.mark.parametrize("name", list(CONFIGS))
def test_overhead_under_one_percent(benchmark: Any, name: str) -> None:
    # realistic_pct: the same telemetry cost per narrative, over the realistic wall time.
    figures = _measure_all(name)
    benchmark.extra_info.update(figures)
    metrics = name in METRICS
    with configured(name):
        benchmark.pedantic(helper_narrative(metrics), rounds=5, iterations=200, warmup_rounds=1)
    assert figures["overhead_pct"] < LIMIT_PERCENT, (
        f"{name}: {figures['overhead_pct']:.2f}% of a {figures['own_ms']:.1f} ms narrative "
        f"({figures['us_per_span']:.2f} us per span)"
    )


@pytest.mark.parametrize("name", list(BASELINES))
def test_bare_sdk_on_the_same_narrative(benchmark: Any, name: str) -> None:
    """The bare SDK's pipelines by the same method (reported beside sfumato's rows)."""
    figures = _measure_all(name)
    benchmark.extra_info.update(figures)
    with pipeline(name):
        benchmark.pedantic(helper_narrative(False), rounds=5, iterations=200, warmup_rounds=1)
    if name == SDK:
        production = results.get("overhead", {}).get(PRODUCTION) or _measure_all(PRODUCTION)
        assert production["us_per_narrative"] < figures["us_per_narrative"], (
            f"{PRODUCTION}: {production['us_per_narrative']:.1f} us per narrative, the bare "
            f"SDK's AlwaysOn + BatchSpanProcessor {figures['us_per_narrative']:.1f} us"
        )
