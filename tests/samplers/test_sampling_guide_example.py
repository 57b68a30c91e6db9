"""The custom sampler of docs/samplers.md, run as written."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sfumato
from opentelemetry.sdk.trace.sampling import Decision

DOC = Path(__file__).resolve().parents[2] / "docs" / "samplers.md"
MODULE = "sampler_guide_example"


@pytest.fixture
def example_module(tmp_path: Path) -> Iterator[str]:
    text = DOC.read_text()
    match = re.search(r"<!-- example: custom-sampler -->\n```python[^\n]*\n(.*?)```", text, re.S)
    assert match, "docs/samplers.md lost its example"
    (tmp_path / f"{MODULE}.py").write_text(match.group(1))
    sys.path.insert(0, str(tmp_path))
    try:
        yield MODULE
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(MODULE, None)


def test_the_guide_sampler_keeps_by_route_and_slow_traces(example_module: str) -> None:
    sampler = {
        "type": f"{example_module}:ByRoute",
        "rates": {"/orders": 1.0, "/health": 0.0},
        "default": 0.0,
        "keep_over_ms": 50,
    }
    with sfumato.configure(
        backend="none",
        exporters=[{"type": "memory"}],
        sampler=sampler,
        metrics={"enabled": False},
        logs={"enabled": False},
    ) as telemetry:
        tracer = telemetry.tracer()
        tracer.start_span("GET", attributes={"http.route": "/orders"}).end()
        tracer.start_span("GET", attributes={"http.route": "/health"}).end()
        slow = tracer.start_span("GET", attributes={"http.route": "/health"}, start_time=0)
        slow.end(end_time=100_000_000)  # 100 ms
        spans = telemetry.exporter("memory", "traces").get_finished_spans()
        stats = telemetry.stats()
    assert [(s.attributes["http.route"], s.attributes["sampling.policy"]) for s in spans] == [
        ("/orders", "by-route"),
        ("/health", "by-route:kept"),
    ]
    assert spans[1].attributes["sampling.adjusted_count"] == 1.0
    assert spans[1].context.trace_flags.sampled
    assert stats["tail.traces.kept.kept"] == 1


def test_the_guide_sampler_validates_its_options(example_module: str) -> None:
    with pytest.raises(sfumato.ConfigError, match="keep_over_ms"):
        sfumato.load_settings(sampler={"type": f"{example_module}:ByRoute", "keep_over_ms": "soon"})
    module = __import__(example_module)
    s = module.RouteSampler(module.RouteOptions(rates={"/a": 1.0}, default=0.0))
    kept = s.should_sample(None, 12345, "GET", attributes={"http.route": "/a"})
    assert kept.decision is Decision.RECORD_AND_SAMPLE
    dropped = s.should_sample(None, 12345, "GET", attributes={"http.route": "/b"})
    assert dropped.decision is Decision.RECORD_ONLY  # recorded for the trace-end decision
