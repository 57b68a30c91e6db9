"""Prints the suite's tables at the end of ``pytest --benchmark-only``."""

from __future__ import annotations

import os
import platform
from typing import Any

import pytest
from harness import results
from sfumato.plugins.botticelli.workload import composition


def _hardware() -> str:
    model = "?"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    if not results:
        return
    w = terminalreporter.write_line
    terminalreporter.section("sfumato benchmarks")
    w(_hardware())
    overhead = results.get("overhead")
    if overhead:
        w("")
        shares = composition()
        w(
            "Overhead on the reference narrative (10 spans, 10 ms CPU: "
            f"{shares['interpreted']:.0%} interpreted, {shares['json']:.0%} JSON); limit 1%"
        )
        w("(the sdk rows: the bare SDK by the same method, for comparison, not limited)")
        w(
            f"{'configuration':<34}{'us/span':>9}{'overhead':>10}{'halves':>15}"
            f"{'A/B':>8}{'A/B null':>10}{'realistic':>11}{'A/B wall':>10}{'crossover':>11}"
        )
        for name, f in overhead.items():
            halves = f"{f['first_half_pct']:.2f}/{f['second_half_pct']:.2f}"
            w(
                f"{name:<34}{f['us_per_span']:>9.2f}{f['overhead_pct']:>9.2f}%{halves:>15}"
                f"{f['ab_pct']:>7.2f}%{f['ab_null_pct']:>9.2f}%{f['realistic_pct']:>10.3f}%"
                f"{f['ab_wall_pct']:>9.2f}%{f['crossover_ms']:>9.2f}ms"
            )
    span_cost = results.get("span_cost")
    if span_cost:
        w("")
        w("Per-span cost, plain OpenTelemetry API, ratio to the bare SDK AlwaysOn + batch")
        w(f"{'pipeline':<34}{'us/span':>9}{'ratio':>8}{'crossover':>11}")
        for name, f in span_cost.items():
            w(f"{name:<34}{f['us_per_span']:>9.2f}{f['ratio']:>7.2f}x{f['crossover_ms']:>9.2f}ms")
    full = results.get("full_pipeline")
    if full:
        w("")
        w("Full pipeline: process CPU per span, OTLP/gRPC to Rotel (export threads counted)")
        w("ratio to the bare SDK AlwaysOn + BatchSpanProcessor + its OTLP exporter; limits")
        w("0.35x always_on, 0.2x production")
        w(f"{'pipeline':<34}{'us/span':>9}{'ratio':>8}")
        for name, f in full.items():
            w(f"{name:<34}{f['us_per_span']:>9.2f}{f['ratio']:>7.2f}x")
    rates = results.get("export_throughput")
    if rates:
        w("")
        w("Export capacity: spans/s one OTLP/gRPC exporter sends to Rotel, 512 a batch;")
        w("limit 50,000 with sfumato's encoder")
        for name, rate in rates.items():
            w(f"{name + ' encoder':<34}{rate:>12,.0f}")
    samplers = results.get("samplers")
    if samplers:
        w("")
        w("Sampler decision cost against TraceIdRatioBased.should_sample; limit 2x")
        w(f"{'sampler':<22}{'ns/call':>9}{'ratio':>8}")
        for name, f in samplers.items():
            w(f"{name:<22}{f['ns_per_call']:>9.0f}{f['ratio']:>7.2f}x")
    other = results.get("other")
    if other:
        w("")
        for label, value in other.items():
            w(f"{label:<56} {value}")


@pytest.fixture(autouse=True)
def _no_leftover_configuration() -> Any:
    """Each benchmark starts and ends without a configured sfumato."""
    import sfumato

    running = sfumato.active()
    if running is not None:
        running.shutdown(timeout=2.0)
    yield
