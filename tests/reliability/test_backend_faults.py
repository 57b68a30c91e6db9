"""Backend faults against a real receiver: Rotel behind a fault-injecting TCP proxy.

Each scenario runs an application workload (2000 spans a second, each ``with`` block timed)
through sfumato's OTLP/gRPC export to the proxy, first healthy, then under the fault, then
recovered, and ends with a shutdown while the fault is back on. For every fault:

- the application never blocks on export: the p99 of the instrumented call under the fault
  stays within 2x the healthy p99 measured in the same test (with a floor, see ``P99_FLOOR_US``);
- memory stays bounded: RSS growth stays under ``RSS_BOUND`` while the queue is full;
- no exception reaches the application's code;
- every span is accounted for: created = exported + dropped (by reason) + still queued;
- spans queued during the outage reach the receiver after recovery;
- ``shutdown()`` returns within its timeout with the fault on.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sfumato
from receivers import RotelServer, attributes, require, rotel_binary, wait_until
from reliability_support import FaultProxy, Mode, Timings, p99, rss_bytes, run_workload

pytestmark = pytest.mark.server

RATE = 2000  # spans a second, the application's load
MAX_QUEUE = 2048
BATCH = 256
SHUTDOWN_S = 1.5
# A shutdown may run over its budget by thread scheduling only, never by an export.
MARGIN_S = 0.3
# The healthy p99 of a span is 50-90 us here, and on 2 cores shared with Rotel, the proxy and
# the export thread a fault phase's p99 moves by as much from scheduling alone. Blocking on an
# export would cost hundreds of milliseconds (a slow export takes 0.4-0.8 s), so a floor of
# 100 us (a 200 us bound at least) still catches it without measuring the scheduler.
P99_FLOOR_US = 100.0
# A full queue holds MAX_QUEUE + BATCH spans of ~1-3 KB each; the rest is allocator slack.
RSS_BOUND = 24 * 1024 * 1024


# What each scenario measured; written as JSON to $FAULT_REPORT when it is set (the
# figures in docs/reliability.md come from there).
FIGURES: dict[str, dict[str, object]] = {}


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    target = os.environ.get("FAULT_REPORT")
    if target and FIGURES:
        Path(target).write_text(json.dumps(FIGURES, indent=2) + "\n")


@pytest.fixture(scope="module")
def rotel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RotelServer]:
    binary = require(rotel_binary(), "rotel-agent (pip install rotel)")
    server = RotelServer.start(binary, tmp_path_factory.mktemp("rotel"))
    try:
        yield server
    finally:
        server.stop()


def _configure(proxy: FaultProxy, service: str) -> sfumato.Telemetry:
    return sfumato.configure(
        service_name=service,
        backend="otlp",
        protocol="grpc",
        otlp_endpoint=proxy.endpoint,
        batch_size=BATCH,
        batch_timeout_ms=200,
        max_queue_size=MAX_QUEUE,
        export_timeout_ms=1000,
        export_retry_ms=15_000,
        shutdown_timeout_ms=int(SHUTDOWN_S * 1000),
        metrics={"enabled": False},
        logs={"enabled": False},
    )


def _received(rotel: RotelServer, service: str) -> set[int]:
    """The distinct ``n`` of the spans of ``service`` that reached the receiver."""
    return {
        int(attributes(span.attributes)["n"])
        for resource, span in rotel.sink.spans()
        if resource.get("service.name") == service
    }


@dataclass
class Phase:
    """One stretch of the workload: its timings, its ``n`` range and what it dropped."""

    timings: Timings
    first: int
    dropped: int  # queue_full drops while it ran (decided when each span is created)

    @property
    def numbers(self) -> range:
        return range(self.first, self.first + self.timings.spans)


class Run:
    """A configured handle with a numbered workload and per-phase drop counts."""

    def __init__(self, telemetry: sfumato.Telemetry) -> None:
        self.telemetry = telemetry
        self.figures = FIGURES.setdefault(telemetry.settings.service_name, {})
        self.tracer = telemetry.tracer()
        self.created = 0
        self.phases: list[Phase] = []

    def phase(self, seconds: float, during: Callable[[float], None] | None = None) -> Phase:
        before = self.telemetry.stats().get("traces.dropped.queue_full", 0)
        timings = run_workload(_Numbered(self.tracer, self.created), seconds, RATE, during=during)
        after = self.telemetry.stats()["traces.dropped.queue_full"]
        phase = Phase(timings, self.created, after - before)
        self.created += timings.spans
        self.phases.append(phase)
        return phase

    def errors(self) -> list[BaseException]:
        return [e for p in self.phases for e in p.timings.errors]


class _Numbered:
    """A tracer whose spans carry a run-wide sequence number ``n`` (offset per phase)."""

    def __init__(self, tracer: object, offset: int) -> None:
        self._tracer = tracer
        self._offset = offset

    def start_as_current_span(self, name: str, attributes: dict[str, int]) -> object:
        return self._tracer.start_as_current_span(  # type: ignore[attr-defined]
            name, attributes={"n": attributes["n"] + self._offset}
        )


def _accounted(stats: dict[str, int], created: int) -> None:
    dropped = {k: v for k, v in stats.items() if k.startswith("traces.dropped.")}
    assert created == stats["traces.exported"] + sum(dropped.values()) + stats["traces.in_queue"], (
        f"created {created}, stats {stats}"
    )
    assert stats["traces.queued"] == created  # every span is handed to the queue


def _fast_enough(run: Run, healthy: Phase, faulty: Phase) -> None:
    base, under = p99(healthy.timings.durations), p99(faulty.timings.durations)
    run.figures.update(healthy_p99_us=base, fault_p99_us=under, fault_spans=faulty.timings.spans)
    bound = 2 * max(base, P99_FLOOR_US)
    assert under <= bound, f"p99 {under:.1f}us under the fault, healthy {base:.1f}us"


def _delivered_after_recovery(
    run: Run, rotel: RotelServer, service: str, outage: Phase
) -> set[int]:
    """Flush, and check every span queued (not dropped) during ``outage`` arrived."""
    # False when the queue was full during the outage; done all the same.
    flushed = run.telemetry.force_flush(15.0)
    stats = run.telemetry.stats()
    assert flushed or stats["traces.dropped.queue_full"], stats
    assert stats["traces.in_queue"] == 0, stats
    assert stats["traces.dropped.export_failed"] == 0, stats
    assert stats["traces.exported"] == stats["traces.queued"] - stats["traces.dropped.queue_full"]
    wait_until(lambda: len(_received(rotel, service)) >= stats["traces.exported"], timeout=10)
    received = _received(rotel, service)
    # Distinct spans: a retried batch may arrive twice (at-least-once), never a span missing.
    assert len(received) == stats["traces.exported"], (len(received), stats)
    during = [n for n in outage.numbers if n in received]
    assert outage.timings.spans - outage.dropped == len(during) > 0, (outage.dropped, stats)
    return received


def _shutdown_under(run: Run, proxy: FaultProxy, mode: Mode) -> None:
    proxy.set_mode(mode)
    run.phase(0.5)
    start = time.monotonic()
    run.telemetry.shutdown()
    took = time.monotonic() - start
    stats = run.telemetry.stats()
    run.figures.update(shutdown_s=round(took, 3), created=run.created, stats=stats)
    assert took < SHUTDOWN_S + MARGIN_S, f"shutdown took {took:.2f}s with the backend {mode}"
    _accounted(stats, run.created)
    assert run.errors() == []


def _rss_bounded(run: Run, samples: list[int]) -> None:
    growth = max(samples) - samples[0]
    run.figures["rss_growth_mib"] = round(growth / 2**20, 2)
    assert growth < RSS_BOUND, f"RSS grew {growth / 2**20:.1f} MiB: {samples}"


@pytest.fixture
def service(request: pytest.FixtureRequest) -> str:
    return f"fault-{request.node.name}"


# -- the faults ------------------------------------------------------------------------------


def _under_fault(run: Run, proxy: FaultProxy, mode: Mode) -> tuple[Phase, list[int]]:
    """Three seconds of load with the proxy in ``mode``, RSS sampled either side."""
    proxy.set_mode(mode)
    rss = [rss_bytes()]
    phase = run.phase(3.0)
    rss.append(rss_bytes())
    return phase, rss


def _recover_and_check(
    run: Run,
    rotel: RotelServer,
    service: str,
    proxy: FaultProxy,
    healthy: Phase,
    fault: Phase,
    rss: list[int],
    mode: Mode,
) -> None:
    """Back to healthy, then every guarantee: latency, delivery, memory, bounded shutdown."""
    proxy.set_mode("pass")
    run.phase(0.5)
    _fast_enough(run, healthy, fault)
    _delivered_after_recovery(run, rotel, service, fault)
    _rss_bounded(run, rss)
    _shutdown_under(run, proxy, mode)


def test_backend_down_at_start(rotel: RotelServer, service: str) -> None:
    # The healthy baseline first, with its own handle, on the same machine a moment before.
    proxy = FaultProxy(rotel.grpc_port, "pass")
    try:
        baseline_run = Run(_configure(proxy, f"{service}-baseline"))
        healthy = baseline_run.phase(2.0)
        baseline_run.telemetry.shutdown()

        proxy.set_mode("down")
        run = Run(_configure(proxy, service))
        outage, rss = _under_fault(run, proxy, "down")
        assert run.telemetry.stats()["traces.exported"] == 0
        _recover_and_check(run, rotel, service, proxy, healthy, outage, rss, "down")
    finally:
        proxy.close()


def test_backend_going_down_mid_run(rotel: RotelServer, service: str) -> None:
    proxy = FaultProxy(rotel.grpc_port, "pass")
    try:
        run = Run(_configure(proxy, service))
        healthy = run.phase(2.0)
        exported_before = run.telemetry.stats()["traces.exported"]
        assert exported_before > 0
        outage, rss = _under_fault(run, proxy, "down")
        _recover_and_check(run, rotel, service, proxy, healthy, outage, rss, "down")
    finally:
        proxy.close()


def test_slow_backend(rotel: RotelServer, service: str) -> None:
    # Each chunk held 200 ms each way: an export takes ~0.4-0.8 s, within export_timeout_ms,
    # so the queue fills and drops, but nothing times out and nothing is sent twice.
    proxy = FaultProxy(rotel.grpc_port, "pass", latency=0.2)
    try:
        run = Run(_configure(proxy, service))
        healthy = run.phase(2.0)
        slow, rss = _under_fault(run, proxy, "slow")
        assert slow.dropped > 0, "a 200 ms backend at 2000 spans/s should fill the queue"
        _recover_and_check(run, rotel, service, proxy, healthy, slow, rss, "slow")
    finally:
        proxy.close()


def test_blackholed_backend(rotel: RotelServer, service: str) -> None:
    proxy = FaultProxy(rotel.grpc_port, "pass")
    try:
        run = Run(_configure(proxy, service))
        healthy = run.phase(2.0)
        hole, rss = _under_fault(run, proxy, "blackhole")
        stats = run.telemetry.stats()
        assert stats["traces.export.retries"] >= 1, stats  # the timed-out batch is kept
        _recover_and_check(run, rotel, service, proxy, healthy, hole, rss, "blackhole")
    finally:
        proxy.close()


def test_flapping_backend_sustained(rotel: RotelServer, service: str) -> None:
    # Down for 1 s out of every 2 s, for 8 s: the sustained run whose RSS must stay flat
    # once the queue has reached its bound.
    proxy = FaultProxy(rotel.grpc_port, "pass")
    rss: list[int] = []
    next_sample = [0.0]

    def flap(elapsed: float) -> None:
        want: Mode = "down" if int(elapsed) % 2 == 0 else "pass"
        if proxy.mode != want:
            proxy.set_mode(want)
        if elapsed >= next_sample[0]:
            rss.append(rss_bytes())
            next_sample[0] += 1.0

    try:
        run = Run(_configure(proxy, service))
        healthy = run.phase(2.0)
        flapping = run.phase(8.0, during=flap)
        rss.append(rss_bytes())
        proxy.set_mode("pass")
        _fast_enough(run, healthy, flapping)
        stats = run.telemetry.stats()
        assert stats["traces.export.retries"] >= 1, stats
        _delivered_after_recovery(run, rotel, service, flapping)
        # The first outage reset the exporter's connection, so what was delivered came over
        # a new one. (Checked after recovery: gRPC's reconnect back-off, 1 s and growing,
        # may miss every 1 s window the flapping leaves open.)
        assert proxy.connections >= 2
        _rss_bounded(run, rss)
        _shutdown_under(run, proxy, "down")
    finally:
        proxy.close()
