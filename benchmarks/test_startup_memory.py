"""One-off costs and memory: ``import sfumato``, ``configure()``, and the memory a trace
takes while the tail-decision processor buffers it (reported, with loose sanity bounds).

Run with ``pytest --benchmark-only benchmarks/test_startup_memory.py``.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import time
import tracemalloc
from typing import Any

from harness import PRODUCTION, configured, results
from opentelemetry import trace

_IMPORT = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"


def import_seconds(module: str, repeats: int = 5) -> float:
    """Best-of-``repeats`` time to import ``module`` in a fresh interpreter."""
    best = float("inf")
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", _IMPORT.format(module=module)],
            capture_output=True,
            text=True,
            check=True,
        )
        best = min(best, float(out.stdout.strip()))
    return best


def test_import_time(benchmark: Any) -> None:
    ours = import_seconds("sfumato")
    sdk = import_seconds("opentelemetry.sdk.trace")
    other = results.setdefault("other", {})
    other["import sfumato (ms, best of 5)"] = f"{ours * 1e3:.1f}"
    other["import opentelemetry.sdk.trace (ms, best of 5)"] = f"{sdk * 1e3:.1f}"
    benchmark.extra_info.update({"sfumato_ms": ours * 1e3, "sdk_trace_ms": sdk * 1e3})
    benchmark.pedantic(lambda: import_seconds("sfumato", 1), rounds=1, iterations=1)
    assert ours < 5.0  # a sanity bound: plugins are loaded by configure(), not by import


def configure_seconds(name: str, repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        with configured(name):
            best = min(best, time.perf_counter() - start)
    return best


def test_configure_time(benchmark: Any) -> None:
    seconds = configure_seconds(PRODUCTION)
    results.setdefault("other", {})[f"configure() {PRODUCTION} (ms, best of 5)"] = (
        f"{seconds * 1e3:.1f}"
    )
    benchmark.extra_info["configure_ms"] = seconds * 1e3
    benchmark.pedantic(lambda: configure_seconds(PRODUCTION, 1), rounds=3, iterations=1)
    assert seconds < 5.0


def buffered_trace_bytes(traces: int = 500) -> tuple[float, int]:
    """Bytes held per open trace of nine ended spans (its root still running) under the
    production configuration, and the number of traces the tail processor held."""
    with configured(PRODUCTION) as running:
        handle = running.handle
        assert handle is not None
        tracer = trace.get_tracer("bench")
        tail = handle.tracer_provider._active_span_processor._span_processors[0]
        roots = []
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(traces):
            root = tracer.start_span("narrative reference", attributes={"narrative.type": "c"})
            ctx = trace.set_span_in_context(root)
            for i in range(9):
                tracer.start_span(
                    f"act {i}", ctx, attributes={"narrative.act": "x", "narrative.type": "c"}
                ).end()
            roots.append(root)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        held = tail.open_traces()
        for root in roots:
            root.end()
    return (after - before) / traces, held


def test_memory_per_buffered_trace(benchmark: Any) -> None:
    per_trace, held = buffered_trace_bytes()
    other = results.setdefault("other", {})
    other["memory per buffered trace, 9 spans + open root (bytes)"] = f"{per_trace:,.0f}"
    benchmark.extra_info["bytes_per_trace"] = per_trace
    benchmark.pedantic(lambda: buffered_trace_bytes(50), rounds=1, iterations=1)
    assert held == 500
    assert per_trace < 64_000
