"""Tracers taken from the global API follow the running pipeline: one taken before
``configure()``, or before a ``shutdown()`` and a new ``configure()``, sends its spans to the
pipeline running now, not to a shut-down one."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import sfumato
from opentelemetry import trace as trace_api


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("SFUMATO_", "OTEL_")):
            monkeypatch.delenv(name)
    running = sfumato.active()
    if running is not None:
        running.shutdown(timeout=1.0)
    yield
    running = sfumato.active()
    if running is not None:
        running.shutdown(timeout=1.0)


def _memory(name: str) -> sfumato.Telemetry:
    return sfumato.configure(
        service_name=name,
        backend="none",
        exporters=[{"type": "memory"}],
        metrics={"enabled": False},
        logs={"enabled": False},
    )


def _names(handle: sfumato.Telemetry) -> list[str]:
    handle.force_flush(5)
    return [span.name for span in handle.exporter("memory").get_finished_spans()]


def _emit(tracer: trace_api.Tracer, name: str, n: int = 100) -> None:
    for _ in range(n):
        with tracer.start_as_current_span(name):
            pass
    tracer.start_span(name + "-plain").end()


def test_a_tracer_taken_before_configure_follows_every_later_configure() -> None:
    early = trace_api.get_tracer("early-module")  # at import time, before configure()
    first = _memory("first")
    _emit(early, "one")
    assert _names(first).count("one") == 100
    first.shutdown()
    second = _memory("second")
    _emit(early, "two")
    got = _names(second)
    assert got.count("two") == 100, got
    assert got.count("two-plain") == 1
    assert "one" not in got


def test_a_tracer_taken_while_configured_follows_a_reconfigure() -> None:
    first = _memory("first")
    tracer = trace_api.get_tracer("module-level", "1.0")
    own = first.tracer("handle-tracer")
    _emit(tracer, "one")
    first.shutdown()
    second = _memory("second")
    _emit(tracer, "two")
    _emit(own, "three", 1)
    third_tracer = trace_api.get_tracer("module-level", "1.0")
    got = _names(second)
    assert got.count("two") == 100, got
    assert got.count("three") == 1, got
    # The spans carry the new pipeline's resource and the tracer's own scope.
    span = second.exporter("memory").get_finished_spans()[0]
    assert span.resource.attributes["service.name"] == "second"
    assert span.instrumentation_scope.name == "module-level"
    assert span.instrumentation_scope.version == "1.0"
    _emit(third_tracer, "four", 1)
    second.shutdown()
    third = _memory("third")
    _emit(tracer, "five", 3)
    got = _names(third)
    assert got.count("five") == 3, got


def test_nested_spans_of_an_old_tracer_stay_one_trace_in_the_new_pipeline() -> None:
    tracer = trace_api.get_tracer("nested")
    first = _memory("first")
    _emit(tracer, "one", 1)
    first.shutdown()
    second = _memory("second")
    with tracer.start_as_current_span("outer") as outer, tracer.start_as_current_span("inner"):
        pass
    second.force_flush(5)
    spans = {s.name: s for s in second.exporter("memory").get_finished_spans()}
    assert spans["inner"].parent.span_id == outer.get_span_context().span_id
    assert spans["inner"].context.trace_id == spans["outer"].context.trace_id


def test_a_tracer_taken_in_the_parent_feeds_a_forked_childs_own_pipeline(tmp_path: Path) -> None:
    # In a fresh interpreter: forking the test runner would copy its threads' state.
    script = tmp_path / "fork.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, signal
            import sfumato
            from opentelemetry import trace
            tracer = trace.get_tracer("module-level")
            handle = sfumato.configure(
                service_name="parent", backend="none", exporters=[{"type": "memory"}],
                metrics={"enabled": False}, logs={"enabled": False},
            )
            with tracer.start_as_current_span("in-parent"):
                pass
            pid = os.fork()
            if pid == 0:
                signal.alarm(10)
                with tracer.start_as_current_span("in-child"):
                    pass
                child = sfumato.active()
                child.force_flush(5)
                names = [s.name for s in child.exporter("memory").get_finished_spans()]
                os._exit(0 if names == ["in-child"] else 1)
            _, status = os.waitpid(pid, 0)
            assert status == 0, status
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SFUMATO_", "OTEL_"))}
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
