"""Fork safety: telemetry keeps working in children made by ``os.fork``, by ``multiprocessing``
(fork and spawn start methods) and by a pre-fork server (gunicorn ``--preload``), against a
real receiver, with no span lost and none sent twice.

Each scenario runs in a fresh interpreter (forking the test runner itself would copy its
threads' state), exporting over OTLP/gRPC to Rotel; the spans Rotel forwards are counted by
name and by span id.
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
from receivers import RotelServer, attributes, free_port, require, wait_until

pytestmark = pytest.mark.server

PRELUDE = """
import os, sys, time
import sfumato

def configure(**extra):
    settings = dict(
        service_name="forks", backend="otlp", protocol="grpc",
        otlp_endpoint=os.environ["ENDPOINT"], shutdown_timeout_ms=5000,
        metrics={"enabled": False}, logs={"enabled": False},
    )
    settings.update(extra)
    return sfumato.configure(**settings)

def spans(name, n):
    tracer = sfumato.active().tracer("forks")
    for i in range(n):
        with tracer.start_as_current_span(name, attributes={"pid": os.getpid()}):
            pass
"""


def _run(
    code: str, rotel: RotelServer, tmp_path: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    # A file, not -c: spawned children import the main module by its path.
    script = tmp_path / "scenario.py"
    script.write_text(PRELUDE + textwrap.dedent(code))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SFUMATO_", "OTEL_"))}
    env["ENDPOINT"] = rotel.grpc_endpoint
    result = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _arrived(rotel: RotelServer, expected: dict[str, int]) -> collections.Counter[str]:
    """Spans by name once ``expected`` many arrived (or 10 s passed); asserts no duplicate."""
    total = sum(expected.values())
    wait_until(lambda: len(rotel.sink.spans()) >= total, timeout=10)
    time.sleep(0.3)  # anything extra (a duplicate) would arrive within Rotel's batch delay
    spans = [span for _, span in rotel.sink.spans()]
    ids = [span.span_id for span in spans]
    assert len(ids) == len(set(ids)), "a span arrived twice"
    return collections.Counter(span.name for span in spans)


def _pids(rotel: RotelServer, name: str) -> set[int]:
    return {
        int(attributes(span.attributes)["pid"])
        for _, span in rotel.sink.spans()
        if span.name == name
    }


def test_os_fork_child_exports_its_own_spans_and_none_of_the_parents(
    rotel: RotelServer, tmp_path: Path
) -> None:
    # The parent's spans are still queued (a long batch delay) and one of its traces is open
    # in the error-always tail buffer when it forks: the child must send neither.
    _run(
        """
        t = configure(batch_timeout_ms=60_000,
                      sampler={"type": "error-always", "otherwise": {"type": "always_on"}})
        tracer = t.tracer("forks")
        spans("parent-before", 50)
        from opentelemetry import trace
        root = tracer.start_span("parent-open-root")
        with tracer.start_as_current_span("parent-open-child", trace.set_span_in_context(root)):
            pass
        assert t.stats()["traces.in_queue"] == 50
        pid = os.fork()
        if pid == 0:
            assert sfumato.active().forked and sfumato.active().stats()["traces.queued"] == 0
            spans("child", 30)
            sys.exit(0)  # atexit shuts the child's telemetry down
        _, status = os.waitpid(pid, 0)
        assert status == 0, status
        root.end()
        spans("parent-after", 20)
        assert t.shutdown()
        """,
        rotel,
        tmp_path,
    )
    names = _arrived(rotel, {"parent-before": 50, "child": 30, "parent-after": 20})
    assert names == {
        "parent-before": 50,
        "child": 30,
        "parent-after": 20,
        "parent-open-root": 1,
        "parent-open-child": 1,
    }
    assert len(_pids(rotel, "child")) == 1 and _pids(rotel, "child") != _pids(rotel, "parent-after")


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_multiprocessing_children(method: str, rotel: RotelServer, tmp_path: Path) -> None:
    # fork: the children inherit the configuration and sfumato re-creates it in each; they
    # return from their target without any telemetry call (multiprocessing ends them with
    # os._exit, so sfumato's finalizer flushes). spawn: a fresh interpreter, which must
    # configure itself (here in the target) and is flushed at exit.
    result = _run(
        f"""
        import multiprocessing

        def work(n):
            if sfumato.active() is None:  # spawn: a fresh interpreter configures itself
                configure(batch_timeout_ms=60_000)
            spans("child", n)
            return os.getpid()

        if __name__ == "__main__":
            t = configure(batch_timeout_ms=60_000)
            spans("parent-before", 10)
            context = multiprocessing.get_context("{method}")
            pool = context.Pool(3)
            pids = pool.map(work, [40] * 6, chunksize=1)
            # close() + join(): workers finish and exit normally. (terminate(), which the
            # pool's with-block calls, kills them before anything can be flushed.)
            pool.close()
            pool.join()
            spans("parent-after", 10)
            assert t.shutdown()
            print(*sorted(set(pids)))
        """,
        rotel,
        tmp_path,
        timeout=120,
    )
    names = _arrived(rotel, {"parent-before": 10, "child": 240, "parent-after": 10})
    assert names == {"parent-before": 10, "child": 240, "parent-after": 10}
    workers = {int(pid) for pid in result.stdout.split()}
    assert _pids(rotel, "child") == workers  # each worker's spans came from that worker


def test_a_spawned_child_without_configure_has_no_telemetry_and_no_error(
    rotel: RotelServer, tmp_path: Path
) -> None:
    _run(
        """
        import multiprocessing

        def work():
            assert sfumato.active() is None
            spans_made = sfumato.Telemetry  # the API is importable; nothing is exported
            from opentelemetry import trace
            with trace.get_tracer("x").start_as_current_span("unconfigured-child"):
                pass

        if __name__ == "__main__":
            t = configure()
            p = multiprocessing.get_context("spawn").Process(target=work)
            p.start(); p.join()
            assert p.exitcode == 0
            spans("parent", 5)
            assert t.shutdown()
        """,
        rotel,
        tmp_path,
    )
    assert _arrived(rotel, {"parent": 5}) == {"parent": 5}


def test_after_fork_is_idempotent_and_a_no_op_in_the_configuring_process(
    rotel: RotelServer, tmp_path: Path
) -> None:
    _run(
        """
        t = configure(batch_timeout_ms=60_000)
        provider = t.tracer_provider
        sfumato.after_fork()  # the configuring process: nothing happens
        assert t.tracer_provider is provider and not t.forked
        pid = os.fork()
        if pid == 0:
            rebuilt = sfumato.active().tracer_provider
            sfumato.after_fork()  # already re-created by the at-fork hook
            assert sfumato.active().tracer_provider is rebuilt is not provider
            spans("child", 7)
            sfumato.active().shutdown()
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert status == 0
        assert t.shutdown()
        """,
        rotel,
        tmp_path,
    )
    assert _arrived(rotel, {"child": 7}) == {"child": 7}


def test_configure_in_a_forked_child_replaces_the_inherited_setup(
    rotel: RotelServer, tmp_path: Path
) -> None:
    # A post_fork hook that calls configure() itself (the pattern without --preload) works
    # whether or not the parent configured: the child's own call wins.
    _run(
        """
        t = configure()
        pid = os.fork()
        if pid == 0:
            mine = configure(service_name="child-own")
            assert sfumato.active() is mine
            spans("child", 4)
            mine.shutdown()
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert status == 0
        spans("parent", 3)
        assert t.shutdown()
        """,
        rotel,
        tmp_path,
    )
    assert _arrived(rotel, {"child": 4, "parent": 3}) == {"child": 4, "parent": 3}
    services = {r["service.name"] for r, s in rotel.sink.spans() if s.name == "child"}
    assert services == {"child-own"}


APP = """
import os
import sfumato

# --preload: this runs once, in the gunicorn master, before the workers are forked.
telemetry = sfumato.configure(
    service_name="gunicorn-app", backend="otlp", protocol="grpc",
    otlp_endpoint=os.environ["ENDPOINT"], batch_timeout_ms=60_000,
    metrics={"enabled": False}, logs={"enabled": False},
)
with telemetry.tracer("app").start_as_current_span("master-startup"):
    pass  # queued in the master when the workers fork: it must be sent once, by the master


def app(environ, start_response):
    with sfumato.active().tracer("app").start_as_current_span(
        "request", attributes={"pid": os.getpid()}
    ):
        body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
"""


def test_gunicorn_preload_workers_export_every_request_once(
    rotel: RotelServer, tmp_path: Path
) -> None:
    gunicorn = require(
        shutil.which("gunicorn") or str(Path(sys.executable).with_name("gunicorn")),
        "gunicorn (a dev dependency: pip install -e .[dev])",
    )
    (tmp_path / "preload_app.py").write_text(APP)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SFUMATO_", "OTEL_"))}
    env["ENDPOINT"] = rotel.grpc_endpoint
    server = subprocess.Popen(
        [
            gunicorn, "--preload", "--workers", "3", "--bind", f"127.0.0.1:{port}",
            "--chdir", str(tmp_path), "--graceful-timeout", "10", "preload_app:app",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    pids: set[int] = set()
    try:

        def get() -> bytes | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    return bytes(r.read())
            except OSError:
                return None

        assert wait_until(get, timeout=30), "gunicorn did not answer"
        for _ in range(59):  # 60 requests with the one above
            body = get()
            assert body is not None
            pids.add(int(body))
    finally:
        server.send_signal(signal.SIGTERM)  # graceful: workers exit, and flush at exit
        out = server.communicate(timeout=30)[0].decode(errors="replace")
    assert server.returncode == 0, out[-3000:]
    names = _arrived(rotel, {"request": 60, "master-startup": 1})
    assert names == {"request": 60, "master-startup": 1}, out[-3000:]
    # Each request's span came from the worker that answered it.
    assert _pids(rotel, "request") == pids
