"""Helpers for the sampler tests: binomial tolerances, seeded trace ids, a recording processor."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sfumato
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

SIGMAS = 4.0


def binomial_tolerance(n: int, p: float, sigmas: float = SIGMAS) -> float:
    """``sigmas`` standard deviations of a Binomial(n, p) count (at least 1)."""
    return max(1.0, sigmas * math.sqrt(n * p * (1.0 - p)))


def assert_binomial(kept: int, n: int, p: float, what: str = "kept") -> None:
    tol = binomial_tolerance(n, p)
    assert abs(kept - n * p) <= tol, f"{what}: {kept} of {n}, expected {n * p:.1f} +- {tol:.1f}"


def estimate_tolerance(n_by_p: dict[float, int], sigmas: float = SIGMAS) -> float:
    """Tolerance of sum(1/p over kept) as an estimate of the count: Var = sum n (1-p)/p."""
    var = sum(n * (1.0 - p) / p for p, n in n_by_p.items() if p > 0)
    return max(1.0, sigmas * math.sqrt(var))


def trace_ids(seed: int, n: int) -> Iterator[int]:
    rng = random.Random(seed)
    for _ in range(n):
        yield rng.getrandbits(128) or 1


class Recorder(SpanProcessor):
    """A downstream processor that keeps what it is given."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []
        self.flushed = 0
        self.shut = False

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)

    def shutdown(self) -> None:
        self.shut = True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.flushed += 1
        return True


@contextmanager
def memory_telemetry(
    sampler: dict[str, Any], seed: int = 1234
) -> Iterator[tuple[sfumato.Telemetry, Any]]:
    """``configure`` with the in-memory exporter and ``sampler``; the SDK's trace ids come
    from ``random``, seeded here so the run is repeatable."""
    random.seed(seed)
    handle = sfumato.configure(
        backend="none",
        exporters=[{"type": "memory"}],
        export_console=False,
        sampler=sampler,
        metrics={"enabled": False},
        logs={"enabled": False},
    )
    try:
        yield handle, handle.exporter("memory", "traces")
    finally:
        handle.shutdown()
