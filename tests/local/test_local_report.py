"""``sfumato report``: counts, errors, percentiles and estimated counts on known stores."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
from local_store_support import provider
from opentelemetry import trace as trace_api
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags
from sfumato.cli import main
from sfumato.plugins.local.report import percentile, render_text, summarize, to_dict

MS = 1_000_000
T0 = 1_700_000_000 * 10**9


def _nearest_rank(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered) - 1e-9)) - 1]


def _write_known_store(directory: Path) -> dict[str, list[int]]:
    """Two services; a root with children of known durations; some errors."""
    rng = random.Random(7)
    durations = {"handle": [], "db.query": []}
    tp = provider(directory, service="api")
    tracer = tp.get_tracer("t")
    for i in range(100):
        start = T0 + i * 1000 * MS
        root_ms = rng.randint(50, 500)
        root = tracer.start_span("handle", start_time=start)
        ctx = trace_api.set_span_in_context(root)
        for j in range(3):
            query_ms = rng.randint(1, 40)
            child = tracer.start_span("db.query", context=ctx, start_time=start + j * MS)
            if i % 25 == 0 and j == 0:
                child.set_status(Status(StatusCode.ERROR, "deadlock detected"))
            child.end(end_time=start + j * MS + query_ms * MS)
            durations["db.query"].append(query_ms * MS)
        if i % 10 == 0:
            root.record_exception(TimeoutError("upstream slow"))
        root.end(end_time=start + root_ms * MS)
        durations["handle"].append(root_ms * MS)
    tp.shutdown()
    worker = provider(directory, service="worker").get_tracer("w")
    for i in range(1, 101):  # durations 1..100 ms exactly
        worker.start_span("job", start_time=T0).end(end_time=T0 + i * MS)
    durations["job"] = [i * MS for i in range(1, 101)]
    return durations


def test_counts_errors_and_percentiles(tmp_path: Path) -> None:
    durations = _write_known_store(tmp_path)
    summary = summarize(tmp_path)
    services = {s.service: s for s in summary.services}
    assert (services["api"].traces, services["api"].spans) == (100, 400)
    assert (services["worker"].traces, services["worker"].spans) == (100, 100)
    assert services["api"].estimated_traces == 100  # no weights: one per root span
    assert summary.traces == 200 and summary.spans == 500
    names = {(n.service, n.name): n for n in summary.names}
    assert names[("api", "db.query")].count == 300
    assert names[("api", "db.query")].errors == 4  # i = 0, 25, 50, 75
    assert names[("api", "handle")].errors == 10  # an exception event counts as an error
    assert services["api"].errors == 14 and summary.errors == 14
    job = names[("worker", "job")].quantiles_ns
    assert job == {"p50": 50 * MS, "p95": 95 * MS, "p99": 99 * MS}
    for key, name in ((("api", "handle")), "handle"), ((("api", "db.query")), "db.query"):
        got = names[key].quantiles_ns
        for label, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
            assert got[label] == _nearest_rank(durations[name], q), (name, label)
    errors = {(g.service, g.name): g for g in summary.error_groups}
    assert errors[("api", "db.query")].messages == {"deadlock detected": 4}
    assert errors[("api", "handle")].messages == {"TimeoutError: upstream slow": 10}


def test_estimated_counts_follow_sampling_weights(tmp_path: Path) -> None:
    tracer = provider(tmp_path, service="svc").get_tracer("t")
    # 5 successful traces kept at 1 in 10, 2 failing traces kept always (weight 1).
    for i in range(7):
        weight = 10 if i < 5 else 1
        root = tracer.start_span(
            "request", attributes={"sampling.adjusted_count": weight}, start_time=T0
        )
        child = tracer.start_span(
            "step",
            context=trace_api.set_span_in_context(root),
            attributes={"sampling.adjusted_count": weight},
            start_time=T0,
        )
        child.end(end_time=T0 + (1 if i < 5 else 100) * MS)
        root.end(end_time=T0 + 2 * MS)
    # A span with no weight counts once; a trace entering from another process is a root.
    remote = SpanContext(0x1234, 0x99, is_remote=True, trace_flags=TraceFlags(1))
    tracer.start_span(
        "request", context=trace_api.set_span_in_context(NonRecordingSpan(remote)), start_time=T0
    ).end(end_time=T0 + MS)
    summary = summarize(tmp_path)
    [service] = summary.services
    assert service.traces == 8 and service.spans == 15
    assert service.estimated_traces == 5 * 10 + 2 + 1
    assert service.estimated_spans == 2 * (5 * 10 + 2) + 1
    names = {n.name: n for n in summary.names}
    assert names["request"].estimated == 53 and names["request"].roots == 8
    assert names["step"].estimated == 52 and names["step"].roots == 0
    # Weighted: the 50 estimated fast steps outweigh the 2 slow ones at every quantile but
    # the highest; unweighted, 2 of 7 spans would make P95 slow.
    assert names["step"].quantiles_ns["p50"] == 1 * MS
    assert names["step"].quantiles_ns["p95"] == 1 * MS
    assert names["step"].quantiles_ns["p99"] == 100 * MS
    text = render_text(summary)
    assert "estimated before sampling: 105 spans, 53 traces" in text


def test_percentile_definition() -> None:
    samples = [(v, 1.0) for v in range(1, 11)]
    assert [percentile(samples, q) for q in (0.1, 0.5, 0.95, 1.0)] == [1, 5, 10, 10]
    assert percentile([(5, 1.0)], 0.99) == 5
    assert (
        percentile([(1, 3.0), (2, 1.0)], 0.75) == 1 and percentile([(1, 3.0), (2, 1.0)], 0.76) == 2
    )
    with pytest.raises(ValueError):
        percentile([], 0.5)


def test_report_reads_rotated_files_too(tmp_path: Path) -> None:
    tp = provider(tmp_path, service="svc", max_file_bytes=4096, max_total_bytes=1024 * 1024)
    tracer = tp.get_tracer("t")
    for _ in range(30):
        tracer.start_span("s", start_time=T0).end(end_time=T0 + MS)
    summary = summarize(tmp_path)
    assert summary.files > 1 and summary.spans == 30


def test_cli_text_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_known_store(tmp_path)
    assert main(["report", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    job = next(line for line in lines if line.split()[:2] == ["worker", "job"])
    assert job.split()[2:] == ["100", "0", "50.0ms", "95.0ms", "99.0ms"]
    assert any("deadlock detected" in line for line in lines)
    assert "500 spans in 200 traces" in text
    assert main(["report", "summary", str(tmp_path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data == json.loads(json.dumps(to_dict(summarize(tmp_path))))
    job_row = next(r for r in data["span_names"] if r["name"] == "job")
    assert (job_row["p50_ms"], job_row["p95_ms"], job_row["p99_ms"]) == (50.0, 95.0, 99.0)


def test_cli_default_directory_and_missing_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["report"]) == 1
    assert "no local store at .sfumato" in capsys.readouterr().err
    tracer = provider(tmp_path / ".sfumato", service="here").get_tracer("t")
    tracer.start_span("x").end()
    assert main(["report"]) == 0
    assert "1 span in 1 trace" in capsys.readouterr().out


def test_cli_reads_the_store_directory_from_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SFUMATO_CONFIG", raising=False)
    _write_known_store(tmp_path / "store")
    config = tmp_path / "app.toml"
    config.write_text(
        '[telemetry]\nbackend = "local"\n[telemetry.backend_options]\ndirectory = "store"\n'
    )
    assert main(["report", "-c", str(config)]) == 0
    assert "500 spans in 200 traces" in capsys.readouterr().out
    monkeypatch.setenv("SFUMATO_CONFIG", str(config))
    assert main(["report", "failures"]) == 0
    assert main(["report"]) == 0
    assert "500 spans in 200 traces" in capsys.readouterr().out
