"""narrative(), act(), llm_call() and parse_json(): span names, attributes at start, errors,
the decorator and async forms, and the narrative type inherited through the context."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest
import sfumato
from botticelli_support import configure_memory, finished_spans, metric_points, point_sum
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, StatusCode
from opentelemetry.util.types import Attributes
from sfumato.plugin import SamplerPlugin
from sfumato.plugins.botticelli import act, llm_call, narrative, parse_json
from sfumato.plugins.botticelli._context import current_narrative_type

SEEN: list[tuple[str, dict[str, Any], str | None]] = []


class RecordingSampler(Sampler):
    """Keeps everything; remembers what each span looked like when the decision was made."""

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        SEEN.append((name, dict(attributes or {}), current_narrative_type(parent_context)))
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)

    def get_description(self) -> str:
        return "RecordingSampler"


class RecordingSamplerPlugin(SamplerPlugin):
    def build(self, options: Any, context: Any) -> Sampler:
        return RecordingSampler()


def by_name(spans: list[ReadableSpan]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}


def test_a_narrative_with_acts_and_an_llm_call(telemetry: sfumato.Telemetry) -> None:
    with narrative("content_generation", "daily_post", attributes={"bot.topic": "cats"}) as run:
        with act("draft"):
            with llm_call("model-a") as call:
                call.record_tokens(120, 30)
            data = parse_json('{"title": "x"}')
        with act("polish"), llm_call("model-b") as call:
            call.record_tokens(10, 5)
    assert data == {"title": "x"}
    assert run.tokens == 165
    spans = by_name(finished_spans(telemetry))
    assert set(spans) == {
        "narrative daily_post",
        "act draft",
        "llm model-a",
        "json.parse",
        "act polish",
        "llm model-b",
    }
    root = spans["narrative daily_post"]
    assert root.parent is None
    assert root.attributes["narrative.type"] == "content_generation"
    assert root.attributes["narrative.name"] == "daily_post"
    assert root.attributes["bot.topic"] == "cats"
    assert root.attributes["bot.tokens.used"] == 165
    draft = spans["act draft"]
    assert draft.parent.span_id == root.context.span_id
    assert draft.attributes["narrative.act"] == "draft"
    assert draft.attributes["narrative.type"] == "content_generation"
    llm = spans["llm model-a"]
    assert llm.parent.span_id == draft.context.span_id
    assert llm.attributes["gen_ai.request.model"] == "model-a"
    assert llm.attributes["gen_ai.usage.input_tokens"] == 120
    assert llm.attributes["gen_ai.usage.output_tokens"] == 30
    assert spans["json.parse"].parent.span_id == draft.context.span_id
    assert all(s.context.trace_id == root.context.trace_id for s in spans.values())
    assert all(s.status.status_code is StatusCode.UNSET for s in spans.values())

    found = metric_points(telemetry)
    narr = found["narrative.execution.duration"]
    assert point_sum(narr, **{"narrative.type": "content_generation", "outcome": "success"}) == 1
    acts = found["narrative.act.duration"]
    assert point_sum(acts, **{"narrative.act": "draft"}) == 1
    assert point_sum(acts, **{"narrative.act": "polish"}) == 1
    assert point_sum(found["narrative.json.parse.success"], **{"narrative.act": "draft"}) == 1


def test_attributes_and_narrative_type_are_visible_to_the_sampler_at_start() -> None:
    SEEN.clear()
    handle = configure_memory(sampler={"type": f"{__name__}:RecordingSamplerPlugin"})
    try:
        with narrative("curation", "review"), act("score"), llm_call("m"):
            parse_json("[1]")
    finally:
        handle.shutdown()
    seen = {name: (attrs, ctx_type) for name, attrs, ctx_type in SEEN}
    attrs, ctx_type = seen["narrative review"]
    assert attrs["narrative.type"] == "curation" and attrs["narrative.name"] == "review"
    assert ctx_type == "curation"  # the context handed to the sampler carries it too
    for child in ("act score", "llm m", "json.parse"):
        attrs, ctx_type = seen[child]
        assert attrs["narrative.type"] == "curation", child
        assert ctx_type == "curation", child
    assert seen["act score"][0]["narrative.act"] == "score"
    assert seen["llm m"][0]["gen_ai.request.model"] == "m"


def test_an_error_marks_the_spans_records_the_exception_and_propagates(
    telemetry: sfumato.Telemetry,
) -> None:
    with (
        pytest.raises(json.JSONDecodeError),
        narrative("content_generation", "broken"),
        act("parse"),
    ):
        parse_json('{"truncated": ')
    spans = by_name(finished_spans(telemetry))
    for name in ("narrative broken", "act parse", "json.parse"):
        span = spans[name]
        assert span.status.status_code is StatusCode.ERROR, name
        assert "JSONDecodeError" in (span.status.description or ""), name
        events = [e for e in span.events if e.name == "exception"]
        assert events and events[0].attributes["exception.type"].endswith("JSONDecodeError"), name
    assert spans["json.parse"].attributes["bot.error.kind"] == "json_parse"
    found = metric_points(telemetry)
    assert point_sum(found["narrative.json.parse.failures"], **{"narrative.act": "parse"}) == 1
    narr = found["narrative.execution.duration"]
    assert point_sum(narr, outcome="failure") == 1 and point_sum(narr, outcome="success") == 0
    assert point_sum(found["narrative.act.duration"], outcome="failure") == 1


def test_decorator_sync_and_async(telemetry: sfumato.Telemetry) -> None:
    @narrative("research")
    def research(topic: str) -> str:
        with act("search"):
            return topic.upper()

    @narrative("posting", "publish")
    async def publish(n: int) -> int:
        async with act("send"):
            await asyncio.sleep(0)
            if n < 0:
                raise ValueError("negative")
            return n * 2

    async def main() -> list[int]:
        # Concurrent calls of one decorated coroutine each get their own span.
        return await asyncio.gather(*(publish(i) for i in range(3)))

    assert research("cats") == "CATS"
    assert asyncio.run(main()) == [0, 2, 4]
    with pytest.raises(ValueError, match="negative"):
        asyncio.run(publish(-1))
    assert research.__name__ == "research"

    spans = finished_spans(telemetry)
    roots = [s for s in spans if s.parent is None]
    assert sorted(s.name for s in roots) == ["narrative publish"] * 4 + ["narrative research"]
    for root in roots:
        children = [s for s in spans if s.parent and s.parent.span_id == root.context.span_id]
        assert len(children) == 1, root.name
        assert children[0].attributes["narrative.type"] == root.attributes["narrative.type"]
    failed = [s for s in roots if s.status.status_code is StatusCode.ERROR]
    assert len(failed) == 1 and failed[0].name == "narrative publish"


def test_nested_narratives_restore_the_outer_type(telemetry: sfumato.Telemetry) -> None:
    with narrative("content_generation", "outer"):
        with narrative("research", "inner"), act("look"):
            pass
        with act("after"):
            pass
    spans = by_name(finished_spans(telemetry))
    assert spans["act look"].attributes["narrative.type"] == "research"
    assert spans["act after"].attributes["narrative.type"] == "content_generation"
    assert current_narrative_type() is None


def test_spans_work_before_configure_and_never_raise() -> None:
    with narrative("content_generation", "unconfigured") as run, act("a"), llm_call("m") as call:
        call.record_tokens(1, 2)
    assert run.tokens == 3


def test_the_samplers_context_variable_holds_the_type_inside_a_narrative() -> None:
    from sfumato.samplers import narrative_type

    assert narrative_type.get() is None
    with narrative("curation", "c"):
        assert narrative_type.get() == "curation"
        with narrative("posting", "p"):
            assert narrative_type.get() == "posting"
        assert narrative_type.get() == "curation"
    assert narrative_type.get() is None
