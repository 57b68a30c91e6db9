"""The simulated bot server: deterministic for a seed, and its true counts agree with what
the in-memory exporters saw."""

from __future__ import annotations

from collections import Counter

import pytest
import sfumato
from botticelli_support import configure_memory, finished_spans, metric_points, point_sum
from opentelemetry.trace import StatusCode
from pydantic import ValidationError
from sfumato.plugins.botticelli.simulator import (
    SimulationConfig,
    SimulationResult,
    reference_narrative,
    reference_narrative_bare,
    run,
)

CONFIG = SimulationConfig(
    seed=7, narratives=60, act_cpu_ms=0.2, json_failure_rate=0.1, posting_failure_rate=0.2
)


def structure(handle: sfumato.Telemetry) -> list[tuple[str, str | None, bool]]:
    """Span names, types and error flags in end order: what a seed must reproduce."""
    return [
        (s.name, s.attributes.get("narrative.type"), s.status.status_code is StatusCode.ERROR)
        for s in finished_spans(handle)
    ]


def run_once(
    config: SimulationConfig,
) -> tuple[SimulationResult, list[tuple[str, str | None, bool]]]:
    handle = configure_memory()
    try:
        result = run(config)
        return result, structure(handle)
    finally:
        handle.shutdown()


def test_same_seed_same_runs_other_seed_other_runs() -> None:
    first, spans_first = run_once(CONFIG)
    second, spans_second = run_once(CONFIG)
    assert first.summary() == second.summary()
    assert [(f.kind, f.narrative_type, f.act) for f in first.failures] == [
        (f.kind, f.narrative_type, f.act) for f in second.failures
    ]
    assert spans_first == spans_second
    other, _ = run_once(CONFIG.model_copy(update={"seed": 8}))
    assert other.summary() != first.summary()


def test_true_counts_match_what_the_exporters_saw(telemetry: sfumato.Telemetry) -> None:
    result = run(CONFIG)
    spans = finished_spans(telemetry)
    assert len(spans) == result.spans
    roots = [s for s in spans if s.name.startswith("narrative ")]
    assert Counter(s.attributes["narrative.type"] for s in roots) == result.narratives_by_type
    failed = [s for s in roots if s.status.status_code is StatusCode.ERROR]
    assert Counter(s.attributes["narrative.type"] for s in failed) == result.failed_by_type
    failed_traces = {format(s.context.trace_id, "032x") for s in failed}
    assert failed_traces == result.failed_trace_ids
    acts = Counter(s.attributes["narrative.act"] for s in spans if s.name.startswith("act "))
    assert acts == result.acts
    assert (
        sum(
            s.attributes.get("gen_ai.usage.input_tokens", 0)
            + s.attributes.get("gen_ai.usage.output_tokens", 0)
            for s in spans
        )
        == result.tokens
    )

    # Every kind of outcome happened, so the comparisons above are not vacuous.
    assert result.failures_by_kind["json_parse"] > 0 and result.failures_by_kind["posting"] > 0
    assert result.approved > 0 and result.rejected > 0 and result.published > 0

    found = metric_points(telemetry)
    runs = found["bot.generation.runs"]
    assert point_sum(runs, outcome="success") == result.generations
    assert point_sum(runs, outcome="failure") == result.generation_failures
    assert point_sum(found["bot.generation.tokens.used"]) == result.tokens
    assert point_sum(found["bot.curation.approved"]) == result.approved
    assert point_sum(found["bot.curation.rejected"]) == result.rejected
    assert point_sum(found["bot.posting.published"]) == result.published
    assert point_sum(found["bot.posting.failed"]) == result.posting_failed
    assert (
        point_sum(found["narrative.json.parse.failures"]) == result.failures_by_kind["json_parse"]
    )
    assert (
        point_sum(found["narrative.json.parse.success"]) + result.failures_by_kind["json_parse"]
        == result.llm_calls
    )
    narratives = found["narrative.execution.duration"]
    for kind, count in result.narratives_by_type.items():
        assert point_sum(narratives, **{"narrative.type": kind}) == count
    assert point_sum(found["narrative.act.duration"]) == sum(result.acts.values())
    assert point_sum(found["api.requests"]) == result.published + result.posting_failed
    assert point_sum(found["database.query.duration"]) > 0
    assert found["database.connection.pool.size"].data.data_points[0].value == CONFIG.pool_size
    assert sum(len(v) for v in result.act_durations.values()) == sum(result.acts.values())


def test_every_posting_failure_links_back_to_its_generation(telemetry: sfumato.Telemetry) -> None:
    result = run(CONFIG)
    spans = finished_spans(telemetry)
    by_trace: dict[str, list] = {}
    for span in spans:
        by_trace.setdefault(format(span.context.trace_id, "032x"), []).append(span)
    postings = [f for f in result.failures if f.kind == "posting"]
    assert postings
    for failure in postings:
        root = next(s for s in by_trace[failure.trace_id] if s.name == "narrative publish_post")
        assert root.status.status_code is StatusCode.ERROR
        linked = {format(link.context.trace_id, "032x") for link in root.links}
        assert linked == {failure.origin_trace_id}
        generation = [
            s for s in by_trace[failure.origin_trace_id] if s.name == "narrative generate_post"
        ]
        assert len(generation) == 1
        assert generation[0].attributes["bot.content.id"] == root.attributes["bot.content.id"]


def test_rates_of_zero_and_one() -> None:
    clean, _ = run_once(
        CONFIG.model_copy(
            update={"json_failure_rate": 0.0, "posting_failure_rate": 0.0, "approval_rate": 1.0}
        )
    )
    assert not clean.failures
    assert clean.published == clean.generations == clean.narratives_by_type["content_generation"]
    broken, _ = run_once(CONFIG.model_copy(update={"json_failure_rate": 1.0}))
    assert broken.generations == 0 and broken.published == 0
    assert broken.failed_by_type == broken.narratives_by_type


def test_config_is_validated() -> None:
    with pytest.raises(ValidationError, match="unknown narrative types"):
        SimulationConfig(mix={"gossip": 1.0})
    with pytest.raises(ValidationError):
        SimulationConfig(posting_failure_rate=1.5)


def test_the_reference_narrative_is_ten_spans(telemetry: sfumato.Telemetry) -> None:
    reference_narrative(cpu_ms=1.0)
    spans = finished_spans(telemetry)
    assert len(spans) == 10
    names = Counter(s.name.split(" ")[0] for s in spans)
    assert names == {"narrative": 1, "act": 3, "llm": 3, "json.parse": 3}
    root = next(s for s in spans if s.parent is None)
    assert all(s.context.trace_id == root.context.trace_id for s in spans)
    reference_narrative_bare(cpu_ms=1.0)
    assert len(finished_spans(telemetry)) == 10  # the bare workload makes no spans


def test_the_simulator_runs_without_telemetry() -> None:
    result = run(SimulationConfig(seed=3, narratives=10, act_cpu_ms=0.0, record_metrics=False))
    assert (
        result.narratives_by_type["content_generation"] + result.narratives_by_type["research"]
        == 10
    )
