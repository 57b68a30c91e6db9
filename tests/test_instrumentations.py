"""``[telemetry.instrumentations]``: libraries instrumented by name, for real.

A FastAPI application served by uvicorn on loopback and called with ``requests``, both
instrumented from the configuration alone: the client span is a child of sfumato's own span,
the server span a child of the client span (the trace crosses the process boundary over HTTP
headers), and the sampler's decision applies to all of them. Then what the configuration can
get wrong: an unknown name, a library that is missing, a value of the wrong type; and the lifecycle:
uninstrumented on shutdown, never instrumented twice.
"""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import sfumato
from instrumented import configure as _configure
from instrumented import serving
from instrumented import spans as _spans
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from sfumato import ConfigError
from sfumato._instrumentations import installed, mismatched


@pytest.fixture
def server() -> Iterator[str]:
    with serving() as url:
        yield url


def _clients(telemetry: Any) -> list[Any]:
    """The client spans (the server's FastAPI also makes spans of its own, natively)."""
    return [s for s in _spans(telemetry) if s.kind.name == "CLIENT"]


def test_a_web_framework_and_an_http_client_instrumented_from_the_configuration() -> None:
    telemetry = _configure(requests=True, fastapi=True)
    try:
        tracer = telemetry.tracer("app")
        with serving() as url, tracer.start_as_current_span("narrative reference") as root:
            assert requests.get(f"{url}/hello", timeout=5).json() == "hello"
        spans = _spans(telemetry)
        assert telemetry.instrumented == {"requests": "instrumented", "fastapi": "instrumented"}
    finally:
        telemetry.shutdown()
    by_kind: dict[str, list[Any]] = {}
    for span in spans:
        by_kind.setdefault(span.kind.name, []).append(span)
    (client,) = by_kind["CLIENT"]
    (served,) = by_kind["SERVER"]
    trace_id = root.get_span_context().trace_id
    assert {s.context.trace_id for s in spans} == {trace_id}
    assert client.parent.span_id == root.get_span_context().span_id
    assert served.parent.span_id == client.context.span_id  # across the HTTP boundary
    assert served.name == "GET /hello"
    # The status under the stable name or the old one (OTEL_SEMCONV_STABILITY_OPT_IN).
    attributes = client.attributes
    assert 200 in (attributes.get("http.response.status_code"), attributes.get("http.status_code"))
    assert telemetry.instrumented == {}  # shut down: uninstrumented


def test_the_sampler_decides_for_instrumented_spans_too(server: str) -> None:
    telemetry = _configure(sampler={"type": "always_off"}, requests=True)
    try:
        with telemetry.tracer("app").start_as_current_span("dropped"):
            requests.get(f"{server}/hello", timeout=5)
        requests.get(f"{server}/hello", timeout=5)  # a root of its own: dropped too
        assert _spans(telemetry) == []
        assert telemetry.instrumented == {"requests": "instrumented"}
    finally:
        telemetry.shutdown()


def test_shutdown_uninstruments_and_a_new_configure_instruments_again(server: str) -> None:
    telemetry = _configure(requests=True)
    requests.get(f"{server}/hello", timeout=5)
    assert len(_clients(telemetry)) == 1
    telemetry.shutdown()
    assert not RequestsInstrumentor().is_instrumented_by_opentelemetry
    again = _configure(requests=True)
    try:
        requests.get(f"{server}/hello", timeout=5)
        assert len(_clients(again)) == 1
    finally:
        again.shutdown()


def test_a_library_instrumented_already_is_left_as_it_is(server: str) -> None:
    instrumentor = RequestsInstrumentor()
    instrumentor.instrument()
    try:
        telemetry = _configure(requests=True)
        assert telemetry.instrumented == {"requests": "already instrumented"}
        telemetry.shutdown()
        # Not ours to undo.
        assert instrumentor.is_instrumented_by_opentelemetry
    finally:
        instrumentor.uninstrument()


def test_an_unknown_name_gets_a_did_you_mean_and_the_package_to_install() -> None:
    with pytest.raises(ConfigError) as caught:
        _configure(reqests=True)
    message = str(caught.value)
    assert "did you mean 'requests'?" in message
    assert "telemetry.instrumentations.reqests" in message
    with pytest.raises(ConfigError) as caught:
        _configure(nosuchlibrary=True)
    assert "pip install opentelemetry-instrumentation-nosuchlibrary" in str(caught.value)


def test_a_value_that_is_neither_a_switch_nor_options_is_refused() -> None:
    with pytest.raises(ConfigError, match="expected true, false or a table"):
        _configure(requests="yes")
    with pytest.raises(ConfigError, match='"\\*" takes true or false'):
        _configure(**{"*": "all"})


def _fake_instrumentation(
    root: Path, name: str, requires: list[str], module_body: str = ""
) -> None:
    """An installed instrumentation package (its metadata and its module) under ``root``."""
    package = f"fake_instrumentation_{name}"
    (root / f"{package}.py").write_text(
        textwrap.dedent(
            """
            from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

            class Instrumentor(BaseInstrumentor):
                def instrumentation_dependencies(self):
                    return []

                def _instrument(self, **kwargs):
                    type(self).given = kwargs

                def _uninstrument(self, **kwargs):
                    pass
            """
        )
        + module_body
    )
    info = root / f"opentelemetry_instrumentation_{name}-1.0.dist-info"
    info.mkdir()
    lines = [
        "Metadata-Version: 2.1",
        f"Name: opentelemetry-instrumentation-{name}",
        "Version: 1.0",
        "Provides-Extra: instruments",
    ] + [f"Requires-Dist: {r}" for r in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n")
    (info / "entry_points.txt").write_text(
        f"[opentelemetry_instrumentor]\n{name} = {package}:Instrumentor\n"
    )


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Path]:
    sys.path.insert(0, str(tmp_path))
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        for module in [m for m in sys.modules if m.startswith("fake_instrumentation_")]:
            del sys.modules[module]


def test_an_instrumentation_whose_library_is_missing_is_one_clear_error(site: Path) -> None:
    _fake_instrumentation(site, "gadget", ["no-such-gadget-library >= 2; extra == 'instruments'"])
    assert "gadget" in installed()
    with pytest.raises(ConfigError) as caught:
        _configure(gadget=True)
    message = str(caught.value)
    assert "instrumentation 'gadget'" in message
    assert "no-such-gadget-library" in message
    assert "telemetry.instrumentations.gadget" in message
    # From "*" it is skipped with a notice instead: the others still run.
    telemetry = _configure(**{"*": True, "fastapi": False})
    try:
        assert "gadget" not in telemetry.instrumented
        assert any("'gadget' skipped" in notice for notice in telemetry.notices)
        assert telemetry.instrumented.get("requests") == "instrumented"
        assert "fastapi" not in telemetry.instrumented
    finally:
        telemetry.shutdown()


def test_options_reach_the_instrumentor_with_sfumatos_providers(site: Path) -> None:
    _fake_instrumentation(site, "widget", [])
    telemetry = sfumato.configure(
        None,
        service_name="instrumented",
        backend="none",
        exporters=[{"type": "memory"}],
        metrics={"enabled": True},
        instrumentations={"widget": {"excluded_urls": "/health"}},
    )
    try:
        import fake_instrumentation_widget as module

        given = module.Instrumentor.given
        assert given["excluded_urls"] == "/health"
        assert given["tracer_provider"] is telemetry.tracer_provider
        assert given["meter_provider"] is telemetry.meter_provider
    finally:
        telemetry.shutdown()


def test_an_instrumentor_that_raises_is_reported_and_telemetry_runs(site: Path) -> None:
    _fake_instrumentation(
        site,
        "broken",
        [],
        "\nInstrumentor._instrument = lambda self, **kw: 1 / 0\n",
    )
    telemetry = _configure(broken=True)
    try:
        assert telemetry.instrumented["broken"].startswith("failed: ZeroDivisionError")
        with telemetry.tracer("app").start_as_current_span("still traced"):
            pass
        assert [s.name for s in _spans(telemetry)] == ["still traced"]
    finally:
        telemetry.shutdown()


def test_doctor_names_a_package_pinned_to_another_opentelemetry_release(site: Path) -> None:
    _fake_instrumentation(site, "pinned", ["opentelemetry-api == 0.1"])
    found = [m for m in mismatched() if m[0].startswith("opentelemetry-instrumentation-pinned")]
    assert len(found) == 1
    _, requires, fix = found[0]
    assert "opentelemetry-api==0.1" in requires.replace(" ", "")
    assert fix.startswith('pip install "opentelemetry-instrumentation-pinned==')


def test_instrumented_libraries_keep_working_in_a_forked_child(server: str) -> None:
    telemetry = _configure(requests=True)
    try:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                requests.get(f"{server}/hello", timeout=5)
                child = sfumato.active()
                code = 0 if child is not None and len(_clients(child)) == 1 else 3
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        telemetry.shutdown()


def test_the_command_line_lists_installed_and_active_instrumentations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from sfumato.cli import main

    config = tmp_path / "app.toml"
    config.write_text(
        '[telemetry]\nservice_name = "x"\nbackend = "none"\n\n'
        "[telemetry.instrumentations]\nrequests = true\n"
    )
    assert main(["plugins", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    listed = {r["name"]: r for r in rows if r["kind"] == "instrumentation"}
    assert listed["requests"]["status"] == "ready"
    assert listed["requests"]["distribution"] == "opentelemetry-instrumentation-requests"
    assert main(["show", str(config)]) == 0
    shown = capsys.readouterr().out
    assert "# instrumentations\n  requests (opentelemetry-instrumentation-requests" in shown
    assert main(["doctor", str(config)]) == 0
    assert "ok    instrumentation requests" in capsys.readouterr().out
    (tmp_path / "bad.toml").write_text(
        '[telemetry]\nservice_name = "x"\n\n[telemetry.instrumentations]\nreqests = true\n'
    )
    assert main(["validate", str(tmp_path / "bad.toml")]) != 0
    assert "did you mean 'requests'?" in capsys.readouterr().err
