"""``sfumato report`` on a store someone else wrote into: bad lines, huge lines, deep
nesting, files that are not files, and escape sequences in names.

Nothing in a store directory stops a report: a bad line is skipped, counted and named by
file and line once at the end; reading takes bounded memory; only regular files are opened;
what is printed from the store carries no control characters.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from local_store_support import provider
from opentelemetry.trace import Status, StatusCode
from receivers import missing
from sfumato.cli import main
from sfumato.plugins.local.report import render_csv, render_text, summarize
from sfumato.plugins.local.store import Store

T0 = 1_700_000_000 * 10**9
MS = 1_000_000
OLD = "traces.20200101T000000.000000000Z.jsonl"  # a rotated file, read before traces.jsonl
# What a terminal would act on: C0 and C1 controls (bar the newline), DEL, bidi overrides.
CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _good_store(directory: Path, names: tuple[str, ...] = ("a", "b")) -> None:
    tracer = provider(directory, service="svc").get_tracer("t")
    for name in names:
        tracer.start_span(name, start_time=T0).end(end_time=T0 + MS)


def _insert_lines(path: Path, at: int, lines: list[bytes]) -> None:
    """Insert raw lines after line ``at`` of ``path``."""
    old = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(old[:at] + [line + b"\n" for line in lines] + old[at:]))


WRONG_SHAPES = [
    b'{"resourceSpans": 5}',
    b"[1, 2, 3]",
    b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"x","startTimeUnixNano":"soon"}]}]}]}',
    b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":{"not":"a string"}}]}]}]}',
    b'{"resourceSpans":[{"resource":{"attributes":[{"key":"k","value":7}]},"scopeSpans":[]}]}',
    b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"y","events":{"a":1}}]}]}]}',
]


def test_lines_of_the_wrong_shape_are_skipped_and_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _good_store(tmp_path)
    _insert_lines(tmp_path / "traces.jsonl", 1, WRONG_SHAPES)
    store = Store(tmp_path)
    summary = summarize(store)
    assert summary.spans == 2 and summary.skipped_lines == len(WRONG_SHAPES)
    assert store.skipped == len(WRONG_SHAPES)
    assert main(["report", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert "2 spans in 2 traces" in out
    lines = ", ".join(f"traces.jsonl:{n}" for n in range(2, 2 + len(WRONG_SHAPES)))
    assert f"skipped {len(WRONG_SHAPES)} bad lines: " in err
    assert all(f"traces.jsonl:{n}" in err for n in range(2, 2 + len(WRONG_SHAPES))), (lines, err)
    assert err.count("skipped") == 1  # once, at the end
    # Every report reads the same way and names the same lines.
    for report in ("failures", "costs"):
        assert main(["report", report, str(tmp_path)]) == 0
        assert "traces.jsonl:2" in capsys.readouterr().err


def test_deep_nesting_is_a_bad_line_not_a_recursion_error(tmp_path: Path) -> None:
    _good_store(tmp_path)
    deep = [b"[" * 200_000 + b"]" * 200_000, b'{"resourceSpans":' + b"[" * 200_000]
    value = b'{"stringValue":"v"}'
    for _ in range(3000):  # nested attribute values, within what the JSON parser takes
        value = b'{"arrayValue":{"values":[' + value + b"]}}"
    deep.append(
        b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"deep","attributes":[{"key":"k",'
        b'"value":' + value + b"}]}]}]}]}"
    )
    _insert_lines(tmp_path / "traces.jsonl", 1, deep)
    store = Store(tmp_path)
    assert [s.name for s in store.spans()] == ["a", "b"]
    assert store.skipped == 3
    assert "traces.jsonl:2" in store.skipped_text()


def test_a_line_over_the_limit_is_skipped_without_being_held_in_memory(tmp_path: Path) -> None:
    _good_store(tmp_path, ("a",))
    with open(tmp_path / OLD, "wb") as f:  # 20 MiB in one line, then a good one
        f.write(b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"name":"')
        for _ in range(20):
            f.write(b"x" * 1024**2)
        f.write(b'"}]}]}]}\n')
        f.write((tmp_path / "traces.jsonl").read_bytes().replace(b'"name":"a"', b'"name":"z"'))
    store = Store(tmp_path, max_line_bytes=64 * 1024)
    tracemalloc.start()
    try:
        names = [s.name for s in store.spans()]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert names == ["z", "a"]
    assert store.skipped == 1
    assert f"{OLD}:1 (longer than 64 KiB)" in store.skipped_text()
    assert peak < 4 * 1024**2, peak
    # A line at the limit is read; one byte longer is not (both good lines have this length).
    line = (tmp_path / "traces.jsonl").read_bytes().rstrip(b"\n")
    assert len(list(Store(tmp_path, max_line_bytes=len(line)).spans())) == 2
    assert len(list(Store(tmp_path, max_line_bytes=len(line) - 1).spans())) == 0


_HOSTILE_FILES = r"""
import json, sys
from pathlib import Path
from sfumato.plugins.local.files import StoreFile
from sfumato.plugins.local.report import summarize
from sfumato.plugins.local.store import Store

directory = Path(sys.argv[1])
store = Store(directory)
summary = summarize(store)
# The same files handed to the reader as if the listing had let them through (replaced
# between listing and reading): opening them is what must refuse them.
sneaky = Store(directory)
real = sneaky.files("traces")
sneaky.files = lambda signal=None: [  # type: ignore[method-assign]
    StoreFile(directory / name, "traces", None, 0) for name in sys.argv[2:]
] + real
names = [s.name for s in sneaky.spans()]
print(json.dumps({"spans": summary.spans, "files": summary.files, "names": names,
                  "listed": store.skipped_text(), "opened": sneaky.skipped_text()}))
"""


def test_fifos_and_symlinks_are_not_read(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        missing("os.mkfifo (FIFOs are POSIX)")
    _good_store(tmp_path / "store")
    fifo = tmp_path / "store" / OLD
    os.mkfifo(fifo)
    (tmp_path / "store" / "logs.jsonl").symlink_to("/dev/zero")
    (tmp_path / "store" / "metrics.jsonl").symlink_to(tmp_path / "store" / "traces.jsonl")

    def limited() -> None:  # a reader that regressed fails here rather than eat the machine
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))

    done = subprocess.run(
        [sys.executable, "-c", _HOSTILE_FILES, str(tmp_path / "store"), OLD, "logs.jsonl"],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limited,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["spans"] == 2 and result["files"] == 1
    assert result["names"] == ["a", "b"]
    for text in (result["listed"], result["opened"]):
        assert f"{OLD} (not a regular file)" in text
        assert "logs.jsonl (not a regular file)" in text
    assert "metrics.jsonl (not a regular file)" in result["listed"]


def _hostile_names_store(directory: Path) -> None:
    tracer = provider(directory, service="svc\x1b]0;title\x07").get_tracer("t")
    span = tracer.start_span(
        "clear\x1b[2J\x1b[31mred\u202eevil\x9b1m\rback",
        start_time=T0,
        attributes={"bot.topic": "t\x07"},
    )
    span.set_status(Status(StatusCode.ERROR, "boom\x1b[0m\nsecond line"))
    span.end(end_time=T0 + MS)
    call = tracer.start_span(
        "llm call",
        start_time=T0,
        attributes={"gen_ai.request.model": "m\x1b[5m", "gen_ai.usage.input_tokens": 3},
    )
    call.end(end_time=T0 + MS)


def test_control_characters_from_the_store_are_escaped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _hostile_names_store(tmp_path)
    _insert_lines(tmp_path / "traces.jsonl", 1, [b"not json"])
    (tmp_path / "traces.2020\x1b[2J.jsonl").write_bytes(b"")  # not a store file name anyway
    outputs = []
    for argv in (
        ["report", str(tmp_path)],
        ["report", str(tmp_path), "--csv"],
        ["report", "failures", str(tmp_path)],
        ["report", "costs", str(tmp_path)],
        ["report", "costs", str(tmp_path), "--csv"],
        ["report", "compare", str(tmp_path), str(tmp_path)],
    ):
        main(argv)
        out, err = capsys.readouterr()
        outputs.append(out + err)
    for text in outputs:
        assert not CONTROL.search(text), repr(text)
    assert r"clear\x1b[2J\x1b[31mred\u202eevil\x9b1m\x0dback" in outputs[0]
    assert r"svc\x1b]0;title\x07" in outputs[0]
    assert r"m\x1b[5m" in outputs[3]
    summary = summarize(tmp_path)
    assert not CONTROL.search(render_text(summary) + render_csv(summary))
    # JSON keeps the data exact (its escapes are JSON's own).
    main(["report", str(tmp_path), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert "clear\x1b[2J\x1b[31mred\u202eevil\x9b1m\rback" in [
        n["name"] for n in data["span_names"]
    ]
