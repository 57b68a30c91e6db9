"""Sustained export: the highest rate of spans a process produces and exports to a Rotel on
loopback over OTLP/gRPC, with the default batch settings, before its queue drops anything.

A producer thread makes the reference narrative's ten spans (the plain OpenTelemetry API) at
a paced rate, in 2 ms ticks, for two seconds; then the pipeline is flushed and its losses
read. The rate goes up by a quarter until something is dropped (or the producer cannot reach
the rate it is asked for), then a bisection finds the edge. Producer and export workers share
one interpreter, as they do in a service: the figure is spans/s exported with nothing lost.

sfumato keeps every trace (``always_on``) with its OTLP/gRPC exporter and the default
settings (batch 512, queue 16,384, two export workers); the bare SDK is AlwaysOn +
BatchSpanProcessor (its defaults: batch 512, queue 2,048) + its OTLP/gRPC exporter.

The target is 50,000 spans/s on this host in its usual state, where the bare SDK's AlwaysOn +
batch costs about 21 us per span on its hot path. The host's speed moves by up to half
between runs (docs/benchmarks.md, Hardware), so the bound is scaled by the SDK's hot-path
cost measured in the same run when that is slower; the ratio to the bare SDK's sustained
rate (at least 2.5x) is enforced beside it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import sfumato
from harness import (
    BASELINES,
    SPANS_PER_NARRATIVE,
    CountingExporter,
    api_narrative,
    interleaved,
    results,
    sdk_pipeline,
)
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from sfumato._telemetry import _install_globals

TARGET = 50_000  # spans/s, on this host in its usual state
USUAL_SDK_US = 21.0  # the bare SDK's AlwaysOn + batch, us per span, hot path, usual state
RATIO_LIMIT = 2.5  # sfumato's sustained rate over the bare SDK's
SECONDS = 2.0
TICK = 0.002


class Pipeline:
    """A pipeline under test: a tracer, a flush, and what it lost so far."""

    def __init__(self, tracer: Any, flush: Callable[[], Any], lost: Callable[[int], int]) -> None:
        self.tracer = tracer
        self.flush = flush
        self.lost = lost  # spans lost, given the number of spans produced so far


@contextmanager
def sfumato_pipeline(endpoint: str) -> Iterator[Pipeline]:
    telemetry = sfumato.configure(
        None,
        service_name="bench",
        backend="none",
        exporters=[{"type": "otlp-grpc", "endpoint": endpoint, "insecure": True}],
        sampler={"type": "always_on"},
        metrics={"enabled": False},
        logs={"enabled": False},
    )

    def lost(produced: int) -> int:
        stats = telemetry.stats()
        return sum(v for k, v in stats.items() if k.startswith("traces.dropped."))

    try:
        yield Pipeline(trace.get_tracer("bench"), lambda: telemetry.force_flush(30), lost)
    finally:
        telemetry.shutdown()


@contextmanager
def bare_sdk_pipeline(endpoint: str) -> Iterator[Pipeline]:
    _install_globals(None)
    exporter = CountingExporter(OTLPSpanExporter(endpoint=endpoint, insecure=True))
    provider = TracerProvider(
        resource=Resource.create({"service.name": "bench"}), shutdown_on_exit=False
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    try:
        # The SDK's queue drops silently: what it lost is what ended and was not sent.
        yield Pipeline(
            provider.get_tracer("bench"),
            lambda: provider.force_flush(30_000),
            lambda produced: produced - exporter.sent + exporter.lost,
        )
    finally:
        provider.shutdown()


def _run_at(make: Callable[[], Any], rate: float) -> tuple[float, int]:
    """Produce at ``rate`` spans/s for SECONDS in a fresh pipeline; (the rate reached,
    spans lost)."""
    with make() as pipeline:
        per_tick = rate * TICK / SPANS_PER_NARRATIVE
        owed = 0.0
        narratives = 0
        started = time.perf_counter()
        next_tick = started
        while time.perf_counter() - started < SECONDS:
            owed += per_tick
            while owed >= 1:
                api_narrative(pipeline.tracer)
                owed -= 1
                narratives += 1
            next_tick += TICK
            pause = next_tick - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        reached = narratives * SPANS_PER_NARRATIVE / (time.perf_counter() - started)
        pipeline.flush()
        return reached, pipeline.lost(narratives * SPANS_PER_NARRATIVE)


def sustained_rate(make: Callable[[], Any], start: float) -> float:
    """The highest rate (spans/s) exported with nothing lost."""
    best = 0.0
    rate = start
    failed_at: float | None = None
    for _ in range(12):  # upward by a quarter until a loss or the producer's limit
        reached, lost = _run_at(make, rate)
        if lost or reached < 0.95 * rate:
            failed_at = rate
            if not lost:
                best = max(best, reached)
            break
        best = max(best, reached)
        rate *= 1.25
    if failed_at is None:
        return best
    low, high = best, failed_at
    for _ in range(4):  # bisection between the last clean rate and the first loss
        middle = (low + high) / 2
        reached, lost = _run_at(make, middle)
        if lost or reached < 0.95 * middle:
            high = middle
        else:
            best = max(best, reached)
            low = middle
    return best


def sdk_hot_path_us(rounds: int = 7, calls: int = 60) -> float:
    """The bare SDK's AlwaysOn + batch (null exporter), us per span: the host's speed."""
    name = next(iter(BASELINES))
    with sdk_pipeline(name) as (provider, running):
        tracer = provider.get_tracer("bench")
        r = interleaved(
            {"sdk": lambda: api_narrative(tracer)},
            rounds=rounds,
            calls=calls,
            settle={"sdk": running.flush},
        )
    return statistics.median(r.samples["sdk"]) / SPANS_PER_NARRATIVE * 1e6


def measure_sustained(endpoint: str) -> dict[str, float]:
    sdk_us = sdk_hot_path_us()
    ours = sustained_rate(lambda: sfumato_pipeline(endpoint), start=20_000)
    bare = sustained_rate(lambda: bare_sdk_pipeline(endpoint), start=5_000)
    bound = TARGET * min(1.0, USUAL_SDK_US / sdk_us)
    return {
        "sfumato": ours,
        "sdk": bare,
        "ratio": ours / bare if bare else float("inf"),
        "sdk_hot_path_us": sdk_us,
        "bound": bound,
    }


def test_sustained_export(benchmark: Any, rotel_endpoint: str) -> None:
    figures = benchmark.pedantic(measure_sustained, args=(rotel_endpoint,), rounds=1)
    results["export_throughput"] = figures
    benchmark.extra_info.update(figures)
    assert figures["ratio"] >= RATIO_LIMIT, figures
    assert figures["sfumato"] >= figures["bound"], figures
