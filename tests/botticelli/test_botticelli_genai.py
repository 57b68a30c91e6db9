"""The LLM-call helper under OpenTelemetry's GenAI semantic conventions: off by default (the
plan's ``llm <model>`` span), on with ``OTEL_SEMCONV_STABILITY_OPT_IN`` holding
``gen_ai_latest_experimental`` as the contrib instrumentations read it; message content only
when ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` asks for it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import sfumato
from botticelli_support import configure_memory, finished_spans, metric_points, point_sum
from opentelemetry.trace import SpanKind, StatusCode
from sfumato.plugins.botticelli import act, llm_call, narrative
from sfumato.plugins.botticelli.metrics import (
    GENAI_DURATION_BUCKETS,
    GENAI_TOKEN_BUCKETS,
)
from sfumato.plugins.local.costs import costs
from sfumato.plugins.local.store import SpanRecord

OPT_IN = "OTEL_SEMCONV_STABILITY_OPT_IN"
CONTENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
# The buckets the GenAI metric conventions document (and opentelemetry-util-genai uses).
DOCUMENTED_DURATION = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24]
DOCUMENTED_DURATION += [20.48, 40.96, 81.92]
DOCUMENTED_TOKENS = [4**n for n in range(14)]


@pytest.fixture
def genai(monkeypatch: pytest.MonkeyPatch) -> Iterator[sfumato.Telemetry]:
    monkeypatch.setenv(OPT_IN, "http, gen_ai_latest_experimental")
    handle = configure_memory()
    try:
        yield handle
    finally:
        handle.shutdown()


def run_one(fail: bool = False) -> None:
    with narrative("content_generation", "daily_post"), act("draft"):
        try:
            with llm_call("gpt-4o-mini", provider="openai") as call:
                call.record_tokens(120, 30)
                call.record_messages("write about cats", "cats are great")
                if fail:
                    raise TimeoutError("the model did not answer")
        except TimeoutError:
            pass


def by_name(handle: sfumato.Telemetry) -> dict[str, object]:
    return {span.name: span for span in finished_spans(handle)}


def test_plan_names_by_default(telemetry: sfumato.Telemetry) -> None:
    run_one()
    spans = by_name(telemetry)
    assert set(spans) == {"narrative daily_post", "act draft", "llm gpt-4o-mini"}
    llm = spans["llm gpt-4o-mini"]
    assert llm.kind is SpanKind.INTERNAL  # type: ignore[attr-defined]
    assert "gen_ai.operation.name" not in llm.attributes  # type: ignore[attr-defined]
    assert llm.attributes["gen_ai.usage.input_tokens"] == 120  # type: ignore[attr-defined]
    found = metric_points(telemetry)
    assert "gen_ai.client.operation.duration" not in found
    assert "gen_ai.client.token.usage" not in found
    assert "narrative.act.duration" in found


def test_genai_span_name_kind_and_attributes(genai: sfumato.Telemetry) -> None:
    run_one()
    spans = by_name(genai)
    # The narrative and the act keep the plan's names; the call takes the convention's.
    assert set(spans) == {"narrative daily_post", "act draft", "chat gpt-4o-mini"}
    call = spans["chat gpt-4o-mini"]
    assert call.kind is SpanKind.CLIENT  # type: ignore[attr-defined]
    attributes = call.attributes  # type: ignore[attr-defined]
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.usage.input_tokens"] == 120
    assert attributes["gen_ai.usage.output_tokens"] == 30
    assert attributes["narrative.type"] == "content_generation"
    assert call.parent.span_id == spans["act draft"].context.span_id  # type: ignore[attr-defined]


def test_genai_metrics_with_their_documented_buckets(genai: sfumato.Telemetry) -> None:
    run_one()
    run_one(fail=True)
    found = metric_points(genai)
    duration = found["gen_ai.client.operation.duration"]
    assert duration.unit == "s"
    assert list(GENAI_DURATION_BUCKETS) == DOCUMENTED_DURATION
    assert list(GENAI_TOKEN_BUCKETS) == DOCUMENTED_TOKENS
    for point in duration.data.data_points:
        assert list(point.explicit_bounds) == DOCUMENTED_DURATION
    common = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
    }
    assert point_sum(duration, **common) == 2
    assert point_sum(duration, **{"error.type": "TimeoutError"}) == 1
    tokens = found["gen_ai.client.token.usage"]
    assert tokens.unit == "{token}"
    for point in tokens.data.data_points:
        assert list(point.explicit_bounds) == DOCUMENTED_TOKENS
    inputs = [p for p in tokens.data.data_points if p.attributes["gen_ai.token.type"] == "input"]
    outputs = [p for p in tokens.data.data_points if p.attributes["gen_ai.token.type"] == "output"]
    assert sum(p.sum for p in inputs) == 240 and sum(p.count for p in inputs) == 2
    assert sum(p.sum for p in outputs) == 60
    assert inputs[0].attributes["gen_ai.request.model"] == "gpt-4o-mini"
    # The plan's metrics are recorded as before, under their own names.
    assert point_sum(found["narrative.act.duration"]) == 2


def test_a_failed_call_is_marked_as_the_convention_says(genai: sfumato.Telemetry) -> None:
    run_one(fail=True)
    call = by_name(genai)["chat gpt-4o-mini"]
    assert call.status.status_code is StatusCode.ERROR  # type: ignore[attr-defined]
    assert call.attributes["error.type"] == "TimeoutError"  # type: ignore[attr-defined]


def test_other_operations_and_no_provider(genai: sfumato.Telemetry) -> None:
    with narrative("research"):
        with llm_call("text-embedding-3-small", operation="embeddings"):
            pass
        with llm_call("local-model"):
            pass
    spans = by_name(genai)
    assert (
        spans["embeddings text-embedding-3-small"].attributes[  # type: ignore[attr-defined]
            "gen_ai.operation.name"
        ]
        == "embeddings"
    )
    local = spans["chat local-model"].attributes  # type: ignore[attr-defined]
    assert "gen_ai.provider.name" not in local  # not guessed


def test_the_opt_in_is_read_once_per_configuration(monkeypatch: pytest.MonkeyPatch) -> None:
    handle = configure_memory()
    try:
        run_one()
        monkeypatch.setenv(OPT_IN, "gen_ai_latest_experimental")
        run_one()  # read at the first call of this configuration: the plan's names still
        assert {s.name for s in finished_spans(handle)} == {
            "narrative daily_post",
            "act draft",
            "llm gpt-4o-mini",
        }
    finally:
        handle.shutdown()
    handle = configure_memory()
    try:
        run_one()
        assert "chat gpt-4o-mini" in by_name(handle)
    finally:
        handle.shutdown()


def test_message_content_is_off_by_default(genai: sfumato.Telemetry) -> None:
    run_one()
    for span in finished_spans(genai):
        text = json.dumps(dict(span.attributes))
        assert "cats are great" not in text and "write about cats" not in text
        assert "gen_ai.input.messages" not in span.attributes


@pytest.mark.parametrize("value", ["SPAN_ONLY", "span_and_event", "true"])
def test_message_content_on_the_span_when_asked(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(OPT_IN, "gen_ai_latest_experimental")
    monkeypatch.setenv(CONTENT, value)
    handle = configure_memory()
    try:
        run_one()
        call = by_name(handle)["chat gpt-4o-mini"].attributes  # type: ignore[attr-defined]
    finally:
        handle.shutdown()
    assert json.loads(call["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "write about cats"}]}
    ]
    assert json.loads(call["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "cats are great"}],
            "finish_reason": "stop",
        }
    ]


@pytest.mark.parametrize("value", ["NO_CONTENT", "EVENT_ONLY", "false", "nonsense"])
def test_message_content_stays_off_for_other_values(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(OPT_IN, "gen_ai_latest_experimental")
    monkeypatch.setenv(CONTENT, value)
    handle = configure_memory()
    try:
        run_one()
        call = by_name(handle)["chat gpt-4o-mini"].attributes  # type: ignore[attr-defined]
    finally:
        handle.shutdown()
    assert "gen_ai.input.messages" not in call and "gen_ai.output.messages" not in call


def test_the_cost_report_reads_calls_under_either_convention() -> None:
    def record(name: str, attributes: dict[str, object]) -> SpanRecord:
        return SpanRecord(
            service="s",
            scope="x",
            trace_id="1" * 32,
            span_id="2" * 16,
            parent_span_id="",
            name=name,
            kind=1,
            start_ns=0,
            end_ns=1,
            status_code=0,
            status_message="",
            flags=1,
            attributes=attributes,
        )

    usage = {"gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5}
    rows = costs(
        [
            record("llm m1", {"gen_ai.request.model": "m1", **usage}),
            record(
                "chat m1",
                {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m1", **usage},
            ),
            record("act draft", {}),
        ]
    )
    assert [(r.model, r.calls, r.input_tokens) for r in rows] == [("m1", 2.0, 20.0)]
