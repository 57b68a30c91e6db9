"""sfumato's overhead on the reference Botticelli narrative, per shipped configuration, on
the full pipeline: real encoding, sent to a Rotel on loopback, every thread's CPU.

The enforced figure is CPU-bound: the telemetry cost per narrative over the narrative's own
cost, both timed in the same interleaved rounds (the median of the paired differences over
the fastest round of the work), each block of the instrumented side ending with a flush
inside its timing. The hot path's cost alone
(exporters replaced by null ones) is reported beside it. The direct
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
from contextlib import AbstractContextManager
from typing import Any

import pytest
from harness import (
    BASELINES,
    CONFIGS,
    METRICS,
    NARRATIVE_CPU_MS,
    PRODUCTION,
    SPANS_PER_NARRATIVE,
    Running,
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
# Per narrative through the helpers, export included, against the bare SDK's AlwaysOn + batch
# + OTLP in the same run (the per-span table holds the plain-API limits, 0.2x and
# 0.35x). otlp read 0.32-0.44x here across runs: the SDK's path sped up more than sfumato's
# when the host did.
PRODUCTION_RATIO = 0.25
ANY_RATIO = 0.5


def pipeline(name: str, endpoint: str | None) -> AbstractContextManager[Running]:
    """A shipped configuration, or one of the bare SDK's pipelines installed globally:
    exporting to ``endpoint`` (full pipeline), or to a null exporter (hot path only)."""
    return baseline_provider(name, endpoint) if name in BASELINES else configured(name, endpoint)


def measure_overhead(
    name: str,
    endpoint: str | None,
    *,
    rounds: int = 30,
    calls: int = 100,
    ab_rounds: int = 36,
    ab_calls: int = 25,
) -> dict[str, float]:
    """Overhead figures of configuration ``name`` (percent, and microseconds per span), on
    the full pipeline when ``endpoint`` is given, with the hot path's alone beside them."""
    metrics = name in METRICS
    with pipeline(name, endpoint) as running:
        flush = {"sfumato": running.flush}
        # The narrative's own work is timed in the same rounds ("work").
        cost = interleaved(
            {
                "sfumato": helper_narrative(metrics),
                "bare": bare_narrative(0.0),
                "work": bare_narrative(NARRATIVE_CPU_MS),
            },
            rounds=rounds,
            calls={"sfumato": calls, "bare": calls, "work": 3},
            settle=flush,
        )
        # "again" is the bare narrative a second time: its A/B against "bare" is the noise
        # floor of the A/B figure in this same run. Blocks of 25 narratives (250 spans,
        # flushed in the block: about the batches export sends in steady state).
        ab = interleaved(
            {
                "sfumato": lambda: reference_narrative(NARRATIVE_CPU_MS, record_metrics=metrics),
                "bare": bare_narrative(NARRATIVE_CPU_MS),
                "again": bare_narrative(NARRATIVE_CPU_MS),
            },
            rounds=ab_rounds,
            calls=ab_calls,
            settle=flush,
        )
        dropped = running.dropped()
    assert dropped == 0, f"{name}: {dropped} spans dropped; the figures would leave them out"
    hot = _hot_path_cost(name, rounds=rounds, calls=calls) if endpoint is not None else None
    # The work's own cost is its fastest round: on a host whose speed moves between states,
    # memory-heavy work like the narrative's slows down by up to half in the slow state
    # while the span code does not (see docs/benchmarks.md, Hardware).
    own = cost.min("work")
    paired = cost.paired("sfumato", "bare")
    half = len(paired) // 2
    per_narrative = statistics.median(paired)
    # Per round, each side over the bare one in that round: a host that changes speed
    # between rounds moves a round's sides alike.
    ab_ratio = ab.ratios("sfumato", "bare")
    ab_null = ab.ratios("again", "bare")
    figures = {
        "us_per_span": per_narrative / SPANS_PER_NARRATIVE * 1e6,
        "us_per_narrative": per_narrative * 1e6,
        "own_ms": own * 1e3,
        "overhead_pct": per_narrative / own * 100,
        "first_half_pct": statistics.median(paired[:half]) / own * 100,
        "second_half_pct": statistics.median(paired[half:]) / own * 100,
        "ab_pct": (statistics.median(ab_ratio) - 1) * 100,
        "ab_null_pct": (statistics.median(ab_null) - 1) * 100,
        # CPU work per span at which this configuration's overhead reaches 1%.
        "crossover_ms": per_narrative / SPANS_PER_NARRATIVE / (LIMIT_PERCENT / 100) * 1e3,
    }
    if hot is not None:
        figures["hot_us_per_span"] = hot / SPANS_PER_NARRATIVE * 1e6
        figures["hot_pct"] = hot / own * 100
    return figures


def _hot_path_cost(name: str, *, rounds: int, calls: int) -> float:
    """Telemetry seconds per narrative with the exporters replaced by null ones."""
    metrics = name in METRICS
    with pipeline(name, None) as running:
        cost = interleaved(
            {"sfumato": helper_narrative(metrics), "bare": bare_narrative(0.0)},
            rounds=rounds,
            calls=calls,
            settle={"sfumato": running.flush},
        )
    return statistics.median(cost.paired("sfumato", "bare"))


def measure_realistic(name: str, endpoint: str | None, *, rounds: int = 3) -> dict[str, float]:
    """Wall-time overhead with LATENCY_MS of simulated LLM latency per call (reported)."""
    metrics = name in METRICS
    clock = time.perf_counter
    with pipeline(name, endpoint):
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


def _measure_all(name: str, endpoint: str) -> dict[str, float]:
    figures = measure_overhead(name, endpoint)
    figures.update(measure_realistic(name, endpoint))
    figures["realistic_pct"] = figures["us_per_narrative"] / 1e3 / figures["wall_ms"] * 100
    results.setdefault("overhead", {})[name] = figures
    return figures


@pytest.mark.parametrize("name", list(CONFIGS))
def test_overhead_under_one_percent(benchmark: Any, name: str, rotel_endpoint: str) -> None:
    # realistic_pct: the same telemetry cost per narrative, over the realistic wall time.
    figures = _measure_all(name, rotel_endpoint)
    benchmark.extra_info.update(figures)
    metrics = name in METRICS
    with configured(name, rotel_endpoint):
        benchmark.pedantic(helper_narrative(metrics), rounds=5, iterations=200, warmup_rounds=1)
    assert figures["overhead_pct"] < LIMIT_PERCENT, (
        f"{name}: {figures['overhead_pct']:.2f}% of a {figures['own_ms']:.1f} ms narrative "
        f"({figures['us_per_span']:.2f} us per span)"
    )


@pytest.mark.parametrize("name", list(BASELINES))
def test_bare_sdk_on_the_same_narrative(benchmark: Any, name: str, rotel_endpoint: str) -> None:
    """The bare SDK's pipelines by the same method (reported beside sfumato's rows)."""
    figures = _measure_all(name, rotel_endpoint)
    benchmark.extra_info.update(figures)
    with pipeline(name, rotel_endpoint):
        benchmark.pedantic(helper_narrative(False), rounds=5, iterations=200, warmup_rounds=1)
    if name == SDK:
        # The ratios to the bare SDK in the same run: what must hold on any host.
        measured = results.get("overhead", {})
        if PRODUCTION not in measured:
            measured[PRODUCTION] = _measure_all(PRODUCTION, rotel_endpoint)
        sdk = figures["us_per_narrative"]
        ratios = {n: f["us_per_narrative"] / sdk for n, f in measured.items() if n in CONFIGS}
        figures["ratios"] = ratios  # type: ignore[assignment]
        assert ratios[PRODUCTION] <= PRODUCTION_RATIO, (
            f"{PRODUCTION}: {ratios[PRODUCTION]:.2f}x the bare SDK's AlwaysOn + batch + OTLP "
            f"per narrative (limit {PRODUCTION_RATIO}x)"
        )
        over = {n: r for n, r in ratios.items() if r > ANY_RATIO}
        assert not over, f"above {ANY_RATIO}x the bare SDK per narrative: {over}"
