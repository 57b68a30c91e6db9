"""An application's own WARNING+ log records reach stderr when it set up no handler, as
Python's last-resort handler would print them, whatever the logs bridge does; sfumato's own
warnings always do. Each case is a fresh interpreter: logging's state is per process."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

APP = textwrap.dedent(
    """
    import logging, sys
    import sfumato

    before, after, logs = sys.argv[1], sys.argv[2], eval(sys.argv[3])
    if before == "basic":
        logging.basicConfig()
    telemetry = sfumato.configure(
        None, backend="none", exporters=[{"type": "memory"}], logs=logs
    )
    if after == "basic":
        logging.basicConfig()  # a no-op: the root logger has handlers (sfumato's)
    elif after == "handler":
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter(logging.BASIC_FORMAT))
        logging.getLogger().addHandler(handler)
    log = logging.getLogger("app.payments")
    log.info("not printed: below WARNING")
    log.error("payment failed")
    logging.getLogger("sfumato").warning("sfumato: own warning")
    telemetry.force_flush(5)
    try:
        items = telemetry.exporter("memory", "logs").items
    except KeyError:  # no logs pipeline
        items = []
    exported = [getattr(i, "log_record", i).body for i in items]
    telemetry.shutdown(5)
    print(exported)
    """
)


def run(
    before: str = "", after: str = "", logs: dict[str, object] | None = None
) -> tuple[str, str]:
    """The app's stdout (the bodies exported) and its stderr, without the INFO record that
    sfumato's lowered root level lets an application's own handler print."""
    done = subprocess.run(
        [sys.executable, "-c", APP, before or "-", after or "-", repr(logs or {})],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    err = done.stderr.splitlines()
    if {"basic", "handler"} & {before, after}:
        err = [line for line in err if "below WARNING" not in line]
    return done.stdout, "\n".join(err)


def test_unconfigured_app_error_is_printed_once_as_python_would() -> None:
    out, err = run()
    assert err.splitlines() == ["payment failed", "sfumato: own warning"]
    assert "payment failed" in out  # and exported


def test_app_handler_at_configure_prints_it_once() -> None:
    _, err = run(before="basic")
    assert err.splitlines() == ["ERROR:app.payments:payment failed", "WARNING:sfumato:own warning"]


def test_app_handler_added_later_prints_it_once() -> None:
    _, err = run(after="handler")
    assert err.splitlines() == ["ERROR:app.payments:payment failed", "WARNING:sfumato:own warning"]


def test_basic_config_after_configure_still_prints_once() -> None:
    # basicConfig() does nothing when the root logger has a handler; the fallback still prints.
    _, err = run(after="basic")
    assert err.splitlines() == ["payment failed", "sfumato: own warning"]


def test_app_handler_at_a_higher_level_decides_as_python_does() -> None:
    # Python's last-resort handler is used only when no handler at all is found.
    script = APP.replace(
        'if before == "basic":',
        "handler = logging.StreamHandler()\n"
        "handler.setLevel(logging.ERROR)\n"
        "logging.getLogger().addHandler(handler)\n"
        "if 0:",
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "error", "-", "{}"],
        capture_output=True,
        text=True,
        check=True,
    )
    # The app's handler prints the error; the warning finds that handler, which drops it.
    assert done.stderr.splitlines() == ["payment failed"]


@pytest.mark.parametrize("logs", [{"enabled": False}, {"level": "ERROR"}, {"level": "DEBUG"}])
def test_whatever_the_bridge_does(logs: dict[str, object]) -> None:
    _, err = run(logs=logs)
    assert err.splitlines() == ["payment failed", "sfumato: own warning"]


def test_switched_off_app_records_are_only_exported_own_warnings_still_printed() -> None:
    out, err = run(logs={"stderr_fallback": False})
    assert err.splitlines() == ["sfumato: own warning"]
    assert "payment failed" in out


def test_a_real_export_warning_is_printed() -> None:
    script = textwrap.dedent(
        """
        import socket
        import sfumato
        from opentelemetry import trace
        s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
        with sfumato.configure(
            None, backend="otlp", protocol="http/protobuf", export_retry_ms=0,
            otlp_endpoint=f"http://127.0.0.1:{port}", metrics={"enabled": False},
        ) as telemetry:
            with trace.get_tracer("app").start_as_current_span("x"):
                pass
            telemetry.force_flush(10)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    own = [line for line in done.stderr.splitlines() if line.startswith("sfumato: ")]
    assert len(own) == 1
    assert "traces export through" in own[0]
