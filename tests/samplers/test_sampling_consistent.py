"""ratio, parent_based, always_on/off: consistent probability sampling and recorded weights."""

from __future__ import annotations

import math
from typing import Any

import pytest
from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.trace.span import TraceState
from sampling_support import assert_binomial, estimate_tolerance, memory_telemetry, trace_ids
from sfumato._otel import span_context_in
from sfumato._stats import Stats
from sfumato.samplers import ADJUSTED_COUNT, POLICY, SAMPLE_RATE
from sfumato.samplers._consistent import (
    MAX_THRESHOLD,
    adjusted_count,
    parse_ot,
    th_hex,
    threshold,
)
from sfumato.samplers.probability import (
    AlwaysOffSampler,
    AlwaysOnSampler,
    ParentBasedSampler,
    RatioSampler,
)


def _parent(
    trace_id: int, sampled: bool, ts: TraceState | None = None, remote: bool = True
) -> context_api.Context:
    sc = SpanContext(
        trace_id,
        0xABC,
        is_remote=remote,
        trace_flags=TraceFlags(TraceFlags.SAMPLED if sampled else 0),
        trace_state=ts,
    )
    return trace.set_span_in_context(NonRecordingSpan(sc))


def test_threshold_encoding_matches_the_specification() -> None:
    # Examples from the OpenTelemetry tracestate probability sampling specification.
    assert th_hex(threshold(1.0)) == "0"
    assert th_hex(threshold(0.5)) == "8"
    assert th_hex(threshold(0.25)) == "c"
    assert th_hex(threshold(0.01)) == "fd70a"  # 4 digits, and one for the leading f
    assert th_hex(threshold(0.01, precision=14)).startswith("fd70a3d70a3d7")
    assert parse_ot("th:8")[0] == 1 << 55
    assert parse_ot("rv:00000000000001;th:c;x:y") == (0xC << 52, 1, ("x:y",))
    assert adjusted_count(threshold(0.1)) == pytest.approx(10.0, rel=1e-4)  # th:e666
    assert threshold(0.0) == MAX_THRESHOLD


def test_ratio_keeps_its_rate_over_100k_roots_and_the_weights_estimate_the_count() -> None:
    n, p = 100_000, 0.1
    sampler = RatioSampler(p, stats=Stats())
    kept = 0
    weight = 0.0
    for tid in trace_ids(7, n):
        result = sampler.should_sample(None, tid, "root")
        if result.decision is Decision.RECORD_AND_SAMPLE:
            kept += 1
            weight += result.attributes[ADJUSTED_COUNT]
            assert result.trace_state.get("ot") == f"th:{th_hex(threshold(p))}"
            assert result.attributes[SAMPLE_RATE] in (9, 10)  # 9.9994, rounded either way
            assert result.attributes[POLICY] == "ratio"
        else:
            assert result.decision is Decision.DROP
    assert_binomial(kept, n, p)
    assert abs(weight - n) <= estimate_tolerance({p: n})


def test_ratio_decision_is_the_specifications_r_at_least_t() -> None:
    sampler = RatioSampler(0.5)
    low = (1 << 55) - 1  # R just under T for p = 0.5
    assert sampler.should_sample(None, low, "x").decision is Decision.DROP
    assert sampler.should_sample(None, 1 << 55, "x").decision is Decision.RECORD_AND_SAMPLE
    # Only the low 56 bits count.
    assert sampler.should_sample(None, (0xFF << 56) | low, "x").decision is Decision.DROP


def test_ratio_uses_an_incoming_rv_and_keeps_other_tracestate() -> None:
    sampler = RatioSampler(0.5)
    tid = 1 << 55  # kept by its own bits ...
    ts = TraceState([("ot", "rv:00000000000001;x:1"), ("vendor", "v")])
    result = sampler.should_sample(_parent(tid, True, ts), tid, "x")
    assert result.decision is Decision.DROP  # ... but rv says R = 1
    ts_keep = TraceState([("ot", "rv:ffffffffffffff"), ("vendor", "v")])
    kept = sampler.should_sample(_parent(2, False, ts_keep), 2, "x")
    assert kept.decision is Decision.RECORD_AND_SAMPLE
    assert kept.trace_state.get("ot") == "th:8;rv:ffffffffffffff"
    assert kept.trace_state.get("vendor") == "v"


def test_a_dropped_span_does_not_claim_a_threshold() -> None:
    ts = TraceState([("ot", "th:8;rv:00000000000001")])
    result = RatioSampler(0.5).should_sample(_parent(5, True, ts), 5, "x")
    assert result.decision is Decision.DROP
    assert result.trace_state.get("ot") == "rv:00000000000001"


def test_parent_based_children_follow_and_carry_the_parents_weight() -> None:
    sampler = ParentBasedSampler(RatioSampler(0.1))
    ts = TraceState([("ot", "th:c")])  # parent kept at p = 1/4
    tid = 0xD0000000000003  # R >= th: consistent with being kept at th:c
    child = sampler.should_sample(_parent(tid, True, ts), tid, "child", attributes={"a": 1})
    assert child.decision is Decision.RECORD_AND_SAMPLE
    assert child.attributes[ADJUSTED_COUNT] == pytest.approx(4.0)
    assert child.attributes["a"] == 1
    assert child.trace_state is ts
    assert sampler.should_sample(_parent(3, False), 3, "child").decision is Decision.DROP
    # A sampled parent without th (a legacy upstream) never over-counts.
    legacy = sampler.should_sample(_parent(3, True), 3, "child")
    assert legacy.attributes[ADJUSTED_COUNT] == 1.0


def test_parent_based_delegates() -> None:
    sampler = ParentBasedSampler(
        AlwaysOffSampler(),
        remote_parent_not_sampled=AlwaysOnSampler(),
        local_parent_sampled=AlwaysOffSampler(),
    )
    assert sampler.should_sample(None, 3, "root").decision is Decision.DROP
    assert sampler.should_sample(_parent(3, False), 3, "c").decision is Decision.RECORD_AND_SAMPLE
    assert sampler.should_sample(_parent(3, True, remote=False), 3, "c").decision is Decision.DROP
    assert sampler.should_sample(_parent(3, True), 3, "c").decision is Decision.RECORD_AND_SAMPLE


def test_sampling_rate_shorthand_end_to_end_keeps_whole_traces_with_weights() -> None:
    n, p = 2000, 0.25
    with memory_telemetry({"type": "parent_based", "root": {"type": "ratio", "rate": p}}) as (
        t,
        mem,
    ):
        tracer = t.tracer()
        for _ in range(n):
            with tracer.start_as_current_span("root"), tracer.start_as_current_span("child"):
                pass
        spans = mem.get_finished_spans()
    roots = [s for s in spans if s.parent is None]
    assert_binomial(len(roots), n, p)
    assert len(spans) == 2 * len(roots)  # children follow their root
    for s in spans:
        assert s.context.trace_flags.sampled
        assert s.attributes[ADJUSTED_COUNT] == pytest.approx(4.0)
        assert s.attributes[POLICY] == "ratio"
        assert s.context.trace_state.get("ot") == "th:c"
    assert abs(sum(s.attributes[ADJUSTED_COUNT] for s in roots) - n) <= estimate_tolerance({p: n})


def test_show_prints_the_resolved_tree() -> None:
    import sfumato

    settings = sfumato.load_settings(
        backend="none",
        sampler={
            "type": "error-always",
            "otherwise": {"type": "per-narrative-type", "default": 0.1},
        },
    )
    from sfumato._resolve import resolve

    lines = resolve(settings).sampler.describe()
    assert lines[0].startswith("error-always(")
    assert lines[1].startswith("  per-narrative-type(")


def test_consistent_decides_as_randomness_keep_and_drop_results_do() -> None:
    """Consistent.decide (one cached lookup per span) against the general functions, for
    every kind of parent state."""
    from sfumato.samplers._consistent import (
        Consistent,
        drop_result,
        keep_result,
        randomness,
    )

    t = threshold(0.25)
    states = [
        None,
        TraceState(),
        TraceState([("ot", "th:c"), ("vendor", "x")]),
        TraceState([("ot", "rv:ffffffffffffff")]),
        TraceState([("ot", "rv:00000000000001;th:8")]),
    ]
    attribute_sets = [None, {}, {"narrative.type": "curation"}]
    consistent = Consistent(t, "p")
    seen = set()
    for trace_id in trace_ids(11, 200):
        for ts in states:
            # The parent span carrying ts (a root when None).
            parent = (
                context_api.Context()
                if ts is None
                else trace.set_span_in_context(
                    NonRecordingSpan(SpanContext(trace_id, 7, False, TraceFlags(1), ts))
                )
            )
            for attributes in attribute_sets:
                if randomness(trace_id, ts) >= t:
                    expected = keep_result("p", t, attributes, ts)
                else:
                    expected = drop_result(ts)
                got = consistent.decide_parent(
                    span_context_in(parent), parent, trace_id, "s", None, attributes
                )
                assert got.decision is expected.decision
                assert dict(got.attributes or {}) == dict(expected.attributes or {})
                assert got.trace_state == expected.trace_state
                seen.add(got.decision)
    assert seen == {Decision.RECORD_AND_SAMPLE, Decision.DROP}


def _same(got: Any, expected: Any) -> None:
    assert got.decision is expected.decision
    assert dict(got.attributes or {}) == dict(expected.attributes or {})
    assert got.trace_state == expected.trace_state


def test_the_tracers_fast_path_decides_as_should_sample() -> None:
    """sample_span (the parent span context given) against should_sample (the context
    given), for sfumato's samplers, the record-only form under error-always included, and
    every kind of parent: none, local and remote, sampled or not, with and without ot."""
    from sfumato.samplers.error_always import ErrorAlwaysOptions, ErrorAlwaysSampler
    from sfumato.samplers.narrative import PerNarrativeTypeSampler
    from sfumato.samplers.probability import AlwaysOnSampler, ParentBasedSampler, RatioSampler

    per_type = PerNarrativeTypeSampler.from_rates({"curation": 0.25, "posting": 0.5}, 0.1)
    samplers = {
        "always_on": AlwaysOnSampler(),
        "parent_based": ParentBasedSampler(RatioSampler(0.3)),
        "per_type": per_type,
        "error_always": ErrorAlwaysSampler(per_type, ErrorAlwaysOptions()),
    }
    # error-always's fast path is the marked per-type sampler's, no wrapper between.
    assert getattr(samplers["error_always"].sample_span, "__self__", None) is not per_type
    states = [None, TraceState([("ot", "th:c"), ("vendor", "x")]), TraceState([("ot", "rv:01")])]
    attribute_sets = [None, {"narrative.type": "curation"}, {"narrative.type": "other", "n": 1}]
    seen: dict[str, set[Decision]] = {name: set() for name in samplers}
    for trace_id in trace_ids(5, 120):
        for ts in states:
            for flags in (0, 1):
                for remote in (False, True):
                    parent = SpanContext(trace_id, 7, remote, TraceFlags(flags), ts)
                    for context, sc in (
                        (context_api.Context(), None),
                        (trace.set_span_in_context(NonRecordingSpan(parent)), parent),
                    ):
                        for attributes in attribute_sets:
                            for name, sampler in samplers.items():
                                args = (trace_id, "s", None, attributes, None)
                                slow = sampler.should_sample(context, *args)
                                fast = sampler.sample_span(sc, context, *args)  # type: ignore[attr-defined]
                                _same(fast, slow)
                                seen[name].add(fast.decision)
    assert seen["error_always"] == {Decision.RECORD_AND_SAMPLE, Decision.RECORD_ONLY}
    assert Decision.DROP in seen["per_type"] and Decision.DROP in seen["parent_based"]


def test_a_foreign_sampler_nested_in_a_sfumato_one_has_its_attributes_cleaned() -> None:
    """The tracer checks only the caller's attributes when every sampler in the tree adds
    plain values (plain_attributes); a sampler of another kind anywhere in it turns that off."""
    from sfumato._tracer import SfumatoTracerProvider
    from sfumato.samplers._consistent import Delegate
    from sfumato.samplers.narrative import PerNarrativeTypeSampler

    class Foreign(Sampler):
        def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
            return SamplingResult(Decision.RECORD_AND_SAMPLE, {"tags": ["a", "b"], "": 1})

        def get_description(self) -> str:
            return "foreign"

    from sfumato.samplers.narrative import _fixed

    mixed = PerNarrativeTypeSampler("narrative.type", {"x": Delegate(Foreign())}, _fixed(1.0, "d"))
    plain = PerNarrativeTypeSampler.from_rates({"x": 1.0})
    assert plain.plain_attributes and not mixed.plain_attributes
    for sampler, expected in ((mixed, {"tags": ("a", "b")}), (plain, None)):
        provider = SfumatoTracerProvider(sampler=sampler, shutdown_on_exit=False)
        span: Any = provider.get_tracer("t").start_span("s", attributes={"narrative.type": "x"})
        if expected is not None:
            assert dict(span.attributes) == expected  # list made a tuple, the empty key gone
        else:
            assert span.attributes["narrative.type"] == "x"
        span.end()


def test_a_span_never_shares_its_attributes_with_a_sampler_or_another_span() -> None:
    from sfumato._tracer import SfumatoTracerProvider
    from sfumato.samplers.probability import AlwaysOnSampler

    provider = SfumatoTracerProvider(sampler=AlwaysOnSampler(), shutdown_on_exit=False)
    tracer = provider.get_tracer("t")
    given = {"k": "v"}
    first: Any = tracer.start_span("a", attributes=given)
    first.set_attribute("only.first", 1)
    bare: Any = tracer.start_span("b")  # the sampler's cached result: no attributes of its own
    bare.set_attribute("only.bare", 1)
    again: Any = tracer.start_span("c")
    assert "only.first" not in given and "only.first" not in again.attributes
    assert "only.bare" not in again.attributes
    assert AlwaysOnSampler().should_sample(None, 1, "x").attributes.get("only.bare") is None


def test_per_narrative_type_decides_as_its_rates_do() -> None:
    """per-narrative-type decides a fixed rate's unkept spans itself (one call less per
    span) at a local root: the same results as the rate's own decide_parent, marked or not."""
    from sfumato.samplers.narrative import PerNarrativeTypeSampler

    plain = PerNarrativeTypeSampler.from_rates({"curation": 0.25, "posting": 0.0}, 0.1)
    states = [
        None,
        TraceState(),
        TraceState([("ot", "th:c"), ("vendor", "x")]),
        TraceState([("ot", "rv:00000000000001;th:8")]),
    ]
    seen = set()
    for sampler in (plain, plain.marked()):
        for trace_id in trace_ids(21, 150):
            for ts in states:
                for parent in (None, SpanContext(trace_id, 7, True, TraceFlags(1), ts)):
                    for kind in ("curation", "posting", "other"):
                        attributes = {"narrative.type": kind}
                        choice = sampler.rates.get(kind, sampler.default)
                        args = (trace_id, "s", None, attributes, None)
                        got = sampler.sample_span(parent, context_api.Context(), *args)
                        _same(got, choice.decide_parent(parent, context_api.Context(), *args))
                        seen.add(got.decision)
    assert seen == {Decision.RECORD_AND_SAMPLE, Decision.DROP, Decision.RECORD_ONLY}


@pytest.mark.parametrize("p", [0.4, 0.6, 0.7, 0.9])
def test_sample_rate_sums_to_the_adjusted_count_without_bias(p: float) -> None:
    """SampleRate is an integer; 1/p at these p is not. Rounded up with probability equal to
    the fraction (drawn from the trace's randomness), its sum over the kept spans estimates
    the number of spans as sampling.adjusted_count does: 100k spans, three standard errors."""
    from sfumato.samplers.probability import RatioSampler

    sampler = RatioSampler(p)
    n = 100_000
    total_rate = total_count = kept = 0
    for trace_id in trace_ids(1000 + int(p * 10), n):
        result = sampler.should_sample(None, trace_id, "s")
        if result.decision is Decision.RECORD_AND_SAMPLE:
            kept += 1
            total_rate += result.attributes[SAMPLE_RATE]
            total_count += result.attributes[ADJUSTED_COUNT]
    # The sum of adjusted counts estimates n with variance n (1 - p) / p; rounding adds at
    # most a quarter per kept span.
    sd = math.sqrt(n * (1 - p) / p + kept / 4)
    assert abs(total_rate - n) < 4 * sd, (total_rate, n, sd)
    assert abs(total_rate - total_count) < 4 * math.sqrt(kept / 4) + 1, (total_rate, total_count)
    # rounded one way for every span it would be off by 20-30%
    assert abs(total_rate - n) < 0.02 * n


# -- spec-exact ot handling ------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["th:+c", "th:0xc", "th:f_f", "th: c", "th:C", "th:", "th:123456789abcdef"],
)
def test_a_malformed_th_is_not_read(value: str) -> None:
    from sfumato.samplers._consistent import parse_ot

    assert parse_ot(value)[0] == -1


@pytest.mark.parametrize(
    "value", ["rv:+0000000000001", "rv:0000000000_001", "rv:00000000000001f", "rv:ABCDEF01234567"]
)
def test_a_malformed_rv_is_not_read(value: str) -> None:
    from sfumato.samplers._consistent import parse_ot

    assert parse_ot(value)[1] == -1


def test_parent_based_erases_a_threshold_inconsistent_with_the_randomness() -> None:
    """A sampled parent whose th the trace's randomness does not reach (rv < th) was not
    kept at that threshold: the th is erased, and the weight is the unknown-probability 1."""
    sampler = ParentBasedSampler(RatioSampler(0.5))
    state = TraceState([("ot", "rv:10000000000000;th:c")])  # rv < th: inconsistent
    parent = SpanContext(7, 8, True, TraceFlags(1), state)
    ctx = trace.set_span_in_context(NonRecordingSpan(parent))
    result = sampler.should_sample(ctx, 7, "child")
    assert result.decision is Decision.RECORD_AND_SAMPLE
    assert "th:" not in (result.trace_state or TraceState()).get("ot", "")
    assert result.attributes[ADJUSTED_COUNT] == 1.0
    # consistent: forwarded as it came
    good = TraceState([("ot", "rv:d0000000000000;th:c")])
    ctx = trace.set_span_in_context(NonRecordingSpan(SpanContext(7, 8, True, TraceFlags(1), good)))
    result = sampler.should_sample(ctx, 7, "child")
    assert result.trace_state.get("ot") == "rv:d0000000000000;th:c"
    assert result.attributes[ADJUSTED_COUNT] == 4.0


def test_malformed_members_are_erased_on_output() -> None:
    sampler = ParentBasedSampler(RatioSampler(0.5))
    state = TraceState([("ot", "th:0xc;rv:+0000000000001;x:1")])
    parent = SpanContext(7, 8, True, TraceFlags(1), state)
    result = sampler.should_sample(trace.set_span_in_context(NonRecordingSpan(parent)), 7, "c")
    assert result.trace_state.get("ot") == "x:1"


def test_thresholds_carry_four_hex_digits_as_the_spec_recommends() -> None:
    from sfumato.samplers._consistent import th_hex, threshold

    # The spec's table for precision 4 (1-in-N sampling).
    for p, th in [(1.0, "0"), (0.5, "8"), (1 / 3, "aaab"), (0.2, "cccd"), (0.1, "e666"),
                  (0.01, "fd70a"), (0.001, "ffbe77"), (0.0001, "fff9724")]:  # fmt: skip
        assert th_hex(threshold(p)) == th, p
    assert th_hex(threshold(0.1, precision=6)) == "e66666"


def test_randomness_from_a_trace_id_without_the_random_flag_is_warned_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sfumato import _decisions as _consistent

    monkeypatch.setattr(_consistent, "_unflagged_warned", False)
    sampler = RatioSampler(0.5)
    random_flag = TraceFlags(TraceFlags.SAMPLED | TraceFlags.RANDOM_TRACE_ID)
    flagged = SpanContext(5, 6, True, random_flag)
    with caplog.at_level("WARNING", logger="sfumato"):
        sampler.should_sample(trace.set_span_in_context(NonRecordingSpan(flagged)), 5, "x")
        assert not caplog.records
        for tid in (7, 8, 9):
            sampler.should_sample(_parent(tid, True), tid, "x")
    warned = [r for r in caplog.records if "random flag" in r.getMessage()]
    assert len(warned) == 1


def test_malformed_trace_states_are_counted() -> None:
    with memory_telemetry({"type": "parent_based", "root": {"type": "ratio", "rate": 1.0}}) as (
        telemetry,
        _,
    ):
        before = telemetry.stats()["sampling.tracestate.invalid"]
        state = TraceState([("ot", "th:0xc")])
        parent = SpanContext(0xD0000000000003, 8, True, TraceFlags(3), state)
        ctx = trace.set_span_in_context(NonRecordingSpan(parent))
        telemetry.tracer().start_span("child", context=ctx).end()
        assert telemetry.stats()["sampling.tracestate.invalid"] == before + 1
