"""Carriers between pipeline stages: continue the trace, or start a new one linked back."""

from __future__ import annotations

import json

import pytest
import sfumato
from botticelli_support import configure_memory, finished_spans
from opentelemetry import trace as trace_api
from opentelemetry.trace import StatusCode
from sfumato.plugins.botticelli import (
    act,
    continue_from,
    extract_context,
    inject_context,
    linked_to,
    narrative,
)
from sfumato.plugins.botticelli._context import current_narrative_type
from sfumato.plugins.botticelli.propagation import link_from, pending_links, span_context_of


class PostingError(RuntimeError):
    pass


def test_posting_failure_leads_back_to_its_generation(telemetry: sfumato.Telemetry) -> None:
    rows: list[str] = []  # a "database": content stored with its carrier as JSON
    with narrative("content_generation", "write") as generation, act("draft"):
        rows.append(json.dumps({"text": "hello", "carrier": inject_context()}))

    row = json.loads(rows[0])
    assert set(row["carrier"]) >= {"traceparent", "baggage"}
    with continue_from(row["carrier"]), narrative("curation", "review"):
        assert current_narrative_type() == "curation"
        row["carrier"] = inject_context()  # curation hands on its own position in the trace

    with pytest.raises(PostingError), linked_to(row["carrier"]), narrative("posting", "publish"):
        raise PostingError("platform said 503")

    spans = {s.name: s for s in finished_spans(telemetry)}
    gen_root = spans["narrative write"]
    assert gen_root.context.trace_id == generation.span.get_span_context().trace_id
    curation = spans["narrative review"]
    posting = spans["narrative publish"]
    # Curation continues the generation's trace, as a child of the span that stored the row.
    assert curation.context.trace_id == gen_root.context.trace_id
    assert (
        curation.parent is not None
        and curation.parent.span_id == spans["act draft"].context.span_id
    )
    assert curation.parent.is_remote
    # Posting is a trace of its own, linked to curation, in the generation's trace.
    assert posting.parent is None
    assert posting.context.trace_id != gen_root.context.trace_id
    assert posting.status.status_code is StatusCode.ERROR
    assert len(posting.links) == 1
    link = posting.links[0].context
    assert link.trace_id == gen_root.context.trace_id
    assert link.span_id == curation.context.span_id
    # Children of the posting root do not repeat the link.
    assert all(not s.links for s in spans.values() if s is not posting)


def test_baggage_carries_the_narrative_type_to_the_next_stage(
    telemetry: sfumato.Telemetry,
) -> None:
    with narrative("research", "look"):
        carrier = inject_context()
    assert "narrative.type=research" in carrier["baggage"]
    assert current_narrative_type() is None
    with continue_from(carrier):
        assert current_narrative_type() == "research"
        with act("followup"):
            pass
    followup = next(s for s in finished_spans(telemetry) if s.name == "act followup")
    assert followup.attributes["narrative.type"] == "research"


def test_tracestate_survives_the_carrier() -> None:
    handle = configure_memory()
    try:
        carrier = {
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "tracestate": "ot=th:8,vendor=x",
        }
        span_context = span_context_of(carrier)
        assert span_context is not None
        assert span_context.trace_state.get("vendor") == "x"
        assert span_context.trace_state.get("ot") == "th:8"
        with continue_from(carrier):
            again = inject_context()
        assert again["traceparent"] == carrier["traceparent"]
        assert again["tracestate"] == carrier["tracestate"]
    finally:
        handle.shutdown()


@pytest.mark.parametrize("carrier", [None, {}, {"traceparent": "garbage"}, {"baggage": "%%%"}])
def test_bad_carriers_give_a_fresh_root_and_no_error(
    telemetry: sfumato.Telemetry, carrier: dict[str, str] | None
) -> None:
    assert span_context_of(carrier) is None
    assert link_from(carrier) is None
    extract_context(carrier)
    with continue_from(carrier), narrative("curation", "a"):
        pass
    with linked_to(carrier), narrative("posting", "b"):
        assert not trace_api.get_current_span().get_span_context().is_remote
    spans = finished_spans(telemetry)
    assert [s.parent for s in spans] == [None, None]
    assert all(not s.links for s in spans)


def test_pending_links_only_for_a_new_root(telemetry: sfumato.Telemetry) -> None:
    with narrative("content_generation", "g"):
        carrier = inject_context()
    with linked_to(carrier, carrier):
        assert len(pending_links()) == 2
        with narrative("posting", "p"):
            assert pending_links() == ()
    assert pending_links() == ()
