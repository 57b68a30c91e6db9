"""A real Prometheus scrapes sfumato's endpoint and answers queries about it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sfumato
from receivers import PrometheusServer, free_port, wait_until
from sfumato import metrics

pytestmark = pytest.mark.server


def test_prometheus_scrapes_counter_and_histogram(
    prometheus: Callable[[list[str]], PrometheusServer],
) -> None:
    port = free_port()
    with sfumato.configure(
        None,
        service_name="prom-scraped",
        backend="prometheus",
        backend_options={"port": port},
        metrics={"views": {"prom.latency": {"buckets": [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]}}},
    ) as telemetry:
        requests = metrics.counter("prom.requests", description="requests handled", unit="1")
        latency = metrics.histogram("prom.latency", unit="ms")
        requests.add(40, {"route": "chat"})
        requests.add(2, {"route": "chat"})
        # 1..100 ms once each: the true median is 50.5, and with buckets 10 ms wide
        # Prometheus's linear interpolation inside the bucket gives exactly 50.
        for value in range(1, 101):
            latency.record(value)
        assert telemetry.exporter("prometheus", "metrics").port == port

        server = prometheus([f"127.0.0.1:{port}"])

        def value_of(expr: str) -> float | None:
            result = server.query(expr)
            return float(result[0]["value"][1]) if result else None

        total = wait_until(lambda: value_of('prom_requests_total{route="chat"}'), timeout=30)
        assert total == 42
        quantile = value_of(
            "histogram_quantile(0.5, sum by (le) (prom_latency_milliseconds_bucket))"
        )
        assert quantile == pytest.approx(50.0)
        p90 = value_of("histogram_quantile(0.9, sum by (le) (prom_latency_milliseconds_bucket))")
        assert p90 == pytest.approx(90.0)
        [up] = server.query('up{job="sfumato"}')
        assert up["value"][1] == "1"
        info = server.query("target_info")
        assert info and info[0]["metric"]["service_name"] == "prom-scraped"
