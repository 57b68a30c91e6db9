"""The local store when writes fail half way: a full disk, a file size limit.

A write cut short must not leave a fragment for the next line to be glued onto, a file that
cannot grow must not fail every later write, and only what was written whole counts as
exported. The disk is a real 64 KiB tmpfs when the tests can mount one (as root), else the
process's file size limit (RLIMIT_FSIZE) makes writes fail the same way, with EFBIG.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_store_support import local_exporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from receivers import missing
from sfumato.plugins.local.files import list_files
from sfumato.plugins.local.store import Store

KIB = 1024
HERE = Path(__file__).resolve().parent


def _batch(n: int, start: int) -> list:
    memory = InMemorySpanExporter()
    tp = TracerProvider(resource=Resource.create({"service.name": "disk"}))
    tp.add_span_processor(SimpleSpanProcessor(memory))
    tracer = tp.get_tracer("t")
    for i in range(start, start + n):
        tracer.start_span(f"span-{i:05d}", attributes={"pad": "x" * 200}).end()
    return list(memory.get_finished_spans())


def fill(directory: str, ballast: str | None = None, batches: int = 40) -> dict:
    """Export batches of 8 spans into ``directory`` until and beyond a failed write; a
    failed batch is retried once, as the export queue would (after deleting ``ballast``,
    which frees room on a full disk). Returns what was reported and what can be read."""
    exporter = local_exporter(Path(directory), max_file_bytes=KIB**2, max_total_bytes=4 * KIB**2)
    exported: list[str] = []
    failures = retried = 0
    for b in range(batches):
        spans = _batch(8, 8 * b)
        ok = exporter.export(spans).name == "SUCCESS"
        if not ok:
            failures += 1
            if ballast and os.path.exists(ballast):
                os.unlink(ballast)
            ok = exporter.export(spans).name == "SUCCESS"
            retried += ok
        if ok:
            exported += [s.name for s in spans]
    exporter.shutdown()
    store = Store(directory)
    readable = [s.name for s in store.spans()]
    tails = [f.path.read_bytes()[-1:] for f in list_files(directory) if f.size]
    return {
        "failures": failures,
        "retried": retried,
        "exported": exported,
        "readable": readable,
        "skipped": store.skipped,
        "tails": [t.decode() for t in tails],
    }


def _fill_under_file_size_limit(directory: Path, limit: int) -> dict:
    """``fill`` in a child process whose files cannot grow past ``limit`` bytes."""
    import resource
    import signal

    def limited() -> None:  # in the child, before exec: SIG_IGN and the limit are inherited
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {
        **os.environ,
        "PYTHONDONTWRITEBYTECODE": "1",  # a .pyc written at import would hit the limit
        "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent)]),
    }
    code = f"import json, test_local_disk_full as t; print(json.dumps(t.fill({str(directory)!r})))"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        preexec_fn=limited,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@contextlib.contextmanager
def _small_disk(path: Path, size: str = "64k") -> Iterator[bool]:
    """A tmpfs of ``size`` mounted at ``path``; yields False when mounting is not possible."""
    path.mkdir()
    if sys.platform != "linux" or os.geteuid() != 0:
        yield False
        return
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        yield False
        return
    try:
        yield True
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _check(result: dict) -> None:
    assert result["failures"] >= 1  # the limit was reached
    # Every batch reported exported can be read back, in order, and nothing else.
    assert result["readable"] == result["exported"]
    assert result["skipped"] == 0
    assert all(tail == "\n" for tail in result["tails"])  # no file ends in a fragment


def test_a_full_disk_leaves_whole_lines_and_a_retried_batch_is_readable(tmp_path: Path) -> None:
    with _small_disk(tmp_path / "disk") as mounted:
        if mounted:
            ballast = tmp_path / "disk" / "ballast"
            ballast.write_bytes(b"\0" * 16 * KIB)
            result = fill(str(tmp_path / "disk" / "store"), str(ballast), batches=20)
            # The batch that met the full disk went through on its retry, once the ballast
            # was deleted; later batches filled the disk again and failed for good.
            assert result["retried"] >= 1
        else:
            if not hasattr(os, "fork"):
                missing("a small filesystem or a file size limit")
            result = _fill_under_file_size_limit(tmp_path / "store", 24 * KIB)
    _check(result)


def test_a_file_size_limit_fails_one_write_not_every_later_one(tmp_path: Path) -> None:
    if not hasattr(os, "fork") or sys.platform == "win32":
        missing("RLIMIT_FSIZE")
    result = _fill_under_file_size_limit(tmp_path / "store", 24 * KIB)
    _check(result)
    # The file that could not grow was rotated: the batch's retry and all later ones went
    # into a fresh file, so every batch ends up exported.
    assert len(result["exported"]) == 40 * 8
    assert len([f for f in list_files(tmp_path / "store") if f.rotated]) >= 1
    for f in list_files(tmp_path / "store"):
        assert f.size <= 24 * KIB


@pytest.mark.parametrize("partial", [True, False])
def test_a_failed_write_is_cut_off_and_reported_failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, partial: bool
) -> None:
    """A write that fails after some bytes, or at once, on the second line of a batch:
    the batch is a failure and the file holds what it held before."""
    exporter = local_exporter(tmp_path, max_file_bytes=KIB**2, max_line_bytes=2 * KIB)
    assert exporter.export(_batch(2, 0)).name == "SUCCESS"
    before = (tmp_path / "traces.jsonl").read_bytes()
    real_write = os.write
    calls = []

    def failing_write(fd: int, data: bytes) -> int:
        calls.append(len(data))
        if len(calls) == 2 and partial:
            return real_write(fd, bytes(data)[:100])
        if len(calls) >= 2:
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", failing_write)
    assert exporter.export(_batch(20, 100)).name == "FAILURE"  # several lines
    monkeypatch.setattr(os, "write", real_write)
    files = list_files(tmp_path, "traces")
    assert b"".join(f.path.read_bytes() for f in files) == before
    assert exporter.export(_batch(1, 500)).name == "SUCCESS"
    store = Store(tmp_path)
    assert [s.name for s in store.spans()] == ["span-00000", "span-00001", "span-00500"]
    assert store.skipped == 0


def test_metric_exports_to_the_store_are_counted_once_in_data_points(tmp_path: Path) -> None:
    """``metrics.exported`` counts the data points written, as for every metric exporter;
    the local exporter adds no count of its own."""
    import sfumato
    from sfumato import metrics

    with sfumato.configure(
        None, backend="local", backend_options={"directory": str(tmp_path)}
    ) as telemetry:
        metrics.counter("disk.writes").add(1, {"kind": "a"})
        metrics.counter("disk.writes").add(1, {"kind": "b"})
        assert telemetry.force_flush(10)
    stats = telemetry.stats()  # after shutdown, which exported once more
    points = 0
    for line in (tmp_path / "metrics.jsonl").read_text().splitlines():
        for rm in json.loads(line)["resourceMetrics"]:
            for sm in rm["scopeMetrics"]:
                for metric in sm["metrics"]:
                    for kind in ("sum", "gauge", "histogram", "exponentialHistogram"):
                        points += len(metric.get(kind, {}).get("dataPoints", []))
    assert points >= 2
    assert stats["metrics.exported"] == points
    assert stats["metrics.dropped.export_failed"] == 0
