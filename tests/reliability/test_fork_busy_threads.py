"""Forking while other threads are making spans: the child's first span must not wait on a
lock a parent thread held at the moment of the fork.

Each scenario runs in a fresh interpreter that starts busy span-making threads, then forks
several times (``os.fork``, ``multiprocessing`` and ``ProcessPoolExecutor`` with the fork
start method); every child makes spans and reports how many it exported to the in-memory
exporter. A child that does not answer within its timeout is a deadlock, reported as such;
the scenario itself is killed if it runs past its own timeout, so the suite never hangs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PRELUDE = """
import os, sys, threading, time
import sfumato
from opentelemetry import trace

telemetry = sfumato.configure(
    None, service_name="forks", backend="none", exporters=[{"type": "memory"}],
    metrics={"enabled": False}, logs={"enabled": False},
)
tracer = trace.get_tracer("busy")
stop = threading.Event()

def busy():
    while not stop.is_set():
        with tracer.start_as_current_span("parent") as span:
            span.set_attribute("k", 1)
            span.set_attributes({"a": 1, "b": "x"})
            span.add_event("e")

threads = [threading.Thread(target=busy, daemon=True) for _ in range(4)]
for t in threads:
    t.start()
time.sleep(0.05)

def child_work():
    t = trace.get_tracer("child")
    for _ in range(20):
        with t.start_as_current_span("child") as span:
            span.set_attribute("pid", os.getpid())
            span.add_event("e")
    handle = sfumato.active()
    handle.force_flush(5)
    names = [s.name for s in handle.exporter("memory").get_finished_spans()]
    return names.count("child")

def work(i):
    return child_work()

CHILD_TIMEOUT = 5
"""


def _scenario(code: str, tmp_path: Path, timeout: float = 90) -> str:
    script = tmp_path / "scenario.py"
    script.write_text(PRELUDE + textwrap.dedent(code))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SFUMATO_", "OTEL_"))}
    try:
        result = subprocess.run(
            [sys.executable, str(script)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the scenario hung (killed after {timeout} s): {e.stdout!r} {e.stderr!r}")
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result.stdout


def test_os_fork_children_of_a_busy_parent_do_not_deadlock(tmp_path: Path) -> None:
    out = _scenario(
        """
        import signal
        results = []
        for _ in range(10):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                signal.alarm(CHILD_TIMEOUT)  # a deadlocked child dies of SIGALRM
                os.close(r)
                n = child_work()
                os.write(w, str(n).encode())
                os._exit(0)
            os.close(w)
            _, status = os.waitpid(pid, 0)
            data = os.read(r, 100)
            os.close(r)
            if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGALRM:
                results.append("deadlocked")
            else:
                results.append(data.decode() or f"status {status}")
        stop.set()
        print(results, flush=True)
        assert results == ["20"] * 10, results
        """,
        tmp_path,
    )
    assert "deadlocked" not in out


@pytest.mark.parametrize("pool", ["multiprocessing", "ProcessPoolExecutor"])
def test_fork_pools_of_a_busy_parent_do_not_deadlock(pool: str, tmp_path: Path) -> None:
    _scenario(
        f"""
        import multiprocessing, concurrent.futures
        ctx = multiprocessing.get_context("fork")
        results = []
        for _ in range(3):
            if {pool!r} == "multiprocessing":
                p = ctx.Pool(2)
                got = p.map_async(work, range(4))
                try:
                    results.extend(got.get(timeout=CHILD_TIMEOUT))
                except multiprocessing.TimeoutError:
                    results.append("deadlocked")
                p.terminate()
                p.join()
            else:
                ex = concurrent.futures.ProcessPoolExecutor(2, mp_context=ctx)
                futures = [ex.submit(work, i) for i in range(4)]
                for f in futures:
                    try:
                        results.append(f.result(timeout=CHILD_TIMEOUT))
                    except concurrent.futures.TimeoutError:
                        results.append("deadlocked")
                for proc in list(ex._processes.values()):
                    proc.kill()
                ex.shutdown(wait=False, cancel_futures=True)
        stop.set()
        print(results, flush=True)
        ok = "deadlocked" not in results and all(isinstance(n, int) and n >= 20 for n in results)
        os._exit(0 if ok else 1)  # not the interpreter's exit: pools it killed could hold it
        """,
        tmp_path,
    )
