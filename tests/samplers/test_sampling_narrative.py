"""per-narrative-type: rates per type, type from context and baggage, first-match rules."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import sfumato
from opentelemetry import baggage
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import SpanKind, Status, StatusCode
from sampling_support import assert_binomial, estimate_tolerance, memory_telemetry, trace_ids
from sfumato.samplers import ADJUSTED_COUNT, POLICY, narrative_type_context
from sfumato.samplers.narrative import PerNarrativeTypeSampler

RATES = {"content_generation": 0.5, "curation": 0.2, "posting": 0.05}


def test_each_type_hits_its_rate() -> None:
    sampler = PerNarrativeTypeSampler.from_rates(RATES, default=0.1)
    n = 20_000
    for i, (kind, p) in enumerate([*RATES.items(), ("unknown", 0.1)]):
        kept = sum(
            sampler.should_sample(
                None, tid, "narrative", attributes={"narrative.type": kind}
            ).decision
            is Decision.RECORD_AND_SAMPLE
            for tid in trace_ids(100 + i, n)
        )
        assert_binomial(kept, n, p, kind)


def test_the_type_comes_from_context_and_from_baggage() -> None:
    sampler = PerNarrativeTypeSampler.from_rates({"a": 1.0}, default=0.0)
    assert sampler.should_sample(None, 5, "x").decision is Decision.DROP
    with narrative_type_context("a"):
        result = sampler.should_sample(None, 5, "x")
        assert result.decision is Decision.RECORD_AND_SAMPLE
        assert result.attributes[POLICY] == "per-narrative-type:a"
    ctx = baggage.set_baggage("narrative.type", "a")
    assert sampler.should_sample(ctx, 5, "x").decision is Decision.RECORD_AND_SAMPLE


def test_children_inherit_the_type_from_a_local_parent_span() -> None:
    with memory_telemetry({"type": "per-narrative-type", "default": 0.0, "rates": {"a": 1.0}}) as (
        t,
        mem,
    ):
        tracer = t.tracer()
        with (
            tracer.start_as_current_span("root", attributes={"narrative.type": "a"}),
            tracer.start_as_current_span("act"),
            tracer.start_as_current_span("llm"),
        ):
            pass
        with tracer.start_as_current_span("untyped"):
            pass
        names = sorted(s.name for s in mem.get_finished_spans())
    assert names == ["act", "llm", "root"]


def test_rules_match_first_by_name_kind_and_attributes() -> None:
    settings = {
        "type": "per-narrative-type",
        "default": 0.0,
        "rates": {"curation": 1.0},
        "rules": [
            {"name": "health*", "rate": 0.0},
            {"kind": "server", "attributes": {"http.route": ["/a", "/b"]}, "rate": 1.0},
            {"attributes": {"narrative.type": "posting"}, "sampler": {"type": "always_on"}},
        ],
    }
    with memory_telemetry(settings) as (t, mem):
        tracer = t.tracer()
        for name, kind, attrs in [
            ("healthcheck", SpanKind.SERVER, {"http.route": "/a"}),  # rule 0: dropped
            ("GET", SpanKind.SERVER, {"http.route": "/b"}),  # rule 1
            ("GET", SpanKind.CLIENT, {"http.route": "/b"}),  # wrong kind: default
            ("post", SpanKind.INTERNAL, {"narrative.type": "posting"}),  # rule 2
            ("curate", SpanKind.INTERNAL, {"narrative.type": "curation"}),  # rates
        ]:
            tracer.start_span(name, kind=kind, attributes=attrs).end()
        kept = [(s.name, s.kind, s.attributes[POLICY]) for s in mem.get_finished_spans()]
    assert kept == [
        ("GET", SpanKind.SERVER, "per-narrative-type:rule1"),
        ("post", SpanKind.INTERNAL, "per-narrative-type:rule2/always_on"),
        ("curate", SpanKind.INTERNAL, "per-narrative-type:curation"),
    ]


def test_a_rule_needs_exactly_one_action() -> None:
    with pytest.raises(sfumato.ConfigError, match="exactly one"):
        sfumato.load_settings(
            backend="none",
            sampler={
                "type": "per-narrative-type",
                "rules": [{"name": "x", "rate": 0.1, "sampler": {"type": "always_on"}}],
            },
        )


def test_10k_narratives_with_2_percent_failures_under_error_always() -> None:
    """The acceptance run: every failed narrative kept, each type at its rate, and the
    adjusted counts of kept narratives estimate the 10k."""
    n, failure_rate = 10_000, 0.02
    rng = random.Random(2024)
    sampler = {
        "type": "error-always",
        "otherwise": {"type": "per-narrative-type", "default": 0.1, "rates": RATES},
    }
    types = list(RATES)
    failed: set[int] = set()
    by_type: Counter[str] = Counter()
    ok_by_type: Counter[str] = Counter()
    with memory_telemetry(sampler, seed=77) as (t, mem):
        tracer = t.tracer()
        for _ in range(n):
            kind = rng.choice(types)
            fail = rng.random() < failure_rate
            by_type[kind] += 1
            with (
                narrative_type_context(kind),
                tracer.start_as_current_span("narrative") as root,
                tracer.start_as_current_span("act") as act,
            ):
                if fail:
                    act.set_status(Status(StatusCode.ERROR))
                    failed.add(root.get_span_context().trace_id)
                else:
                    ok_by_type[kind] += 1
        t.force_flush()  # kept traces wait decision_wait_ms for a late error; a flush ends it
        spans = mem.get_finished_spans()
        stats = t.stats()
    roots = [s for s in spans if s.name == "narrative"]
    kept_ids = {s.context.trace_id for s in roots}
    assert failed <= kept_ids, "every failed narrative is kept"
    assert stats["tail.traces.kept.error"] == len(failed)
    for kind, p in RATES.items():
        kept_ok = sum(
            1
            for s in roots
            if s.context.trace_id not in failed
            and s.attributes[POLICY] == f"per-narrative-type:{kind}"
        )
        assert_binomial(kept_ok, ok_by_type[kind], p, kind)
    estimate = sum(s.attributes[ADJUSTED_COUNT] for s in roots)
    tol = estimate_tolerance({RATES[k]: ok_by_type[k] for k in RATES})
    assert abs(estimate - n) <= tol, (estimate, tol)
    # Nothing sampled out leaves as sampled; every exported span has a weight.
    assert all(s.context.trace_flags.sampled and ADJUSTED_COUNT in s.attributes for s in spans)
    assert len(spans) == 2 * len(roots)


def test_rules_apply_at_local_roots_and_never_split_a_trace() -> None:
    """A rule matching a child span does not decide it alone: the child follows its local
    parent (kept or dropped with it)."""
    settings = {
        "type": "per-narrative-type",
        "default": 0.1,
        "rules": [{"kind": "client", "rate": 1.0}, {"name": "health*", "rate": 0.0}],
    }
    with memory_telemetry(settings, seed=11) as (t, mem):
        tracer = t.tracer()
        for _ in range(1000):
            with tracer.start_as_current_span("narrative"):
                tracer.start_span("call", kind=SpanKind.CLIENT).end()
                tracer.start_span("healthcheck").end()
        spans = mem.get_finished_spans()
    ids = {s.context.span_id for s in spans}
    orphans = [s for s in spans if s.parent is not None and s.parent.span_id not in ids]
    assert orphans == []
    roots = sum(1 for s in spans if s.name == "narrative")
    assert_binomial(roots, 1000, 0.1, "roots at the default rate")
    # Children go with their root: every kept root has its client call and its health
    # check, though the rules alone would keep every call and no health check.
    assert Counter(s.name for s in spans) == {
        "narrative": roots,
        "call": roots,
        "healthcheck": roots,
    }


def test_a_span_scoped_rule_decides_children_too_and_says_so() -> None:
    settings = {
        "type": "per-narrative-type",
        "default": 0.0,
        "rules": [{"name": "audit*", "rate": 1.0, "scope": "span"}],
    }
    with memory_telemetry(settings) as (t, mem):
        tracer = t.tracer()
        with tracer.start_as_current_span("narrative"):
            tracer.start_span("audit.write").end()
            tracer.start_span("other").end()
        kept = [(s.name, s.attributes[POLICY]) for s in mem.get_finished_spans()]
    assert kept == [("audit.write", "per-narrative-type:rule0")]


def test_a_nested_sampler_keeps_its_parent_label() -> None:
    settings = {
        "type": "per-narrative-type",
        "default": 0.0,
        "rates": {"curation": {"type": "ratio", "rate": 1.0}},
    }
    with memory_telemetry(settings) as (t, mem):
        tracer = t.tracer()
        with tracer.start_as_current_span("curate", attributes={"narrative.type": "curation"}):
            tracer.start_span("act").end()
        labels = sorted((s.name, s.attributes[POLICY]) for s in mem.get_finished_spans())
    assert labels == [
        ("act", "per-narrative-type:curation/ratio"),
        ("curate", "per-narrative-type:curation/ratio"),
    ]
