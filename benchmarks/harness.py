"""Shared machinery of the benchmark suite: the shipped configurations, the bare-SDK
baselines, the reference workload in two forms, and an interleaved-rounds timer.

Method (see docs/benchmarks.md): every figure is a ratio measured in one run. The overhead of
a configuration is its telemetry cost per narrative (the reference narrative with no CPU work,
minus the same narrative bare, paired round by round) divided by the cost of the bare
narrative with its 10 ms of work. Both sides of every comparison are timed in interleaved
rounds, so a busy moment on the machine hits both alike, and the minimum and median of the
rounds are kept.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sfumato
from opentelemetry import trace
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased
from sfumato._telemetry import _install_globals
from sfumato.plugins.botticelli.simulator import reference_narrative, reference_narrative_bare

__all__ = [
    "BASELINES",
    "CONFIGS",
    "NARRATIVE_CPU_MS",
    "SPANS_PER_NARRATIVE",
    "NullMetricExporter",
    "NullSpanExporter",
    "Rounds",
    "api_narrative",
    "baseline_provider",
    "configured",
    "interleaved",
    "results",
]

SPANS_PER_NARRATIVE = 10
NARRATIVE_CPU_MS = 10.0
CLOCK = time.process_time  # CPU time of the whole process: export threads included

# The default production configuration: error-always over per-narrative-type, batched OTLP.
PRODUCTION_SAMPLER: dict[str, Any] = {
    "type": "error-always",
    "otherwise": {
        "type": "per-narrative-type",
        "default": 0.5,
        "rates": {"content_generation": 0.2, "curation": 0.25, "posting": 0.5},
    },
}
_TRACES_ONLY: dict[str, Any] = {"metrics": {"enabled": False}, "logs": {"enabled": False}}
_OTLP: dict[str, Any] = {"backend": "otlp", "otlp_endpoint": "http://127.0.0.1:4317"}

# name -> configure() keyword arguments (METRICS: the ones whose narratives record metrics)
CONFIGS: dict[str, dict[str, Any]] = {
    "disabled": {"enabled": False},
    "otlp": {**_OTLP, **_TRACES_ONLY},
    "ratio-0.1": {**_OTLP, **_TRACES_ONLY, "sampling_rate": 0.1},
    "error-always": {**_OTLP, **_TRACES_ONLY, "sampler": PRODUCTION_SAMPLER},
    "load-adaptive": {
        **_OTLP,
        **_TRACES_ONLY,
        "sampler": {"type": "load-adaptive", "target_per_second": 10.0},
    },
    "metrics-on": {
        **_OTLP,
        "logs": {"enabled": False},
        "metrics": {"enabled": True},
        "sampler": PRODUCTION_SAMPLER,
    },
}
PRODUCTION = "error-always"
METRICS = {"metrics-on"}  # the configurations whose narratives record metrics


class NullSpanExporter(SpanExporter):
    """Stands in for the OTLP exporter behind the batching queue: counts, sends nothing."""

    def __init__(self) -> None:
        self.spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class NullMetricExporter(MetricExporter):
    def __init__(self) -> None:
        super().__init__()

    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> Any:
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


@contextmanager
def configured(name: str) -> Iterator[tuple[sfumato.Telemetry, NullSpanExporter]]:
    """``sfumato.configure()`` with configuration ``name``, its OTLP exporters replaced by
    null ones (the whole shipped pipeline runs; only the network is left out)."""
    handle = sfumato.configure(None, service_name="bench", **CONFIGS[name])
    null = NullSpanExporter()
    pipes = handle._pipes
    if pipes is not None:
        for queue in pipes.queues:
            queue.exporter = null
        for reader in pipes.readers:
            if hasattr(reader, "_exporter"):
                reader._exporter = NullMetricExporter()
    try:
        yield handle, null
    finally:
        handle.shutdown(timeout=2.0)


def _null_batch() -> BatchSpanProcessor:
    return BatchSpanProcessor(NullSpanExporter(), max_queue_size=2048, max_export_batch_size=512)


def _sdk_always_on() -> TracerProvider:
    provider = TracerProvider(sampler=ALWAYS_ON, shutdown_on_exit=False)
    provider.add_span_processor(_null_batch())
    return provider


def _sdk_parent_ratio() -> TracerProvider:
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.1)), shutdown_on_exit=False)
    provider.add_span_processor(_null_batch())
    return provider


# The bare SDK configured by hand for the same job.
BASELINES: dict[str, Callable[[], TracerProvider]] = {
    "sdk AlwaysOn+Batch": _sdk_always_on,
    "sdk ParentBased(Ratio 0.1)+Batch": _sdk_parent_ratio,
}


@contextmanager
def baseline_provider(name: str) -> Iterator[TracerProvider]:
    """A bare-SDK provider installed as the global one (so the helpers use it too)."""
    provider = BASELINES[name]()
    _install_globals(None)
    trace.set_tracer_provider(provider)
    try:
        yield provider
    finally:
        provider.shutdown()
        _install_globals(None)


_TYPE = "content_generation"


def api_narrative(tracer: trace.Tracer) -> None:
    """The reference narrative's ten spans through the plain OpenTelemetry API, no work:
    the same names and start attributes (2-3 each) as the Botticelli helpers create."""
    start = tracer.start_as_current_span
    with start(
        "narrative reference",
        attributes={"narrative.type": _TYPE, "narrative.name": "reference", "bot.topic": "x"},
    ):
        for act in ("research", "outline", "draft"):
            with start(f"act {act}", attributes={"narrative.act": act, "narrative.type": _TYPE}):
                with start(
                    "llm reference-model",
                    attributes={"gen_ai.request.model": "reference-model", "narrative.type": _TYPE},
                ) as span:
                    span.set_attribute("gen_ai.usage.input_tokens", 500)
                with start("json.parse", attributes={"json.size": 4096, "narrative.type": _TYPE}):
                    pass


def helper_narrative(metrics: bool) -> Callable[[], None]:
    """The reference narrative through sfumato's Botticelli helpers with no CPU work."""
    return lambda: reference_narrative(0.0, record_metrics=metrics)


def bare_narrative(cpu_ms: float) -> Callable[[], None]:
    return lambda: reference_narrative_bare(cpu_ms)


@dataclass
class Rounds:
    """Seconds per call of each side, one entry per round."""

    samples: dict[str, list[float]] = field(default_factory=dict)

    def min(self, side: str) -> float:
        return min(self.samples[side])

    def median(self, side: str) -> float:
        return statistics.median(self.samples[side])

    def paired(self, side: str, base: str) -> list[float]:
        return [a - b for a, b in zip(self.samples[side], self.samples[base], strict=True)]


def interleaved(
    sides: dict[str, Callable[[], Any]], *, rounds: int, calls: int, warmup: int = 1
) -> Rounds:
    """Time each side ``calls`` times per round, the sides interleaved in every round (the
    order rotating).

    Every timed block starts from a full collection (untimed). Without it the cyclic
    collector's rhythm, set by the work's own allocations, falls on the same side round
    after round: two identical 10 ms narratives timed this way differed by 10-20%. Within
    a block the collector runs as usual, so the collections a side's allocations cause
    are counted in its time."""
    names = list(sides)
    out = Rounds({n: [] for n in names})
    for _ in range(warmup):
        for n in names:
            for _ in range(calls):
                sides[n]()
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for n in order:
            fn = sides[n]
            gc.collect()
            start = CLOCK()
            for _ in range(calls):
                fn()
            out.samples[n].append((CLOCK() - start) / calls)
    return out


# Figures collected during the run, printed by conftest.py's terminal summary.
results: dict[str, Any] = {}
