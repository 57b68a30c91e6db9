"""sfumato's OTLP encoders against the SDK's, per span and per log record, in one run.

A batch of 512 ended spans of the reference narrative (from sfumato's tracer) and 512 log
records is encoded again and again, the two encoders interleaved in rounds; the median of
the per-round ratios is judged. Protobuf: ``plugins/otlp_encoding.encode_spans`` against the
SDK's ``encode_spans(batch).SerializeToString()`` (what its OTLP exporters send). OTLP/JSON
(the local store's lines): ``encode_spans_json`` against the SDK's message through
``MessageToDict`` and ``json.dumps`` (``plugins/local/otlp_json.to_line``, the local store's
path before). The targets: spans to protobuf, and spans and log records to OTLP/JSON, at
least 6x; log records to protobuf are reported (the SDK's log encoder is its lighter one).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any

from harness import api_narrative, interleaved, results
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans as sdk_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from sfumato._otel import LogRecord, ReadableLogRecord, SeverityNumber
from sfumato._otel import encode_logs as sdk_logs
from sfumato._tracer import tracer_provider_class
from sfumato.plugins.local.otlp_json import to_line
from sfumato.plugins.otlp_encoding import (
    encode_logs,
    encode_logs_json,
    encode_spans,
    encode_spans_json,
)

LIMIT = 6.0
LIMITED = ("spans, protobuf", "spans, OTLP/JSON", "logs, OTLP/JSON")
BATCH = 512


def span_batch(size: int = BATCH) -> list[Any]:
    """``size`` ended spans of the reference narrative, from sfumato's tracer."""
    kept = InMemorySpanExporter()
    provider = tracer_provider_class()(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(SimpleSpanProcessor(kept))
    tracer = provider.get_tracer("bench")
    while len(kept.get_finished_spans()) < size:
        api_narrative(tracer)
    provider.shutdown()
    return list(kept.get_finished_spans())[:size]


def log_batch(size: int = BATCH) -> list[Any]:
    """``size`` log records as a service's logging makes them: a message, a severity, the
    span they were written in and two attributes."""
    resource = Resource.create({"service.name": "bench"})
    scope = InstrumentationScope("bench.logs")
    return [
        ReadableLogRecord(
            log_record=LogRecord(
                timestamp=1_700_000_000_000_000_000 + i,
                observed_timestamp=1_700_000_000_000_000_000 + i,
                trace_id=0x5B8EFFF798038103D269B633813FC60C + i,
                span_id=0xEEE19B7EC3C1B174 + i,
                severity_text="INFO",
                severity_number=SeverityNumber.INFO,
                body=f"act draft done in {i} ms",
                attributes={"narrative.type": "curation", "code.function.name": "run"},
            ),
            resource=resource,
            instrumentation_scope=scope,
        )
        for i in range(size)
    ]


def _ratio(ours: Callable[[], Any], theirs: Callable[[], Any], rounds: int) -> dict[str, float]:
    r = interleaved({"ours": ours, "theirs": theirs}, rounds=rounds, calls=3)
    ratios = [b / a for a, b in zip(r.samples["ours"], r.samples["theirs"], strict=True)]
    return {
        "ours_us": statistics.median(r.samples["ours"]) / BATCH * 1e6,
        "theirs_us": statistics.median(r.samples["theirs"]) / BATCH * 1e6,
        "speedup": statistics.median(ratios),
    }


def measure_encoders(rounds: int = 12) -> dict[str, dict[str, float]]:
    spans, logs = span_batch(), log_batch()
    return {
        "spans, protobuf": _ratio(
            lambda: encode_spans(spans), lambda: sdk_spans(spans).SerializeToString(), rounds
        ),
        "spans, OTLP/JSON": _ratio(
            lambda: encode_spans_json(spans), lambda: to_line(sdk_spans(spans), "traces"), rounds
        ),
        "logs, protobuf": _ratio(
            lambda: encode_logs(logs), lambda: sdk_logs(logs).SerializeToString(), rounds
        ),
        "logs, OTLP/JSON": _ratio(
            lambda: encode_logs_json(logs), lambda: to_line(sdk_logs(logs), "logs"), rounds
        ),
    }


def test_encoders_against_the_sdks(benchmark: Any) -> None:
    table = measure_encoders()
    results["encoders"] = table
    benchmark.extra_info.update({k: v["speedup"] for k, v in table.items()})
    spans = span_batch()
    benchmark.pedantic(lambda: encode_spans(spans), rounds=5, iterations=10)
    slow = {k: round(table[k]["speedup"], 2) for k in LIMITED if table[k]["speedup"] < LIMIT}
    assert not slow, f"under {LIMIT}x the SDK's encoder: {slow}"
