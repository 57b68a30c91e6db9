"""Shared machinery of the benchmark suite: the shipped configurations, the bare-SDK
baselines, the reference workload in two forms, a Rotel to export to, and an
interleaved-rounds timer.

Every pipeline runs in one of two forms. **Full** (``endpoint`` given): exactly as shipped,
its OTLP exporters sending to a Rotel on loopback that drops what it receives (its CPU is
another process's), the bare SDK with its OTLP/gRPC exporter to the same Rotel; each timed
block ends with a flush of the span queues inside the timing, so the export of a block's
spans is counted in that block, never in the next side's. **Hot path only** (no endpoint):
the exporters behind the queues replaced by null ones, which leaves out encoding and sending.

Method (see docs/benchmarks.md): every figure is a ratio measured in one run. The overhead of
a configuration is its telemetry cost per narrative (the reference narrative with no CPU work,
minus the same narrative bare, paired round by round) divided by the cost of the bare
narrative with its 10 ms of work. Both sides of every comparison are timed in interleaved
rounds, so a busy moment on the machine hits both alike, and the minimum and median of the
rounds are kept.
"""

from __future__ import annotations

import gc
import itertools
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sfumato
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased
from sfumato._telemetry import _install_globals
from sfumato.plugins.botticelli.simulator import reference_narrative, reference_narrative_bare

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from receivers import _wait_for_port, free_port, require, rotel_binary

__all__ = [
    "BASELINES",
    "CONFIGS",
    "NARRATIVE_CPU_MS",
    "SPANS_PER_NARRATIVE",
    "CountingExporter",
    "NullMetricExporter",
    "NullSpanExporter",
    "Rounds",
    "Running",
    "api_narrative",
    "baseline_provider",
    "configured",
    "interleaved",
    "results",
    "rotel",
]

SPANS_PER_NARRATIVE = 10
NARRATIVE_CPU_MS = 10.0
# Size the narrative's work by a calibration of seconds, not the default 0.3 s (see
# ``calibrate``): every run of the suite then measures the same amount of work.
CALIBRATION_S = 3.0
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
# The endpoint is Rotel's (full pipeline), or the exporters are replaced (hot path only).
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


@dataclass
class Running:
    """A pipeline in place: ``flush()`` sends what its span queues hold and waits for it;
    ``dropped()`` counts the spans it lost (a measurement is void if any)."""

    flush: Callable[[], Any]
    dropped: Callable[[], int]
    handle: sfumato.Telemetry | None = None


def _options(name: str, endpoint: str | None) -> dict[str, Any]:
    options = dict(CONFIGS[name])
    if endpoint is not None and "otlp_endpoint" in options:
        options["otlp_endpoint"] = endpoint
        options["insecure"] = True
    return options


@contextmanager
def configured(name: str, endpoint: str | None = None) -> Iterator[Running]:
    """``sfumato.configure()`` with configuration ``name``: exporting to ``endpoint`` (the
    full pipeline) or, without one, its exporters replaced by null ones (hot path only)."""
    handle = sfumato.configure(None, service_name="bench", **_options(name, endpoint))
    pipes = handle._pipes
    if pipes is not None and endpoint is None:
        null = NullSpanExporter()
        for queue in pipes.queues:
            queue.exporter = null
        for reader in pipes.readers:
            if hasattr(reader, "_exporter"):
                reader._exporter = NullMetricExporter()

    provider_flush = getattr(handle.tracer_provider, "force_flush", None)

    def flush() -> None:
        # The spans only (the tail stage hands what it decided to the queues, which send
        # it): a metric export belongs to its interval, not to a block.
        if provider_flush is not None:
            provider_flush(30_000)

    def dropped() -> int:
        return sum(v for k, v in handle.stats().items() if k.startswith("traces.dropped."))

    try:
        yield Running(flush, dropped, handle)
    finally:
        handle.shutdown(timeout=5.0)


def _batch(endpoint: str | None) -> tuple[BatchSpanProcessor, Callable[[], int]]:
    if endpoint is None:
        exporter: SpanExporter = NullSpanExporter()
    else:
        exporter = CountingExporter(OTLPSpanExporter(endpoint=endpoint, insecure=True))
    processor = BatchSpanProcessor(exporter)
    return processor, getattr(exporter, "failed", lambda: 0)


class CountingExporter(SpanExporter):
    """The SDK's OTLP exporter, counting the spans it was handed (``sent``) and those of
    batches it failed to send (``lost``)."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.sent = 0
        self.lost = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        self.sent += len(spans)
        if result is not SpanExportResult.SUCCESS:
            self.lost += len(spans)
        return result

    def failed(self) -> int:
        return self.lost

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


def _sdk_provider(sampler: Any, endpoint: str | None) -> tuple[TracerProvider, Callable[[], int]]:
    provider = TracerProvider(
        sampler=sampler,
        resource=Resource.create({"service.name": "bench"}),
        shutdown_on_exit=False,
    )
    processor, failed = _batch(endpoint)
    provider.add_span_processor(processor)
    return provider, failed


# The bare SDK configured by hand for the same job: AlwaysOn or ParentBased(ratio 0.1),
# BatchSpanProcessor with its defaults, the SDK's OTLP/gRPC exporter (or a null one).
BASELINES: dict[str, Any] = {
    "sdk AlwaysOn+Batch": ALWAYS_ON,
    "sdk ParentBased(Ratio 0.1)+Batch": ParentBased(TraceIdRatioBased(0.1)),
}


@contextmanager
def sdk_pipeline(
    name: str, endpoint: str | None = None
) -> Iterator[tuple[TracerProvider, Running]]:
    """A bare-SDK pipeline (not installed globally)."""
    provider, failed = _sdk_provider(BASELINES[name], endpoint)
    try:
        yield provider, Running(lambda: provider.force_flush(30_000), failed)
    finally:
        provider.shutdown()


@contextmanager
def baseline_provider(name: str, endpoint: str | None = None) -> Iterator[Running]:
    """A bare-SDK pipeline installed as the global provider (so the helpers use it too)."""
    with sdk_pipeline(name, endpoint) as (provider, running):
        _install_globals(None)
        trace.set_tracer_provider(provider)
        try:
            yield running
        finally:
            _install_globals(None)


@contextmanager
def rotel() -> Iterator[str]:
    """A Rotel on loopback that drops what it receives; yields its OTLP/gRPC endpoint."""
    binary = require(rotel_binary(), "rotel-agent (pip install rotel)")
    port = free_port()
    process = subprocess.Popen(
        [
            binary, "start",
            "--otlp-grpc-endpoint", f"127.0.0.1:{port}",
            "--otlp-http-endpoint", f"127.0.0.1:{free_port()}",
            "--exporter", "blackhole",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


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

    def ratios(self, side: str, base: str) -> list[float]:
        return [a / b for a, b in zip(self.samples[side], self.samples[base], strict=True)]


def interleaved(
    sides: dict[str, Callable[[], Any]],
    *,
    rounds: int,
    calls: int | dict[str, int],
    warmup: int = 1,
    settle: dict[str, Callable[[], Any]] | None = None,
) -> Rounds:
    """Time each side ``calls`` times per round, the sides interleaved in every round (the
    order going through every permutation). ``settle[side]``, when given, runs once at the
    end of each of that side's blocks, inside the timing (a flush: the block's export is
    counted in it). ``calls`` may differ per side (a dict).

    Every timed block starts from a full collection (untimed). Without it the cyclic
    collector's rhythm, set by the work's own allocations, falls on the same side round
    after round: two identical 10 ms narratives timed this way differed by 10-20%. Within
    a block the collector runs as usual, so the collections a side's allocations cause
    are counted in its time."""
    names = list(sides)
    settle = settle or {}
    counts = calls if isinstance(calls, dict) else dict.fromkeys(names, calls)
    out = Rounds({n: [] for n in names})
    for _ in range(warmup):
        for n in names:
            for _ in range(counts[n]):
                sides[n]()
            if n in settle:
                settle[n]()
    # Every order of the sides in turn, so that each side follows each other side as often:
    # what one side's block leaves behind (a collector's work, a timer's wake-up) falls on
    # the others alike.
    orders = list(itertools.permutations(names))
    for r in range(rounds):
        for n in orders[r % len(orders)]:
            fn = sides[n]
            after = settle.get(n)
            count = counts[n]
            gc.collect()
            start = CLOCK()
            for _ in range(count):
                fn()
            if after is not None:
                after()
            out.samples[n].append((CLOCK() - start) / count)
    return out


# Figures collected during the run, printed by conftest.py's terminal summary.
results: dict[str, Any] = {}
