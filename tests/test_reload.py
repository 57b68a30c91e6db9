"""Live changes of the sampler tree: ``Telemetry.reload()``, SIGHUP, a watched file, and
``sfumato reload``; validated first, swapped atomically, refused whole when invalid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sfumato
from opentelemetry import trace
from receivers import missing, wait_until

SFUMATO = [sys.executable, "-c", "import sys; from sfumato.cli import main; sys.exit(main())"]

HEAD = """
[telemetry]
service_name = "reloaded"
backend = "none"
{sampler}

[[telemetry.exporters]]
type = "memory"

[telemetry.metrics]
enabled = false

[telemetry.logs]
enabled = false
"""


def write(path: Path, sampler: str, extra: str = "") -> None:
    path.write_text(textwrap.dedent(HEAD).format(sampler=textwrap.dedent(sampler)) + extra)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "app.toml"
    write(path, '[telemetry.sampler]\ntype = "always_off"')
    return path


@pytest.fixture
def handle(config: Path) -> Iterator[Any]:
    running = sfumato.configure(config)
    try:
        yield running
    finally:
        running.shutdown()


def spans_of(handle: Any) -> list[Any]:
    handle.force_flush(5)
    return list(handle.exporter("memory").get_finished_spans())


def one_span(name: str = "work") -> None:
    with trace.get_tracer("app").start_as_current_span(name):
        pass


def test_a_reload_swaps_the_sampler_tree(handle: Any, config: Path) -> None:
    before = handle.sampler_version
    one_span("before")
    write(config, '[telemetry.sampler]\ntype = "ratio"\nrate = 1.0')
    done = handle.reload()
    assert done.applied, done.message
    assert done.version == handle.sampler_version != before
    one_span("after")
    assert [s.name for s in spans_of(handle)] == ["after"]
    stats = handle.stats()
    assert stats["sampler.reloads"] == 1
    assert format(stats["sampler.version"], "012x") == handle.sampler_version


def test_an_invalid_file_changes_nothing_and_says_why(handle: Any, config: Path) -> None:
    before = handle.sampler_version
    write(config, '[telemetry.sampler]\ntype = "ratio"\nrate = 2.5')
    done = handle.reload()
    assert not done.applied
    assert "rate" in done.message and "1" in done.message  # the bound it broke
    assert handle.sampler_version == before
    one_span()
    assert spans_of(handle) == []  # still always_off
    write(config, '[telemetry.sampler]\ntype = "no-such-sampler"')
    done = handle.reload()
    assert not done.applied and "no-such-sampler" in done.message
    assert handle.stats()["sampler.reload_errors"] == 2


def test_changing_where_the_decision_is_taken_needs_a_restart(handle: Any, config: Path) -> None:
    write(config, '[telemetry.sampler]\ntype = "error-always"')
    done = handle.reload()
    assert not done.applied and "needs a restart" in done.message


def test_one_tail_stage_for_another_needs_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "app.toml"
    write(path, '[telemetry.sampler]\ntype = "error-always"')
    running = sfumato.configure(path)
    try:
        write(
            path,
            '[telemetry.sampler]\ntype = "rules"\n[[telemetry.sampler.span_rules]]\n'
            'name = "x"\nspan = "charge*"',
        )
        done = running.reload()
        assert not done.applied and "needs a restart" in done.message
        write(path, '[telemetry.sampler]\ntype = "error-always"\nslow_ms = 500')
        assert running.reload().applied  # one error-always for another: fine
    finally:
        running.shutdown()


def test_other_changed_keys_are_named_and_the_sampler_applied(handle: Any, config: Path) -> None:
    write(config, '[telemetry.sampler]\ntype = "always_on"')
    text = config.read_text().replace('service_name = "reloaded"', 'service_name = "renamed"')
    config.write_text(text)
    done = handle.reload()
    assert done.applied and done.restart_needed == ["service_name"]
    assert "service_name" in done.message


def test_a_reload_under_load_never_mixes_two_trees_in_a_unit(tmp_path: Path) -> None:
    """Four threads make units of three spans while the tail rules are swapped back and forth:
    every unit is exported once, whole, under one rule's label."""
    path = tmp_path / "app.toml"

    def tree(label: str) -> str:
        return f'[telemetry.sampler]\ntype = "tail"\n[[telemetry.sampler.rules]]\nname = "{label}"'

    write(path, tree("a"))
    handle = sfumato.configure(path)
    tracer = trace.get_tracer("load")
    stop = threading.Event()
    made = [0] * 4

    def work(i: int) -> None:
        while not stop.is_set():
            with (
                tracer.start_as_current_span("root"),
                tracer.start_as_current_span("child"),
                tracer.start_as_current_span("leaf"),
            ):
                pass
            made[i] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    try:
        for t in threads:
            t.start()
        applied = 0
        for n in range(20):
            write(path, tree("b" if n % 2 == 0 else "a"))
            applied += handle.reload().applied
        stop.set()
        for t in threads:
            t.join(10)
        spans = spans_of(handle)
    finally:
        stop.set()
        handle.shutdown()
    assert applied == 20
    assert sum(made) > 100, "too little load to mean anything"
    labels: dict[int, set[str]] = defaultdict(set)
    counts: dict[int, int] = defaultdict(int)
    for s in spans:
        labels[s.context.trace_id].add(s.attributes["sampling.policy"])
        counts[s.context.trace_id] += 1
    assert len(labels) == sum(made)  # every unit exported
    assert all(n == 3 for n in counts.values())  # whole
    assert all(len(found) == 1 for found in labels.values())  # under one tree
    assert {"tail:a", "tail:b"} <= set().union(*labels.values())


def test_sighup_reloads(handle: Any, config: Path) -> None:
    if not hasattr(signal, "SIGHUP"):
        missing("SIGHUP (a POSIX signal)")  # fails under CI, skips elsewhere
    before = handle.sampler_version
    write(config, '[telemetry.sampler]\ntype = "always_on"')
    os.kill(os.getpid(), signal.SIGHUP)
    wait_until(lambda: handle.sampler_version != before, timeout=10)
    one_span()
    assert len(spans_of(handle)) == 1


def test_a_watched_file_reloads_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "app.toml"
    write(
        path,
        '[telemetry.sampler]\ntype = "always_off"',
        "\n[telemetry.reload]\nwatch = true\ninterval_ms = 100\n",
    )
    handle = sfumato.configure(path)
    try:
        before = handle.sampler_version
        text = path.read_text().replace('type = "always_off"', 'type = "always_on"')
        path.write_text(text)
        wait_until(lambda: handle.sampler_version != before, timeout=10)
        one_span()
        assert len(spans_of(handle)) == 1
    finally:
        handle.shutdown()


def test_show_and_doctor_print_the_files_version(config: Path, handle: Any) -> None:

    for command in (["show", str(config)], ["doctor", str(config)]):
        out = subprocess.run(
            [*SFUMATO, *command], capture_output=True, text=True, timeout=120
        ).stdout
        assert handle.sampler_version in out, out


def test_doctor_notes_otel_config_file(config: Path) -> None:
    env = {**os.environ, "OTEL_CONFIG_FILE": "/etc/otel/config.yaml"}
    out = subprocess.run(
        [*SFUMATO, "doctor", str(config)], capture_output=True, text=True, timeout=120, env=env
    ).stdout
    assert "OTEL_CONFIG_FILE is set (/etc/otel/config.yaml)" in out


def test_the_command_validates_first_and_signals_the_process(tmp_path: Path) -> None:
    path = tmp_path / "app.toml"
    write(path, '[telemetry.sampler]\ntype = "always_off"')
    script = tmp_path / "service.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys, time
            import sfumato
            handle = sfumato.configure({str(path)!r})
            print(handle.sampler_version, flush=True)
            before = handle.sampler_version
            for _ in range(200):
                if handle.sampler_version != before:
                    print(handle.sampler_version, flush=True)
                    break
                time.sleep(0.05)
            handle.shutdown()
            """
        )
    )
    service = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert service.stdout is not None
        first = service.stdout.readline().strip()
        write(path, '[telemetry.sampler]\ntype = "ratio"\nrate = 7')  # invalid: not sent
        bad = subprocess.run(
            [*SFUMATO, "reload", str(service.pid), "-c", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert bad.returncode != 0 and "rate" in bad.stdout + bad.stderr
        write(path, '[telemetry.sampler]\ntype = "always_on"')
        good = subprocess.run(
            [*SFUMATO, "reload", str(service.pid), "-c", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert good.returncode == 0, good.stdout + good.stderr
        second = service.stdout.readline().strip()
        assert second and second != first
    finally:
        service.wait(20)
