"""The example backend, driven through sfumato as a user would (needs it pip-installed)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import sfumato


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_spans_and_logs_are_written_as_json_lines(tmp_path: Path) -> None:
    out = tmp_path / "telemetry.jsonl"
    with sfumato.configure(
        service_name="example-test", backend="example", backend_options={"path": str(out)}
    ) as telemetry:
        with telemetry.tracer().start_as_current_span("work", attributes={"n": 3}) as span:
            logging.getLogger("example.app").warning("inside work")
        assert telemetry.force_flush(5.0)
    lines = _lines(out)
    spans = [line for line in lines if line["kind"] == "span"]
    logs = [line for line in lines if line["kind"] == "log"]
    trace_id = f"{span.get_span_context().trace_id:032x}"
    assert len(spans) == 1
    written = spans[0]
    assert written["name"] == "work"
    assert written["trace_id"] == trace_id
    assert written["span_id"] == f"{span.get_span_context().span_id:016x}"
    assert written["service"] == "example-test"
    assert isinstance(written["attributes"], dict) and written["attributes"]["n"] == 3
    assert [(log["body"], log["trace_id"]) for log in logs] == [("inside work", trace_id)]


def test_metrics_are_switched_off_with_a_notice(tmp_path: Path) -> None:
    out = tmp_path / "t.jsonl"
    with sfumato.configure(backend="example", backend_options={"path": str(out)}) as telemetry:
        assert any("metrics switched off" in notice for notice in telemetry.notices)


def test_options_are_validated_by_the_plugin_model() -> None:
    with pytest.raises(sfumato.ConfigError, match=r"telemetry\.backend_options\.path"):
        sfumato.load_settings(backend="example", backend_options={})
    with pytest.raises(sfumato.ConfigError, match="pth"):
        sfumato.load_settings(backend="example", backend_options={"path": "x", "pth": "y"})


def test_a_directory_is_an_error_at_the_option(tmp_path: Path) -> None:
    config = tmp_path / "app.toml"
    config.write_text(
        '[telemetry]\nbackend = "example"\n\n'
        f"[telemetry.backend_options]\npath = '{tmp_path}'\n"  # line 5: path = ...
    )
    with pytest.raises(sfumato.ConfigError) as caught:
        sfumato.load_settings(config)
    assert str(caught.value) == (
        f"{config}:5:1: telemetry.backend_options.path: "
        f"{str(tmp_path)!r} is a directory; expected a file to append to"
    )
