"""Rotation, the total cap, concurrent writers and failures of the local store."""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
from pathlib import Path

import pytest
import sfumato
from local_store_support import context, local_exporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from receivers import missing
from sfumato._errors import ConfigError
from sfumato._loading import load_settings
from sfumato.plugins.local.files import list_files
from sfumato.plugins.local.options import LocalOptions
from sfumato.plugins.local.store import Store

KIB = 1024
LIMITS = {"max_file_bytes": 4 * KIB, "max_total_bytes": 20 * KIB, "max_line_bytes": 2 * KIB}


def _make_spans(n: int, start: int = 0, pad: int = 0) -> list:
    memory = InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create({"service.name": "rot"}))
    tp.add_span_processor(SimpleSpanProcessor(memory))
    tracer = tp.get_tracer("t")
    for i in range(start, start + n):
        tracer.start_span(f"span-{i:05d}", attributes={"pad": "x" * pad}).end()
    return list(memory.get_finished_spans())


def _names(directory: Path) -> list[str]:
    return [s.name for s in Store(directory).spans()]


def test_files_rotate_at_max_file_bytes_and_the_directory_stays_under_the_cap(
    tmp_path: Path,
) -> None:
    exporter = local_exporter(tmp_path, **LIMITS)
    written = 0
    for _ in range(60):
        assert exporter.export(_make_spans(3, start=written)).name == "SUCCESS"
        written += 3
        files = list_files(tmp_path)
        assert sum(f.size for f in files) <= LIMITS["max_total_bytes"]
        for f in files:
            assert f.size <= LIMITS["max_file_bytes"]
    files = list_files(tmp_path, "traces")
    assert len([f for f in files if f.rotated]) >= 2
    assert not files[-1].rotated and files[-1].path.name == "traces.jsonl"
    # The oldest data went first: what is left is the newest spans, in order, without a gap.
    names = _names(tmp_path)
    expected = [f"span-{i:05d}" for i in range(written)]
    assert names == expected[len(expected) - len(names) :]
    assert 0 < len(names) < written
    # Every line is a whole OTLP/JSON request within the line limit.
    for f in files:
        for line in f.path.read_bytes().splitlines():
            assert len(line) + 1 <= LIMITS["max_line_bytes"]
            json.loads(line)


def test_cap_deletes_oldest_rotated_files_across_signals(tmp_path: Path) -> None:
    # Old rotated files of another signal are deleted before newer trace files.
    old = tmp_path / "logs.20000101T000000.000000000Z.jsonl"
    old.write_bytes(b"{}\n" * 3000)  # 9000 bytes: over the 20 - 3 * 4 KiB left for rotated files
    exporter = local_exporter(tmp_path, **LIMITS)
    assert not old.exists()  # enforced when the exporter is created: over budget
    old.write_bytes(b"{}\n" * 1000)  # 3000 bytes: fits the budget until traces rotate
    exporter.shutdown()
    exporter = local_exporter(tmp_path, **LIMITS)  # a new start: the directory is scanned
    assert old.exists()
    for i in range(60):
        exporter.export(_make_spans(3, start=3 * i))
    assert not old.exists()
    assert sum(f.size for f in list_files(tmp_path)) <= LIMITS["max_total_bytes"]


def test_a_batch_too_long_for_one_line_is_split(tmp_path: Path) -> None:
    exporter = local_exporter(
        tmp_path, max_file_bytes=64 * KIB, max_total_bytes=1024 * KIB, max_line_bytes=2 * KIB
    )
    spans = _make_spans(40, pad=100)  # ~ 40 * 300 bytes: several lines
    exporter.export(spans)
    assert _names(tmp_path) == [s.name for s in spans]
    lines = [line for f in list_files(tmp_path) for line in f.path.read_bytes().splitlines()]
    assert len(lines) > 1
    assert all(len(line) < 2 * KIB for line in lines)


def test_a_span_too_long_for_any_line_is_dropped_and_counted(tmp_path: Path) -> None:
    ctx = context()
    exporter = local_exporter(tmp_path, ctx=ctx, **LIMITS)
    spans = _make_spans(2) + _make_spans(1, start=2, pad=3 * KIB) + _make_spans(2, start=3)
    assert exporter.export(spans).name == "SUCCESS"
    assert _names(tmp_path) == ["span-00000", "span-00001", "span-00003", "span-00004"]
    # The export queue reads this and counts the span as dropped.too_large, not exported.
    assert exporter.sfumato_partial() == (1, "too_large")


def test_a_span_too_large_is_counted_dropped_and_not_exported(tmp_path: Path) -> None:
    with sfumato.configure(
        None,
        backend="local",
        backend_options={"directory": str(tmp_path), "max_line_bytes": 2048},
        metrics={"enabled": False},
        logs={"enabled": False},
    ) as telemetry:
        tracer = telemetry.tracer()
        for i in range(5):
            with tracer.start_as_current_span(f"s{i}") as span:
                span.set_attribute("pad", "x" * (4096 if i == 2 else 10))
        assert telemetry.force_flush(5) is False  # one span was lost
        stats = telemetry.stats()
    assert stats["traces.exported"] == 4
    assert stats["traces.dropped.too_large"] == stats["exporters.local.traces.dropped.too_large"]
    assert stats["traces.dropped.too_large"] == 1
    assert stats["traces.queued"] == 5


def test_concurrent_exports_write_whole_lines(tmp_path: Path) -> None:
    exporter = local_exporter(tmp_path, max_file_bytes=64 * KIB, max_total_bytes=100 * 1024 * KIB)
    batches = [_make_spans(5, start=100 * t) for t in range(8)]

    def work(batch: list) -> None:
        for _ in range(20):
            exporter.export(batch)

    threads = [threading.Thread(target=work, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    store = Store(tmp_path)
    assert len(list(store.spans())) == 8 * 20 * 5
    assert store.skipped == 0
    assert len(list_files(tmp_path, "traces")) > 1  # rotation happened while racing


def test_unwritable_directory_fails_the_export_without_raising(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    ctx = context()
    exporter = local_exporter(blocker / "store", ctx=ctx)
    assert ctx.notices and "cannot use" in ctx.notices[0]
    with caplog.at_level(logging.WARNING, logger="sfumato"):
        assert exporter.export(_make_spans(1)).name == "FAILURE"
        assert exporter.export(_make_spans(1)).name == "FAILURE"
    warnings = [r for r in caplog.records if "local store could not write" in r.getMessage()]
    assert len(warnings) == 1  # logged once, not per export
    exporter.shutdown()


def test_a_truncated_last_line_is_skipped_by_the_reader(tmp_path: Path) -> None:
    exporter = local_exporter(tmp_path)
    exporter.export(_make_spans(2))
    with open(tmp_path / "traces.jsonl", "ab") as f:
        f.write(b'{"resourceSpans":[{"scopeSp')  # a write cut short
    store = Store(tmp_path)
    assert [s.name for s in store.spans()] == ["span-00000", "span-00001"]
    assert store.skipped == 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_file_bytes": "10MiB", "max_total_bytes": "20MiB"}, "at least 3 x max_file_bytes"),
        ({"max_file_bytes": "ten megs"}, "expected a size"),
        ({"max_file_bytes": 10}, ">= 1024"),
        ({"dir": "x"}, "unknown key 'dir'"),
    ],
)
def test_bad_options_are_config_errors(options: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(None, env={}, backend="local", backend_options=options)
    assert message in str(info.value)
    assert "telemetry.backend_options" in str(info.value)


def test_sizes_accept_units() -> None:
    options = LocalOptions(max_file_bytes="10MB", max_total_bytes="1 GiB", max_line_bytes="512KiB")
    assert (options.max_file_bytes, options.max_total_bytes, options.max_line_bytes) == (
        10_000_000,
        1024**3,
        512 * 1024,
    )


def test_forked_processes_share_a_store(tmp_path: Path) -> None:
    """Parent and child append and rotate the same files at once: every line stays whole
    and nothing is lost."""
    if not hasattr(os, "fork"):
        missing("os.fork")
    exporter = local_exporter(tmp_path, max_file_bytes=8 * KIB, max_total_bytes=64 * 1024 * KIB)
    parent_spans, child_spans = _make_spans(2, start=0), _make_spans(2, start=1000)
    pid = os.fork()
    if pid == 0:  # the child: export, then leave at once without pytest's teardown
        code = 0
        try:
            for _ in range(150):
                exporter.export(child_spans)
        except BaseException:
            code = 1
        os._exit(code)
    for _ in range(150):
        exporter.export(parent_spans)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    store = Store(tmp_path)
    names = [s.name for s in store.spans()]
    assert store.skipped == 0
    assert names.count("span-00000") == 150 and names.count("span-01000") == 150
    assert len(names) == 600
    assert len(list_files(tmp_path, "traces")) > 2


def test_store_is_private_to_its_owner(tmp_path: Path) -> None:
    """The directory the store creates is 0700 and its files 0600, whatever the umask."""
    previous = os.umask(0o002)
    try:
        exporter = local_exporter(tmp_path / "new" / "store", **LIMITS)
        for i in range(20):
            exporter.export(_make_spans(3, start=3 * i))
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "new" / "store").stat().st_mode) == 0o700
    files = list_files(tmp_path / "new" / "store")
    assert len(files) > 1
    for f in files:
        assert stat.S_IMODE(f.path.stat().st_mode) == 0o600, f.path.name


def test_an_active_file_that_is_a_symlink_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"")
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "traces.jsonl").symlink_to(target)
    exporter = local_exporter(tmp_path / "store", **LIMITS)
    assert exporter.export(_make_spans(1)).name == "FAILURE"
    assert target.read_bytes() == b""
    exporter.shutdown()


def test_rotation_does_not_rescan_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rotated files and their sizes are kept in memory; the directory is listed when a
    writer starts, not at every rotation."""
    from sfumato.plugins.local import files as files_module

    exporter = local_exporter(tmp_path, **LIMITS)
    real_scandir = os.scandir
    scans = []

    def counting_scandir(path):  # type: ignore[no-untyped-def]
        scans.append(path)
        return real_scandir(path)

    monkeypatch.setattr(files_module.os, "scandir", counting_scandir)
    for i in range(60):
        exporter.export(_make_spans(3, start=3 * i))
    monkeypatch.setattr(files_module.os, "scandir", real_scandir)
    assert len([f for f in list_files(tmp_path) if f.rotated]) >= 2
    assert scans == []
    # The cap still holds, over every signal written by this process.
    logs = local_exporter(tmp_path, "logs", **LIMITS)
    assert logs.writer.file is not exporter.writer.file
    assert sum(f.size for f in list_files(tmp_path)) <= LIMITS["max_total_bytes"]


def test_forked_writers_keep_the_cap(tmp_path: Path) -> None:
    """Rotations by another process are noticed (the active file changed under a writer),
    and the directory is listed again: the cap holds over both processes' files."""
    if not hasattr(os, "fork"):
        missing("os.fork")
    exporter = local_exporter(tmp_path, **LIMITS)
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            for i in range(60):
                exporter.export(_make_spans(3, start=1000 + 3 * i))
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    for i in range(60):
        exporter.export(_make_spans(3, start=3 * i))
    # After a rotation the rotated files fit what the cap leaves beside three active files.
    budget = LIMITS["max_total_bytes"] - 3 * LIMITS["max_file_bytes"]
    assert sum(f.size for f in list_files(tmp_path) if f.rotated) <= budget
