"""Plugin faults: a plugin that raises at import, in a hook, or at run time (``should_sample``,
``export``, ``on_start`` / ``on_end``) is isolated, counted and logged once, and the
application is unaffected; ``SFUMATO_STRICT=1`` turns each into an error.

A named plugin (the backend, an exporter or a sampler the config asks for) that fails to
import or build is a configuration error in both modes: tests/test_plugins.py covers those.
"""

from __future__ import annotations

import logging
import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sfumato

DIST = "faultyplug"
MODULES = ("faultyplug_broken", "faultyplug_hooks", "faultyplug_run")

ENTRY_POINTS = """\
[sfumato.plugins]
faulty-import = faultyplug_broken:Hooks
faulty-hooks = faultyplug_hooks:Hooks
"""

HOOKS = """
import sfumato
from opentelemetry.sdk.trace import SpanProcessor


class RaisingProcessor(SpanProcessor):
    def __init__(self):
        self.ended = 0

    def on_start(self, span, parent_context=None):
        if span.name == "bad-start":
            raise RuntimeError("on_start bug")

    def on_end(self, span):
        self.ended += 1
        raise RuntimeError("on_end bug")


PROCESSOR = RaisingProcessor()


class Hooks:
    @sfumato.hookimpl
    def sfumato_resource_attributes(self, settings):
        raise KeyError("resource hook bug")

    @sfumato.hookimpl
    def sfumato_span_processors(self, settings):
        return [PROCESSOR]

    @sfumato.hookimpl
    def sfumato_configured(self, telemetry):
        raise ValueError("configured hook bug")
"""

RUN = """
from sfumato.plugin import Exporter


class RaisingSpanExporter:
    calls = 0

    def export(self, batch):
        RaisingSpanExporter.calls += 1
        raise ConnectionError("export bug")

    def shutdown(self):
        pass


class RaisingExporter(Exporter):
    def create(self, signal, options, context):
        return RaisingSpanExporter()
"""


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("SFUMATO_", "OTEL_")):
            monkeypatch.delenv(name)
    yield
    running = sfumato.active()
    if running is not None:
        running.shutdown(timeout=1.0)


@pytest.fixture
def faulty_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    site = tmp_path / "site"
    info = site / f"{DIST}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {DIST}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    (site / "faultyplug_broken.py").write_text('raise ImportError("needs libmissing")\n')
    (site / "faultyplug_hooks.py").write_text(textwrap.dedent(HOOKS))
    (site / "faultyplug_run.py").write_text(textwrap.dedent(RUN))
    monkeypatch.syspath_prepend(str(site))
    yield site
    for module in MODULES:
        sys.modules.pop(module, None)


def _configure(**overrides: Any) -> sfumato.Telemetry:
    settings: dict[str, Any] = {
        "service_name": "faulty",
        "backend": "none",
        "exporters": [{"type": "memory"}],
        "metrics": {"enabled": False},
        "logs": {"enabled": False},
    }
    settings.update(overrides)
    return sfumato.configure(**settings)


def _warnings(caplog: pytest.LogCaptureFixture, fragment: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if fragment in r.getMessage()]


def test_hook_plugins_that_fail_at_import_or_in_hooks_are_isolated(
    faulty_dist: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sfumato")
    with _configure() as telemetry:
        tracer = telemetry.tracer()
        for _ in range(25):
            with tracer.start_as_current_span("work"):
                pass
        with tracer.start_as_current_span("bad-start"):
            pass
        stats = telemetry.stats()
        spans = telemetry.exporter("memory", "traces").get_finished_spans()
    import faultyplug_hooks  # type: ignore[import-not-found]

    # The application saw nothing: every span made it to sfumato's own exporter.
    assert len(spans) == 26
    assert spans[0].resource.attributes["service.name"] == "faulty"
    # The raising processor was still called for every span (isolated, not removed).
    assert faultyplug_hooks.PROCESSOR.ended == 26
    assert stats["plugins.faulty-import.errors"] == 1  # import
    assert stats["plugins.faulty-hooks.errors"] == 2  # resource and configured hooks
    assert stats["plugins.RaisingProcessor.errors"] == 26 + 1  # on_end x26, on_start x1
    assert stats["plugins.errors"] == 1 + 2 + 27
    # Logged once per failing plugin and place, not once per span.
    assert len(_warnings(caplog, "'faulty-import'")) == 1
    assert len(_warnings(caplog, "'RaisingProcessor'")) == 1
    assert len(_warnings(caplog, "'faulty-hooks'")) == 2  # two different hooks


def test_strict_mode_refuses_a_hook_plugin_that_fails_to_import(
    faulty_dist: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SFUMATO_STRICT", "1")
    with pytest.raises(sfumato.ConfigError, match=r"faulty-import.*libmissing"):
        _configure()
    assert sfumato.active() is None


def test_strict_mode_refuses_a_raising_hook(
    faulty_dist: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SFUMATO_STRICT", "1")
    with pytest.raises(sfumato.ConfigError, match=r"faulty-hooks.*resource hook bug"):
        _configure(plugins={"disable": ["faulty-import"]})
    assert sfumato.active() is None


def test_strict_mode_lets_a_processors_exception_reach_the_caller(
    faulty_dist: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    telemetry = _configure(plugins={"disable": ["faulty-import"]})  # lenient at configure
    monkeypatch.setenv("SFUMATO_STRICT", "1")
    with (
        pytest.raises(RuntimeError, match="on_end bug"),
        telemetry.tracer().start_as_current_span("work"),
    ):
        pass
    assert telemetry.stats()["plugins.RaisingProcessor.errors"] == 1


def test_an_exporter_that_raises_in_export_is_counted_and_logged_once(
    faulty_dist: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sfumato")
    telemetry = _configure(
        exporters=[{"type": "faultyplug_run:RaisingExporter", "signals": ["traces"]}],
        plugins={"disable": ["faulty-import", "faulty-hooks"]},
        batch_size=10,
        max_queue_size=100,
        export_retry_ms=0,
    )
    tracer = telemetry.tracer()
    for _ in range(50):
        with tracer.start_as_current_span("work"):
            pass
    # Every span was lost (since the last flush): shutdown says so.
    assert telemetry.shutdown(timeout=5.0) is False
    stats = telemetry.stats()
    assert stats["traces.queued"] == 50
    assert stats["traces.dropped.export_failed"] == 50
    assert stats["traces.exported"] == 0
    assert len(_warnings(caplog, "export through")) == 1


def test_a_raising_sampler_in_strict_mode_raises_to_the_caller(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "raising_sampler.py").write_text(
        textwrap.dedent(
            """
            from opentelemetry.sdk.trace.sampling import Sampler
            from sfumato.plugin import SamplerPlugin

            class _Raising(Sampler):
                def should_sample(self, *args, **kwargs):
                    raise RuntimeError("sampler bug")

                def get_description(self):
                    return "raising"

            class Raising(SamplerPlugin):
                def build(self, options, context):
                    return _Raising()
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        telemetry = _configure(sampler={"type": "raising_sampler:Raising"})
        with telemetry.tracer().start_as_current_span("fine"):
            pass  # lenient: a safe decision
        assert telemetry.stats()["sampler.errors"] == 1
        telemetry.shutdown()

        monkeypatch.setenv("SFUMATO_STRICT", "true")
        telemetry = _configure(sampler={"type": "raising_sampler:Raising"})
        with (
            pytest.raises(RuntimeError, match="sampler bug"),
            telemetry.tracer().start_as_current_span("strict"),
        ):
            pass
        assert telemetry.stats()["sampler.errors"] == 1
        telemetry.shutdown()
    finally:
        sys.modules.pop("raising_sampler", None)
