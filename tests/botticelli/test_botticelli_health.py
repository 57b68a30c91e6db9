"""``[telemetry.http]``: /healthz computed from the telemetry, /metrics for Prometheus."""

from __future__ import annotations

import json
import logging
import socket
import struct
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
import sfumato
from sfumato.plugins.botticelli import BotMetrics
from sfumato.plugins.botticelli.simulator import SimulationConfig, run
from sfumato.plugins.health import HealthMonitor
from sfumato.plugins.http import endpoints
from sfumato.settings import HealthRule

GENERATION = {
    "name": "GenerationFailureRate",
    "metric": "bot.generation.runs",
    "kind": "ratio",
    "where": {"outcome": "failure"},
    "threshold": 0.10,
    "window": "5m",
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def configure(**http: Any) -> sfumato.Telemetry:
    return sfumato.configure(
        backend="none",
        service_name="health-test",
        logs={"enabled": False},
        http={"enabled": True, "port": 0, **http},
    )


def test_healthz_turns_503_on_generation_failures_and_back() -> None:
    handle = configure(health=[GENERATION])
    try:
        server = endpoints(handle)
        assert server is not None and server.monitor is not None
        clock = Clock()
        server.monitor.clock = clock
        code, body = get(f"{server.url}/healthz")
        assert code == 200 and json.loads(body)["status"] == "ok"

        # A bad spell: about 1 - 0.75**3 = 58% of the generation runs fail their JSON parse.
        sim = dict(act_cpu_ms=0.02, curation_every=1000)
        bad = run(SimulationConfig(seed=5, narratives=60, json_failure_rate=0.25, **sim))
        assert bad.generation_failures / (bad.generations + bad.generation_failures) > 0.1
        code, body = get(f"{server.url}/healthz")
        detail = json.loads(body)
        assert code == 503, detail
        assert detail["failing"] == ["GenerationFailureRate"]
        assert detail["rules"][0]["value"] == pytest.approx(
            bad.generation_failures / (bad.generations + bad.generation_failures)
        )

        # Six minutes later, with healthy runs only, the bad spell is out of the window.
        clock.now += 360
        good = run(SimulationConfig(seed=6, narratives=40, json_failure_rate=0.0, **sim))
        assert good.generation_failures == 0
        code, body = get(f"{server.url}/healthz")
        detail = json.loads(body)
        assert code == 200, detail
        assert detail["rules"][0]["value"] == 0.0
    finally:
        handle.shutdown()
    assert endpoints(handle) is None


def test_metrics_endpoint_serves_the_plan_names() -> None:
    import prometheus_client  # noqa: F401  (the prometheus extra, part of .[dev]: never skipped)

    handle = configure()
    try:
        server = endpoints(handle)
        assert server is not None
        run(SimulationConfig(seed=1, narratives=20, act_cpu_ms=0.02))
        code, body = get(f"{server.url}/metrics")
        assert code == 200
        text = body.decode()
        for name in (
            "bot_generation_runs_total",
            "bot_generation_duration_seconds_bucket",
            "narrative_act_duration_seconds_count",
            "database_query_duration_seconds_sum",
            "api_requests_total",
        ):
            assert f"\n{name}{{" in text, name
        assert get(f"{server.url}/nothing")[0] == 404
    finally:
        handle.shutdown()


def test_every_kind_of_rule() -> None:
    rules = [
        HealthRule(
            name="Posting", metric="bot.posting.failed", kind="count", threshold=5, window="10m"
        ),
        HealthRule(
            name="Tokens",
            metric="bot.generation.tokens.used",
            kind="quota",
            quota=1000,
            threshold=0.8,
            window="1d",
        ),
        HealthRule(
            name="SlowQuery",
            metric="database.query.duration",
            kind="max",
            threshold=1.0,
            window="5m",
        ),
        HealthRule(
            name="Quiet",
            metric="bot.generation.runs",
            kind="ratio",
            where={"outcome": "failure"},
            threshold=0.1,
            min_total=10,
        ),
    ]
    from opentelemetry.sdk.metrics import MeterProvider

    clock = Clock()
    monitor = HealthMonitor(rules, clock=clock)
    provider = MeterProvider(metric_readers=[monitor.reader])
    metrics = BotMetrics(meter_provider=provider)
    try:
        for _ in range(5):
            metrics.record_posting(False, "art", platform="x", error_type="E")
        metrics.record_generation(0.1, 700, "art")
        metrics.record_db_query(0.5, "select")
        metrics.record_generation_failure(0.1, "art")  # 1 of 2 runs: below min_total
        states = {s.rule.name: s for s in monitor.evaluate()}
        assert states["Posting"].value == 5 and states["Posting"].ok  # more than 5 fails
        assert states["Tokens"].value == pytest.approx(0.7) and states["Tokens"].ok
        assert states["SlowQuery"].value == pytest.approx(0.5) and states["SlowQuery"].ok
        assert states["Quiet"].value is None and states["Quiet"].ok

        clock.now += 60
        metrics.record_posting(False, "art", platform="x", error_type="E")
        metrics.record_generation(0.1, 200, "art")
        metrics.record_db_query(1.5, "select")
        states = {s.rule.name: s for s in monitor.evaluate()}
        assert not states["Posting"].ok and states["Posting"].value == 6
        assert not states["Tokens"].ok and states["Tokens"].value == pytest.approx(0.9)
        assert not states["SlowQuery"].ok and states["SlowQuery"].value == pytest.approx(1.5)

        clock.now += 400  # past the 5-minute window, inside the 10-minute and daily ones
        states = {s.rule.name: s for s in monitor.evaluate()}
        assert states["SlowQuery"].ok and states["SlowQuery"].value is None
        assert not states["Posting"].ok and not states["Tokens"].ok
    finally:
        provider.shutdown()


def test_all_interfaces_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="sfumato"):
        handle = configure(host="0.0.0.0")
        handle.shutdown()
    assert any("reachable from other hosts" in r.getMessage() for r in caplog.records)


def test_disabled_by_default() -> None:
    handle = sfumato.configure(backend="none", logs={"enabled": False})
    try:
        assert endpoints(handle) is None
    finally:
        handle.shutdown()


def test_forked_child_leaves_the_endpoints_to_the_parent() -> None:
    # The child inherits the listening socket but not the serve loop: it must neither bind
    # the port again nor wait on the parent's loop at shutdown.
    import os
    import socket
    import time

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    handle = configure(port=port, health=[GENERATION])
    try:
        server = endpoints(handle)
        assert server is not None and server.url is not None
        url = server.url
        pid = os.fork()
        if pid == 0:  # child
            code = 1
            try:
                child = sfumato.active()
                assert child is not None and child.plan is not None
                plugin = child.plan.host.pm.get_plugin("http")
                started = time.monotonic()
                ok = child.shutdown(2.0)
                quick = time.monotonic() - started < 1.0
                code = 0 if (plugin.server is None and ok and quick) else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0
        assert get(f"{url}/healthz")[0] == 200  # the parent still serves
    finally:
        handle.shutdown()


def _reset(port: int, request: bytes) -> None:
    """Send ``request`` and abort the connection with a TCP reset."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_a_reset_connection_prints_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    handle = configure()
    try:
        server = endpoints(handle)
        assert server is not None and server.port is not None
        for partial in (b"GET /heal", b"GET /healthz HTTP/1.1\r\nHost: x\r\n"):
            _reset(server.port, partial)
        time.sleep(0.3)
        assert get(f"{server.url}/healthz")[0] == 200  # still serving
    finally:
        handle.shutdown()
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception occurred" not in err, err


def test_idle_connections_are_closed_and_capped() -> None:
    handle = configure()
    try:
        server = endpoints(handle)
        assert server is not None and server.port is not None and server.server is not None
        server.server.idle_timeout_s = 0.5
        idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(40)]
        try:
            # Each idle connection is closed by the server after the idle timeout...
            for sock in idle:
                sock.settimeout(5)
                assert sock.recv(1) == b"", "the server should close an idle connection"
        finally:
            for sock in idle:
                sock.close()
        # ... and no more handler threads than the cap were ever running at once.
        assert server.server.most_connections <= server.server.max_connections
        assert get(f"{server.url}/healthz")[0] == 200
    finally:
        handle.shutdown()
