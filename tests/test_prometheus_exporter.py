"""The ``prometheus`` exporter and backend: a /metrics endpoint served from the process."""

from __future__ import annotations

import logging
import urllib.request

import pytest
import sfumato
from receivers import free_port
from sfumato import ConfigError, metrics


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def sample(text: str, name: str, labels: str = "") -> float | None:
    """The value of the first sample named ``name`` whose labels contain ``labels``."""
    for line in text.splitlines():
        named = line.startswith(f"{name}{{") or line.startswith(f"{name} ")
        if named and labels in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def test_backend_serves_counter_and_histogram() -> None:
    port = free_port()
    with sfumato.configure(
        None,
        service_name="scraped",
        backend="prometheus",
        backend_options={"port": port},
        metrics={"views": {"scrape.latency": {"buckets": [10, 100]}}},
    ) as telemetry:
        metrics.counter("scrape.requests", unit="1").add(5, {"route": "chat"})
        for value in (5, 50, 500):
            metrics.histogram("scrape.latency", unit="ms").record(value)
        endpoint = telemetry.exporter("prometheus", "metrics")
        assert endpoint.url == f"http://127.0.0.1:{port}/metrics"
        text = scrape(endpoint.url)
    assert sample(text, "scrape_requests_total", 'route="chat"') == 5
    assert sample(text, "scrape_latency_milliseconds_bucket", 'le="10.0"') == 1
    assert sample(text, "scrape_latency_milliseconds_bucket", 'le="100.0"') == 2
    assert sample(text, "scrape_latency_milliseconds_bucket", 'le="+Inf"') == 3
    assert sample(text, "scrape_latency_milliseconds_count") == 3
    assert 'service_name="scraped"' in text  # target_info carries the resource


def test_port_is_freed_and_registry_fresh_on_a_second_configure() -> None:
    port = free_port()
    for round_ in (1, 2):
        with sfumato.configure(None, backend="prometheus", backend_options={"port": port}) as t:
            metrics.counter("rounds").add(round_)
            text = scrape(t.exporter("prometheus", "metrics").url)
            # A fresh provider each time: the second round sees 2, not 1 + 2.
            assert sample(text, "rounds_total") == round_
    with pytest.raises(OSError):
        scrape(f"http://127.0.0.1:{port}/metrics")


def test_busy_port_is_a_config_error() -> None:
    port = free_port()
    with sfumato.configure(None, backend="prometheus", backend_options={"port": port}):
        from sfumato.plugins.prometheus import PrometheusOptions, _reader

        with pytest.raises(ConfigError, match=f"127.0.0.1:{port}"):
            _reader(PrometheusOptions(port=port))  # the running one holds the port


def test_port_zero_picks_a_free_port() -> None:
    with sfumato.configure(None, backend="prometheus", backend_options={"port": 0}) as t:
        endpoint = t.exporter("prometheus", "metrics")
        assert endpoint.port > 0
        metrics.gauge("picked.port").set(endpoint.port)
        assert sample(scrape(endpoint.url), "picked_port") == endpoint.port


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_wildcard_bind_warns(host: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="sfumato")
    try:
        telemetry = sfumato.configure(
            None,
            backend="none",
            exporters=[{"type": "prometheus", "host": host, "port": 0}],
            logs={"enabled": False},
        )
    except ConfigError as exc:
        # A host without IPv6 cannot bind "::": configure() says so, naming the address,
        # and the warning was given before the bind all the same.
        assert host == "::", exc
        assert "cannot serve Prometheus metrics on :::0" in str(exc)
    else:
        with telemetry:
            assert any("reachable from other hosts" in n for n in telemetry.notices)
    assert any("reachable from other hosts" in r.getMessage() for r in caplog.records)


def test_loopback_bind_does_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="sfumato")
    with sfumato.configure(None, backend="prometheus", backend_options={"port": 0}) as t:
        assert not any("reachable" in n for n in t.notices)
    assert not any("reachable" in r.getMessage() for r in caplog.records)


def test_prometheus_exporter_takes_metrics_only() -> None:
    with pytest.raises(ConfigError, match="cannot take traces"):
        sfumato.load_settings(
            None, env={}, exporters=[{"type": "prometheus", "signals": ["traces"]}]
        )


class _FailsToBuild:
    """An exporter plugin whose create() raises, built after the Prometheus endpoint."""

    signals = frozenset({"metrics"})

    def create(self, signal: str, options: object, context: object) -> object:
        raise RuntimeError("cannot build")


def test_failed_configure_frees_the_port() -> None:
    port = free_port()
    with pytest.raises(ConfigError, match="cannot build"):
        sfumato.configure(
            None,
            backend="prometheus",
            backend_options={"port": port},
            exporters=[{"type": f"{__name__}:_FailsToBuild"}],
        )
    assert sfumato.active() is None
    with pytest.raises(OSError):
        scrape(f"http://127.0.0.1:{port}/metrics")
    # The port is free again: a new configure can serve on it.
    with sfumato.configure(None, backend="prometheus", backend_options={"port": port}) as t:
        assert scrape(t.exporter("prometheus", "metrics").url) is not None
