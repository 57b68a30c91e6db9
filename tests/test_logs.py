"""Python ``logging`` records exported as OpenTelemetry logs, correlated with the trace."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import sfumato
from sfumato._logging import OtelLogHandler

log = logging.getLogger("app.logs")


@pytest.fixture(autouse=True)
def root_level() -> Iterator[None]:
    root = logging.getLogger()
    before = root.level
    root.setLevel(logging.WARNING)  # what an unconfigured program has
    yield
    root.setLevel(before)


def records(telemetry: sfumato.Telemetry) -> list[Any]:
    assert telemetry.force_flush(5)
    items = telemetry.exporter("memory", "logs").items
    return [getattr(item, "log_record", item) for item in items]


def configure(**overrides: Any) -> sfumato.Telemetry:
    return sfumato.configure(None, backend="none", exporters=[{"type": "memory"}], **overrides)


def test_records_carry_the_active_trace_and_span() -> None:
    with configure() as telemetry:
        log.warning("outside")
        tracer = telemetry.tracer()
        with tracer.start_as_current_span("outer"), tracer.start_as_current_span("inner") as inner:
            log.error("inside %s", "inner")
            context = inner.get_span_context()
        got = records(telemetry)
    assert [r.body for r in got] == ["outside", "inside inner"]
    assert (got[0].trace_id, got[0].span_id) == (0, 0)
    assert (got[1].trace_id, got[1].span_id) == (context.trace_id, context.span_id)
    assert got[1].severity_text == "ERROR"
    assert got[1].attributes["code.function.name"] == "test_records_carry_the_active_trace_and_span"


def test_default_level_info_is_exported_even_when_root_says_warning() -> None:
    with configure() as telemetry:
        assert logging.getLogger().level == logging.INFO
        log.debug("not this")
        log.info("this")
        got = records(telemetry)
    assert [r.body for r in got] == ["this"]
    assert logging.getLogger().level == logging.WARNING  # put back at shutdown


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("DEBUG", ["d", "i", "w", "e"]),
        ("info", ["i", "w", "e"]),
        ("WARNING", ["w", "e"]),
        ("ERROR", ["e"]),
    ],
)
def test_level_from_config(level: str, expected: list[str]) -> None:
    with configure(logs={"level": level}) as telemetry:
        log.debug("d")
        log.info("i")
        log.warning("w")
        log.error("e")
        got = records(telemetry)
    assert [r.body for r in got] == expected


def test_root_level_is_never_raised() -> None:
    logging.getLogger().setLevel(logging.DEBUG)
    with configure(logs={"level": "ERROR"}) as telemetry:
        assert logging.getLogger().level == logging.DEBUG
        log.warning("w")
        log.error("e")
        assert [r.body for r in records(telemetry)] == ["e"]
    assert logging.getLogger().level == logging.DEBUG


def test_extra_fields_and_exceptions() -> None:
    with configure() as telemetry:
        log.warning("with extra", extra={"narrative_id": "n-1", "act": 3, "obj": object()})
        try:
            raise ValueError("broken act")
        except ValueError:
            log.exception("failed")
        got = records(telemetry)
    assert got[0].attributes["narrative_id"] == "n-1"
    assert got[0].attributes["act"] == 3
    assert got[0].attributes["obj"].startswith("<object")
    assert got[1].attributes["exception.type"] == "ValueError"
    assert got[1].attributes["exception.message"] == "broken act"


def test_sfumato_and_sdk_loggers_are_not_exported() -> None:
    with configure() as telemetry:
        logging.getLogger("sfumato").warning("own")
        logging.getLogger("opentelemetry.sdk").warning("sdk")
        log.warning("app")
        assert [r.body for r in records(telemetry)] == ["app"]


def test_handler_removed_at_shutdown() -> None:
    with configure():
        assert any(isinstance(h, OtelLogHandler) for h in logging.getLogger().handlers)
    assert not any(isinstance(h, OtelLogHandler) for h in logging.getLogger().handlers)


@pytest.mark.parametrize(
    "overrides",
    [
        {"logs": {"enabled": False}},
        {"backend": "jaeger", "exporters": []},  # Jaeger takes no logs
    ],
)
def test_no_handler_without_a_log_exporter(overrides: dict[str, Any]) -> None:
    config: dict[str, Any] = {"backend": "none", "exporters": [{"type": "memory"}], **overrides}
    with sfumato.configure(None, **config) as telemetry:
        assert telemetry.logger_provider is None
        assert not any(isinstance(h, OtelLogHandler) for h in logging.getLogger().handlers)


def test_a_record_the_sdk_refuses_is_said_once_on_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An SDK whose Logger.emit takes other arguments (1.39 had no ``exception``) must not
    lose every record silently: the first failure is said on stderr, once."""
    import logging

    from sfumato._logging import OtelLogHandler

    class Refusing:
        def get_logger(self, name: str) -> Refusing:
            return self

        def emit(self, **kwargs: object) -> None:
            raise TypeError("emit() got an unexpected keyword argument 'exception'")

    handler = OtelLogHandler(Refusing(), logging.INFO, stderr_fallback=False)  # type: ignore[arg-type]
    for n in range(3):
        handler.emit(logging.LogRecord("app", logging.WARNING, __file__, 1, "m %d", (n,), None))
    err = capsys.readouterr().err
    assert err.count("a log record could not be exported") == 1, err
    assert "unexpected keyword argument 'exception'" in err
