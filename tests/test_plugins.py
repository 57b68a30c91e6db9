"""The plugin host: lazy loading by entry point, errors that name the plugin's distribution,
``module:attr`` references, OpenTelemetry's own entry-point groups, disabling, and hooks.

A fake distribution (a ``*.dist-info`` with ``entry_points.txt``, and its modules) is written
into a temporary directory put on ``sys.path``: it is found exactly as an installed one.
"""

from __future__ import annotations

import http.server
import os
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import sfumato
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sfumato._host import PluginHost

DIST, VERSION = "fakeplug", "1.2.3"
MODULES = ("fakeplug_backend", "fakeplug_broken", "fakeplug_unused", "fakeplug_hooks")

ENTRY_POINTS = """\
[sfumato.backends]
fake-memory = fakeplug_backend:MemoryOnly

[sfumato.exporters]
fake-broken = fakeplug_broken:Exporter
fake-unused = fakeplug_unused:Exporter
fake-failing = fakeplug_backend:FailingExporter

[sfumato.samplers]
fake-broken-sampler = fakeplug_broken:Sampler
fake-failing-sampler = fakeplug_backend:FailingSampler

[sfumato.plugins]
fake-hooks = fakeplug_hooks:Hooks
"""

BACKEND_MODULE = '''
from typing import Any, ClassVar

from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON
from pydantic import BaseModel, ConfigDict

from sfumato.plugin import Backend, Exporter, ExporterUse, SamplerPlugin


class MemoryOnly(Backend):
    """Spans to the in-memory exporter, nothing else."""

    def plan(self, settings, options, context):
        return [ExporterUse("memory", frozenset({"traces"}))]


class FailingExporter(Exporter):
    def create(self, signal, options, context):
        raise RuntimeError("no credentials for the fake service")


class FailingSampler(SamplerPlugin):
    def build(self, options, context):
        raise RuntimeError("the fake sampler cannot build")


class Samplers:
    class Switch(SamplerPlugin):
        """Reached by a dotted attribute path: fakeplug_backend:Samplers.Switch."""

        class Options(BaseModel):
            model_config = ConfigDict(extra="forbid")
            on: bool

        def build(self, options, context):
            return ALWAYS_ON if options.on else ALWAYS_OFF
'''

HOOKS_MODULE = """
import sfumato

CALLS = []


class Hooks:
    @sfumato.hookimpl
    def sfumato_resource_attributes(self, settings):
        CALLS.append("resource_attributes")
        return {"fake.hooked": settings.service_name + "-hooked"}

    @sfumato.hookimpl
    def sfumato_configured(self, telemetry):
        CALLS.append(("configured", telemetry))

    @sfumato.hookimpl
    def sfumato_shutdown(self, telemetry):
        CALLS.append(("shutdown", telemetry))
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
def fake_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fake installed distribution ``fakeplug 1.2.3`` on sys.path."""
    site = tmp_path / "site"
    info = site / f"{DIST}-{VERSION}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {DIST}\nVersion: {VERSION}\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    (site / "fakeplug_backend.py").write_text(BACKEND_MODULE)
    (site / "fakeplug_hooks.py").write_text(HOOKS_MODULE)
    (site / "fakeplug_broken.py").write_text(
        'raise ImportError("fakeplug_broken needs libfake, which is not installed")\n'
    )
    (site / "fakeplug_unused.py").write_text('raise RuntimeError("must never be imported")\n')
    monkeypatch.syspath_prepend(str(site))
    yield site
    for module in MODULES:
        sys.modules.pop(module, None)


def _config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "app.toml"
    path.write_text(textwrap.dedent(body))
    return path


# -- discovery and lazy loading ------------------------------------------------------------------


def test_discovery_lists_plugins_with_their_distribution_without_importing(
    fake_dist: Path,
) -> None:
    host = PluginHost()
    exporters = {p.name: p for p in host.discover("exporter")}
    assert exporters["fake-broken"].distribution == DIST
    assert exporters["fake-broken"].version == VERSION
    assert exporters["fake-unused"].value == "fakeplug_unused:Exporter"
    assert "fake-memory" in host.names("backend")
    assert "memory" in host.names("exporter")  # sfumato's own, found the same way
    assert not {"fakeplug_broken", "fakeplug_unused"} & set(sys.modules)


def test_only_the_configured_plugins_are_imported(fake_dist: Path, tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        """
        [telemetry]
        service_name = "lazy"
        backend = "fake-memory"
        [telemetry.metrics]
        enabled = false
        """,
    )
    with sfumato.configure(config) as telemetry:
        with telemetry.tracer().start_as_current_span("through the fake backend"):
            pass
        spans = telemetry.exporter("memory", "traces").get_finished_spans()
        assert [s.name for s in spans] == ["through the fake backend"]
    assert "fakeplug_backend" in sys.modules
    # Installed beside it, broken or not, and never imported.
    assert "fakeplug_broken" not in sys.modules
    assert "fakeplug_unused" not in sys.modules


@pytest.mark.parametrize(
    ("table", "kind", "name"),
    [
        ('[[telemetry.exporters]]\ntype = "fake-broken"', "exporter", "fake-broken"),
        ('[telemetry.sampler]\ntype = "fake-broken-sampler"', "sampler", "fake-broken-sampler"),
    ],
)
def test_a_named_plugin_that_fails_to_import_names_plugin_distribution_and_version(
    fake_dist: Path, tmp_path: Path, table: str, kind: str, name: str
) -> None:
    config = _config(tmp_path, f'[telemetry]\nbackend = "stdout"\n{table}\n')
    with pytest.raises(sfumato.ConfigError) as caught:
        sfumato.load_settings(config)
    message = str(caught.value)
    assert f"{kind} plugin '{name}'" in message
    assert f"({DIST} {VERSION})" in message
    assert "failed to import" in message
    assert "libfake" in message  # the plugin's own reason
    assert str(config) in message
    assert "\n" not in message


def test_a_plugin_that_fails_to_build_names_its_distribution(
    fake_dist: Path, tmp_path: Path
) -> None:
    config = _config(
        tmp_path,
        """
        [telemetry]
        backend = "stdout"
        [[telemetry.exporters]]
        type = "fake-failing"
        signals = ["traces"]
        """,
    )
    sfumato.load_settings(config)  # it loads and validates: the failure is at build time
    with pytest.raises(sfumato.ConfigError) as caught:
        sfumato.configure(config)
    message = str(caught.value)
    assert "exporter 'fake-failing'" in message
    assert f"({DIST} {VERSION})" in message
    assert "no credentials for the fake service" in message
    assert sfumato.active() is None


def test_a_sampler_that_fails_to_build_names_its_distribution(
    fake_dist: Path, tmp_path: Path
) -> None:
    config = _config(tmp_path, '[telemetry]\n[telemetry.sampler]\ntype = "fake-failing-sampler"\n')
    with pytest.raises(sfumato.ConfigError) as caught:
        sfumato.configure(config)
    assert "sampler 'fake-failing-sampler'" in str(caught.value)
    assert f"({DIST} {VERSION})" in str(caught.value)


def test_unknown_name_lists_installed_plugins_with_a_suggestion(
    fake_dist: Path, tmp_path: Path
) -> None:
    config = _config(tmp_path, '[telemetry]\nbackend = "fake-memroy"\n')
    with pytest.raises(sfumato.ConfigError) as caught:
        sfumato.load_settings(config)
    message = str(caught.value)
    assert "fake-memory" in message
    assert "telemetry.backend" in message
    assert "fakeplug_broken" not in sys.modules


# -- module:attr references --------------------------------------------------------------------


def test_sampler_by_dotted_import_path(fake_dist: Path) -> None:
    for on in (True, False):
        with sfumato.configure(
            backend="stdout",
            exporters=[{"type": "memory"}],
            export_console=False,
            sampler={"type": "fakeplug_backend:Samplers.Switch", "on": on},
            metrics={"enabled": False},
            logs={"enabled": False},
        ) as telemetry:
            with telemetry.tracer().start_as_current_span("maybe"):
                pass
            kept = telemetry.exporter("memory", "traces").get_finished_spans()
            assert len(kept) == (1 if on else 0)


def test_import_path_options_are_validated_by_the_plugin_model(fake_dist: Path) -> None:
    with pytest.raises(sfumato.ConfigError, match=r"telemetry\.sampler\.on"):
        sfumato.load_settings(sampler={"type": "fakeplug_backend:Samplers.Switch", "on": "maybe"})


def test_opentelemetry_sampler_class_by_import_path() -> None:
    for rate, expected in ((1.0, 5), (0.0, 0)):
        with sfumato.configure(
            backend="stdout",
            exporters=[{"type": "memory"}],
            sampler={"type": "opentelemetry.sdk.trace.sampling:TraceIdRatioBased", "rate": rate},
            metrics={"enabled": False},
            logs={"enabled": False},
        ) as telemetry:
            for _ in range(5):
                with telemetry.tracer().start_as_current_span("ratio"):
                    pass
            assert len(telemetry.exporter("memory", "traces").get_finished_spans()) == expected


def test_opentelemetry_exporter_class_by_import_path() -> None:
    path = "opentelemetry.sdk.trace.export.in_memory_span_exporter:InMemorySpanExporter"
    with sfumato.configure(
        backend="stdout",
        exporters=[{"type": path}],
        metrics={"enabled": False},
        logs={"enabled": False},
    ) as telemetry:
        exporter = telemetry.exporter(path, "traces")
        assert isinstance(exporter, InMemorySpanExporter)
        with telemetry.tracer().start_as_current_span("batched"):
            pass
        assert telemetry.force_flush(5.0)
        assert [s.name for s in exporter.get_finished_spans()] == ["batched"]


@pytest.mark.parametrize(
    ("sampler", "message"),
    [
        ({"type": "no_such_module_xyz:Sampler"}, "cannot load sampler"),
        ({"type": "opentelemetry.sdk.trace.sampling:NoSuchThing"}, "NoSuchThing"),
        ({"type": "json:dumps"}, "not a sampler plugin"),
    ],
)
def test_bad_import_paths_are_config_errors(sampler: dict[str, Any], message: str) -> None:
    with pytest.raises(sfumato.ConfigError, match=message):
        sfumato.load_settings(sampler=sampler)


def test_import_paths_can_be_switched_off() -> None:
    with pytest.raises(sfumato.ConfigError, match="allow_import_paths"):
        sfumato.load_settings(
            sampler={"type": "opentelemetry.sdk.trace.sampling:TraceIdRatioBased", "rate": 1.0},
            plugins={"allow_import_paths": False},
        )


def test_a_backend_cannot_be_an_import_path() -> None:
    with pytest.raises(sfumato.ConfigError, match="entry point"):
        sfumato.load_settings(backend="sfumato.backends.stdout:StdoutBackend")


# -- OpenTelemetry's own entry-point groups --------------------------------------------------


def test_opentelemetry_sampler_group_names_are_usable() -> None:
    for arg, expected in ((1.0, 4), (0.0, 0)):
        with sfumato.configure(
            backend="stdout",
            exporters=[{"type": "memory"}],
            sampler={"type": "traceidratio", "arg": arg},
            metrics={"enabled": False},
            logs={"enabled": False},
        ) as telemetry:
            for _ in range(4):
                with telemetry.tracer().start_as_current_span("sdk sampler"):
                    pass
            assert len(telemetry.exporter("memory", "traces").get_finished_spans()) == expected


class _Collector(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_opentelemetry_exporter_group_names_are_usable() -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    _Collector.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    try:
        with sfumato.configure(
            backend="stdout",
            exporters=[{"type": "otlp_proto_http", "signals": ["traces"], "endpoint": endpoint}],
            metrics={"enabled": False},
            logs={"enabled": False},
        ) as telemetry:
            exporter = telemetry.exporter("otlp_proto_http", "traces")
            assert isinstance(exporter, OTLPSpanExporter)
            with telemetry.tracer().start_as_current_span("over-otlp-http"):
                pass
            assert telemetry.force_flush(5.0)
            assert telemetry.stats()["traces.exported"] >= 1
    finally:
        server.shutdown()
        server.server_close()
    paths = [path for path, _ in _Collector.received]
    assert "/v1/traces" in paths
    assert any(b"over-otlp-http" in body for _, body in _Collector.received)


# -- disabling ------------------------------------------------------------------------------------


def test_plugins_disabled_in_config(fake_dist: Path, tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        """
        [telemetry]
        backend = "fake-memory"
        [telemetry.plugins]
        disable = ["fake-memory"]
        """,
    )
    with pytest.raises(sfumato.ConfigError) as caught:
        sfumato.load_settings(config)
    assert "'fake-memory' is disabled" in str(caught.value)
    assert "fakeplug_backend" not in sys.modules


def test_plugins_disabled_by_environment(fake_dist: Path) -> None:
    env = {"SFUMATO_DISABLE_PLUGINS": "exporter:memory, fake-unused"}
    with pytest.raises(sfumato.ConfigError, match="'memory' is disabled") as caught:
        sfumato.load_settings(env=env, exporters=[{"type": "memory"}])
    assert "SFUMATO_DISABLE_PLUGINS" in str(caught.value)
    # Without a reference to a disabled plugin, the same environment loads.
    settings = sfumato.load_settings(env=env, backend="stdout")
    assert settings.plugins.disable == ["exporter:memory", "fake-unused"]
    assert "fakeplug_unused" not in sys.modules


def test_disabled_plugins_are_marked_in_discovery(fake_dist: Path) -> None:
    host = PluginHost(disabled=["fake-unused", "backend:fake-memory"])
    exporters = {p.name: p.disabled for p in host.discover("exporter")}
    assert exporters["fake-unused"] is True
    assert exporters["fake-broken"] is False
    assert {p.name: p.disabled for p in host.discover("backend")}["fake-memory"] is True
    assert "fake-unused" not in host.names("exporter")


# -- hooks ----------------------------------------------------------------------------------------


def test_hook_only_plugin_is_called(fake_dist: Path) -> None:
    telemetry = sfumato.configure(
        service_name="svc", backend="stdout", exporters=[{"type": "memory"}],
        metrics={"enabled": False}, logs={"enabled": False},
    )  # fmt: skip
    import fakeplug_hooks  # type: ignore[import-not-found]

    with telemetry.tracer().start_as_current_span("hooked"):
        pass
    span = telemetry.exporter("memory", "traces").get_finished_spans()[0]
    assert span.resource.attributes["fake.hooked"] == "svc-hooked"
    assert ["resource_attributes", ("configured", telemetry)] == fakeplug_hooks.CALLS
    telemetry.shutdown()
    assert fakeplug_hooks.CALLS[-1] == ("shutdown", telemetry)


def test_config_resource_wins_over_a_hook(fake_dist: Path) -> None:
    with sfumato.configure(
        backend="stdout", exporters=[{"type": "memory"}], resource={"fake.hooked": "mine"},
        metrics={"enabled": False}, logs={"enabled": False},
    ) as telemetry:  # fmt: skip
        with telemetry.tracer().start_as_current_span("x"):
            pass
        span = telemetry.exporter("memory", "traces").get_finished_spans()[0]
    assert span.resource.attributes["fake.hooked"] == "mine"


def test_disabled_hook_plugin_is_not_imported(fake_dist: Path) -> None:
    with sfumato.configure(
        backend="stdout", exporters=[{"type": "memory"}], plugins={"disable": ["fake-hooks"]},
        metrics={"enabled": False}, logs={"enabled": False},
    ) as telemetry:  # fmt: skip
        with telemetry.tracer().start_as_current_span("x"):
            pass
        span = telemetry.exporter("memory", "traces").get_finished_spans()[0]
    assert "fake.hooked" not in span.resource.attributes
    assert "fakeplug_hooks" not in sys.modules
