"""Head rules (``rules``), as Datadog's: first match on a new trace's root by span name,
start attributes, service and resource; a rate and a per-rule ``max_per_second``; children
follow their parent; span rules keep single spans of dropped traces, marked and counted.
Rates and caps are checked with binomial tolerances on seeded trace ids."""

from __future__ import annotations

from typing import Any

import pytest
import sfumato
from opentelemetry import trace
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import SpanContext, TraceFlags
from sampling_support import assert_binomial, trace_ids
from sfumato import ConfigError
from sfumato._threshold import adjusted_count
from sfumato.samplers import ADJUSTED_COUNT, POLICY
from sfumato.samplers.head_rules import HeadRule, SpanRule, _Compiled

SAMPLED = Decision.RECORD_AND_SAMPLE


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def configure(sampler: dict[str, Any], **more: Any) -> Any:
    return sfumato.configure(
        backend="none",
        service_name="shop-api",
        environment="prod-eu",
        exporters=[{"type": "memory"}],
        metrics={"enabled": False},
        logs={"enabled": False},
        sampler={"type": "rules", **sampler},
        **more,
    )


def decide(handle: Any, name: str, tid: int, attributes: dict[str, Any] | None = None) -> Any:
    return handle.sampler.sample_span(None, None, tid, name, None, attributes, None)


def test_the_first_matching_rule_decides_a_root() -> None:
    handle = configure(
        {
            "rules": [
                {"name": "health", "span": "GET /health*", "sample": 0.0},
                {"name": "checkout", "attributes": {"http.route": "/checkout*"}, "sample": 1},
                {"name": "quarter", "sample": 0.25, "attributes": {"user.tier": "free"}},
            ],
            "otherwise": {"type": "always_off"},
        }
    )
    try:
        n = 4000
        ids = list(trace_ids(3, n))
        assert all(decide(handle, "GET /healthz", t).decision is not SAMPLED for t in ids[:500])
        kept = decide(handle, "GET /checkout/42", ids[0], {"http.route": "/checkout/{id}"})
        assert kept.decision is SAMPLED and kept.attributes[POLICY] == "rules:checkout"
        quarter = [decide(handle, "GET /", t, {"user.tier": "free"}) for t in ids]
        sampled = [r for r in quarter if r.decision is SAMPLED]
        assert_binomial(len(sampled), n, 0.25)
        assert {r.attributes[ADJUSTED_COUNT] for r in sampled} == {4.0}
        assert {r.attributes[POLICY] for r in sampled} == {"rules:quarter"}
        # No rule matched: otherwise (always_off) decides.
        assert decide(handle, "GET /", ids[1], {"user.tier": "gold"}).decision is not SAMPLED
    finally:
        handle.shutdown()


def test_attribute_globs_read_numbers_and_booleans_as_text() -> None:
    rule = _Compiled(
        HeadRule(name="r", attributes={"http.status_code": "5*", "retry": "true"}),
        "rules:r",
        Clock(),
    )
    assert rule.matches("x", {"http.status_code": 503, "retry": True})
    assert not rule.matches("x", {"http.status_code": 404, "retry": True})
    assert not rule.matches("x", {"http.status_code": 503})


def test_children_follow_their_parent() -> None:
    handle = configure({"rules": [{"name": "none", "sample": 0.0}]})
    try:
        sampled = SpanContext(5, 6, True, TraceFlags(TraceFlags.SAMPLED))
        dropped = SpanContext(5, 7, True, TraceFlags(0))
        sampler = handle.sampler
        assert sampler.sample_span(sampled, None, 5, "child", None, None, None).decision is SAMPLED
        assert (
            sampler.sample_span(dropped, None, 5, "child", None, None, None).decision is not SAMPLED
        )
    finally:
        handle.shutdown()


def test_service_and_resource_are_matched_once_against_this_service() -> None:
    handle = configure(
        {
            "rules": [
                {"name": "other", "service": "billing-*", "sample": 0.0},
                {"name": "staging", "resource": {"deployment.environment": "staging"}, "sample": 0},
                {
                    "name": "mine",
                    "service": "shop-*",
                    "resource": {"deployment.environment": "prod*"},
                },
            ],
            "otherwise": {"type": "always_off"},
        }
    )
    try:
        assert [r.name for r in handle.sampler.rules] == ["mine"]
        result = decide(handle, "GET /", 99)
        assert result.decision is SAMPLED and result.attributes[POLICY] == "rules:mine"
    finally:
        handle.shutdown()


def test_max_per_second_lowers_the_rate_and_raises_the_weight() -> None:
    clock = Clock()
    rule = _Compiled(HeadRule(name="busy", max_per_second=50), "rules:busy", clock)
    per_second, seconds = 1000, 5
    ids = trace_ids(17, per_second * seconds)
    kept_by_second: list[list[int]] = []
    for _ in range(seconds):
        kept = []
        for _ in range(per_second):
            clock.now += 1 / per_second
            t = rule.threshold_for(next(ids) & ((1 << 56) - 1))
            if t is not None:
                kept.append(t)
        kept_by_second.append(kept)
    assert len(kept_by_second[0]) == 100  # twice the cap, then refused outright
    estimate = 0.0
    for kept in kept_by_second[1:]:
        assert_binomial(len(kept), per_second, 0.05, "kept in a second")
        estimate += sum(adjusted_count(t) for t in kept)
    assert abs(estimate - 4 * per_second) < 0.25 * 4 * per_second


def test_span_rules_keep_single_spans_of_dropped_traces() -> None:
    handle = configure(
        {
            "rules": [{"name": "none", "sample": 0.0}],
            "span_rules": [{"name": "charges", "span": "charge *"}],
        }
    )
    tracer = trace.get_tracer("shop")
    try:
        with tracer.start_as_current_span("POST /order"):
            with tracer.start_as_current_span("charge card"):
                pass
            with tracer.start_as_current_span("render"):
                pass
        spans = list(handle.exporter("memory").get_finished_spans())
        stats = handle.stats()
    finally:
        handle.shutdown()
    (single,) = spans
    assert single.name == "charge card"
    assert single.attributes[POLICY] == "rules:span:charges"
    assert single.attributes[ADJUSTED_COUNT] == 1.0
    assert single.context.trace_flags.sampled
    assert stats["rules.spans.kept.charges"] == 1


def test_a_span_rule_names_what_it_keeps() -> None:
    with pytest.raises(ValueError, match="give span or attributes"):
        SpanRule(name="all")
    with pytest.raises(ConfigError, match="sample"):
        configure({"rules": [{"name": "x", "sample": 1.5}]})
