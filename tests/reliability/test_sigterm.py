"""SIGTERM (what containers and process managers send to stop a process) flushes what is
queued before the process dies of it, with the exit status it would have had without
sfumato; an application's own SIGTERM handler is left alone.

Each scenario is a real subprocess exporting over OTLP/gRPC to Rotel, its spans still queued
(a long batch delay) when the test sends it SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from receivers import RotelServer, wait_until

pytestmark = pytest.mark.server

PRELUDE = """
import os, signal, sys, time
import sfumato

def configure(**extra):
    settings = dict(
        service_name="sigterm", backend="otlp", protocol="grpc",
        otlp_endpoint=os.environ["ENDPOINT"], shutdown_timeout_ms=5000,
        batch_timeout_ms=60_000, max_queue_size=100_000,
        metrics={"enabled": False}, logs={"enabled": False},
    )
    settings.update(extra)
    return sfumato.configure(**settings)

def spans(n):
    tracer = sfumato.active().tracer("sigterm")
    for i in range(n):
        with tracer.start_as_current_span("queued", attributes={"i": i}):
            pass
"""


# Every scenario then says it has queued its spans and waits for the signal.
_WAIT = """
print("ready", flush=True)
while True:
    time.sleep(0.1)
"""


def _start(code: str, rotel: RotelServer, tmp_path: Path) -> subprocess.Popen[str]:
    script = tmp_path / "scenario.py"
    script.write_text(PRELUDE + textwrap.dedent(code) + _WAIT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SFUMATO_", "OTEL_"))}
    env["ENDPOINT"] = rotel.grpc_endpoint
    process = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # "ready" once its spans are queued
    assert line.strip() == "ready", line + process.stderr.read()[-3000:]
    return process


def _terminate(process: subprocess.Popen[str], timeout: float = 30) -> tuple[int, str]:
    process.send_signal(signal.SIGTERM)
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
        pytest.fail(f"the process did not end within {timeout} s of SIGTERM: {err[-3000:]}")
    return process.returncode, err


def _count(rotel: RotelServer, expected: int) -> int:
    wait_until(lambda: len(rotel.sink.spans()) >= expected, timeout=10)
    time.sleep(0.3)
    return len(rotel.sink.spans())


def test_sigterm_flushes_every_queued_span_and_exits_as_sigterm(
    rotel: RotelServer, tmp_path: Path
) -> None:
    process = _start(
        """
        configure()
        spans(1000)
        """,
        rotel,
        tmp_path,
    )
    status, err = _terminate(process)
    assert status == -signal.SIGTERM, err[-3000:]
    assert _count(rotel, 1000) == 1000


def test_switched_off_or_an_application_handler_leaves_sigterm_alone(
    rotel: RotelServer, tmp_path: Path
) -> None:
    process = _start(
        """
        configure(handle_sigterm=False)
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        sfumato.active().shutdown()
        def own(signum, frame):
            print("own handler", flush=True)
            sys.exit(7)
        signal.signal(signal.SIGTERM, own)
        configure()
        assert signal.getsignal(signal.SIGTERM) is own  # the application's stays
        spans(10)
        """,
        rotel,
        tmp_path,
    )
    status, err = _terminate(process)
    assert status == 7, err[-3000:]  # its handler ran; sfumato's at-exit shutdown flushed
    assert _count(rotel, 10) == 10


def test_shutdown_restores_the_default_disposition(rotel: RotelServer, tmp_path: Path) -> None:
    process = _start(
        """
        t = configure()
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        t.shutdown()
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        t = configure()
        spans(5)
        """,
        rotel,
        tmp_path,
    )
    status, err = _terminate(process)
    assert status == -signal.SIGTERM, err[-3000:]
    assert _count(rotel, 5) == 5
