"""The deployment hooks: through sfumato as a user would (needs the plugin installed), then
each hook on its own, without configure()."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import sfumato
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import StatusCode
from sfumato_hook_example import DeploymentHooks


@pytest.fixture(autouse=True)
def deployment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOYMENT_ID", "2024-06-01.3")
    monkeypatch.setenv("GIT_COMMIT", "4f2a9c1")


def _configure(**settings: Any) -> sfumato.Telemetry:
    return sfumato.configure(
        service_name="shop",
        backend="none",
        exporters=[{"type": "memory", "signals": ["traces"]}],
        metrics={"enabled": False},
        logs={"enabled": False},
        **settings,
    )


def _resource_of_a_span(**settings: Any) -> dict[str, object]:
    with _configure(**settings) as telemetry:
        telemetry.tracer().start_span("work").end()
        (span,) = telemetry.exporter("memory", "traces").get_finished_spans()
    return dict(span.resource.attributes)


def test_the_deployment_is_on_every_span() -> None:
    resource = _resource_of_a_span()
    assert resource["deployment.id"] == "2024-06-01.3"
    assert resource["vcs.ref.head.revision"] == "4f2a9c1"
    assert resource["service.name"] == "shop"


def test_the_config_resource_table_wins() -> None:
    assert _resource_of_a_span(resource={"deployment.id": "pinned"})["deployment.id"] == "pinned"


def test_a_disabled_plugin_adds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SFUMATO_DISABLE_PLUGINS", "deployment")
    assert "deployment.id" not in _resource_of_a_span()


def test_spans_are_counted_and_logged_at_shutdown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sfumato_hook_example")
    with _configure() as telemetry:
        tracer = telemetry.tracer()
        tracer.start_span("ok").end()
        with tracer.start_as_current_span("fails") as span:
            span.set_status(StatusCode.ERROR)
    assert "shop ended 2 spans, 1 with an error" in caplog.text


def test_each_hook_on_its_own() -> None:
    # A hook is a plain method: call it with the keyword arguments sfumato would pass.
    hooks = DeploymentHooks()
    assert hooks.sfumato_resource_attributes() == {
        "deployment.id": "2024-06-01.3",
        "vcs.ref.head.revision": "4f2a9c1",
    }
    (counter,) = hooks.sfumato_span_processors()
    provider = TracerProvider()  # the SDK's own, not installed globally
    provider.add_span_processor(counter)
    tracer = provider.get_tracer("test")
    tracer.start_span("ok").end()
    with tracer.start_as_current_span("fails") as span:
        span.set_status(StatusCode.ERROR)
    assert (hooks.counter.ended, hooks.counter.errors) == (2, 1)
