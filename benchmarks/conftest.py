"""Prints the suite's tables at the end of ``pytest --benchmark-only``."""

from __future__ import annotations

import os
import platform
from typing import Any

import pytest
from harness import CALIBRATION_S, results, rotel
from sfumato.plugins.botticelli.workload import calibrate, composition


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
            f"{shares['interpreted']:.0%} interpreted, {shares['json']:.0%} JSON), full"
        )
        w("pipeline: encoded and sent to Rotel, every thread's CPU; limit 1%. hot: null exporters")
        w("(the sdk rows: the bare SDK by the same method, for comparison, not limited)")
        w(
            f"{'configuration':<34}{'us/span':>9}{'x SDK':>7}{'overhead':>10}{'halves':>13}"
            f"{'hot':>8}{'A/B':>8}{'A/B null':>10}{'realistic':>11}{'A/B wall':>10}"
            f"{'crossover':>11}"
        )
        sdk = overhead.get("sdk AlwaysOn+Batch", {}).get("us_per_narrative")
        for name, f in overhead.items():
            halves = f"{f['first_half_pct']:.2f}/{f['second_half_pct']:.2f}"
            hot = f"{f['hot_pct']:.2f}%" if "hot_pct" in f else "-"
            ratio = f"{f['us_per_narrative'] / sdk:.2f}x" if sdk else "-"
            w(
                f"{name:<34}{f['us_per_span']:>9.2f}{ratio:>7}{f['overhead_pct']:>9.2f}%"
                f"{halves:>13}{hot:>8}{f['ab_pct']:>7.2f}%{f['ab_null_pct']:>9.2f}%"
                f"{f['realistic_pct']:>10.3f}%{f['ab_wall_pct']:>9.2f}%{f['crossover_ms']:>9.2f}ms"
            )
    span_cost = results.get("span_cost")
    if span_cost:
        w("")
        w("Per-span cost, plain OpenTelemetry API, ratio to the bare SDK AlwaysOn + batch + OTLP;")
        w("full: exported to Rotel (limits 0.2x error-always, 0.35x otlp); hot: null exporters")
        w(f"{'pipeline':<34}{'full us':>9}{'ratio':>8}{'hot us':>9}{'ratio':>8}{'crossover':>11}")
        for name, f in span_cost.items():
            full = f"{f['full_us']:>9.2f}{f['full_ratio']:>7.2f}x" if "full_us" in f else " " * 17
            w(
                f"{name:<34}{full}{f['hot_us']:>9.2f}{f['hot_ratio']:>7.2f}x"
                f"{f['crossover_ms']:>9.2f}ms"
            )
    rates = results.get("export_throughput")
    if rates:
        w("")
        w("Sustained export to Rotel over OTLP/gRPC, default batch settings, nothing dropped")
        w(
            f"sfumato (always_on) {rates['sfumato']:,.0f} spans/s; bare SDK {rates['sdk']:,.0f} "
            f"({rates['ratio']:.1f}x; limit 2.5x)"
        )
        w(
            f"bound {rates['bound']:,.0f} spans/s: 50,000 scaled by the SDK's hot path, "
            f"{rates['sdk_hot_path_us']:.1f} us/span this run (21 usual)"
        )
    encoders = results.get("encoders")
    if encoders:
        w("")
        w("Encoders, us per span or log record (512 a batch), against the SDK's; limit 6x")
        w("(spans to protobuf, spans and logs to OTLP/JSON)")
        w(f"{'encoding':<22}{'sfumato':>9}{'SDK':>9}{'speed-up':>10}")
        for name, f in encoders.items():
            w(f"{name:<22}{f['ours_us']:>9.2f}{f['theirs_us']:>9.2f}{f['speedup']:>9.1f}x")
    scrubbing = results.get("scrubbing")
    if scrubbing:
        w("")
        w("Scrubbing on the export thread, us per item (512 a batch, nothing to scrub), against")
        w("the encoding it precedes; limits 1.25 (repeated values), 1.75 (every string new)")
        w(f"{'batch':<22}{'encode':>9}{'scrub':>9}{'ratio':>8}")
        for name, f in scrubbing.items():
            w(f"{name:<22}{f['encode_us']:>9.2f}{f['scrub_us']:>9.2f}{f['ratio']:>7.2f}x")
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


@pytest.fixture(scope="session", autouse=True)
def _calibrated() -> None:
    """The narrative's work sized by a calibration of seconds, once, before anything runs."""
    calibrate(CALIBRATION_S)


@pytest.fixture(scope="session")
def rotel_endpoint() -> Any:
    """The OTLP/gRPC endpoint of a Rotel on loopback that drops what it receives: the full
    pipeline's collector (its CPU is its own process's, not counted)."""
    with rotel() as endpoint:
        yield endpoint


@pytest.fixture(autouse=True)
def _no_leftover_configuration() -> Any:
    """Each benchmark starts and ends without a configured sfumato."""
    import sfumato

    running = sfumato.active()
    if running is not None:
        running.shutdown(timeout=2.0)
    yield
