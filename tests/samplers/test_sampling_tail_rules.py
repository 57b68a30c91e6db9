"""Trace-scope tail rules: conditions on the local unit, first-match rules with a probability
or a drop, caps per rule and overall; under the ``tail`` sampler and under error-always.

Probabilities and caps are checked with binomial tolerances (``sampling_support``) on
seeded trace ids; a cap's seconds come from a clock the test moves.
"""

from __future__ import annotations

from typing import Any

import pytest
import sfumato
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags
from sampling_support import Recorder, assert_binomial, estimate_tolerance, trace_ids
from sfumato import ConfigError
from sfumato._stats import Stats
from sfumato.samplers import ADJUSTED_COUNT, POLICY
from sfumato.samplers._rules import Rule, RuleSet, Unit, When, compile_when
from sfumato.samplers._tail import TailProcessor
from sfumato.samplers.tail import TailOptions, tail_policy

_RESOURCE = Resource.get_empty()
HEALTH = {"attribute": "http.route", "glob": "/health*"}
ROOT_H = {"attribute": "root.http.route", "equals": "/h"}
CHECKOUT = {"attribute": "root.http.route", "equals": "/checkout"}


def span(
    tid: int,
    sid: int,
    parent: int | None = None,
    *,
    name: str | None = None,
    attributes: dict[str, Any] | None = None,
    error: bool = False,
    ok: bool = False,
    start: int = 0,
    end: int = 1_000_000,
    sampled: bool = False,
) -> ReadableSpan:
    ctx = SpanContext(tid, sid, False, TraceFlags(TraceFlags.SAMPLED if sampled else 0))
    parent_ctx = SpanContext(tid, parent, False, ctx.trace_flags) if parent is not None else None
    status = StatusCode.ERROR if error else StatusCode.OK if ok else StatusCode.UNSET
    return ReadableSpan(
        name=name or f"s{sid}",
        resource=_RESOURCE,
        context=ctx,
        parent=parent_ctx,
        attributes=attributes or {},
        status=Status(status),
        start_time=start,
        end_time=end,
    )


def unit(*spans: ReadableSpan) -> Unit:
    root = next((s for s in spans if s.parent is None), None)
    return Unit(list(spans), root, any(s.status.status_code is StatusCode.ERROR for s in spans))


def when(**table: Any) -> When:
    return When.model_validate(table)


# -- conditions ----------------------------------------------------------------------------------


def test_status_latency_and_span_count() -> None:
    failed = unit(span(1, 1), span(1, 2, 1, error=True))
    fine = unit(span(2, 1, end=3_000_000), span(2, 2, 1, ok=True))
    assert compile_when(when(status="error"))(failed)
    assert not compile_when(when(status="error"))(fine)
    assert compile_when(when(status="ok"))(fine)
    assert compile_when(when(latency_ms={"gte": 2}))(fine)  # the root lasted 3 ms
    assert not compile_when(when(latency_ms={"gte": 2}))(failed)
    assert compile_when(when(span_count={"gt": 1, "lte": 2}))(fine)
    assert not compile_when(when(span_count={"gt": 2}))(fine)


def test_attribute_tests_on_any_span_and_on_the_root() -> None:
    u = unit(
        span(1, 1, attributes={"http.route": "/checkout", "user.tier": "gold", "n": 3}),
        span(1, 2, 1, attributes={"db.rows": 1500, "cache.hit": False, "url.path": "/api/v2/x"}),
    )
    passes = [
        {"attribute": "http.route", "equals": "/checkout"},
        {"attribute": "root.user.tier", "glob": "go*"},
        {"attribute": "db.rows", "gte": 1000},
        {"attribute": "url.path", "regex": "^/api/v[12]/"},
        {"attribute": "cache.hit", "equals": False},
        {"attribute": "n", "equals": 3.0},
        {"attribute": "feature.flag", "exists": False},
        {"attribute": "db.rows", "exists": True},
        {"attribute": "root.user.tier", "not_equals": "silver"},
    ]
    fails = [
        {"attribute": "root.db.rows", "gte": 1000},  # on a child, not on the root
        {"attribute": "cache.hit", "equals": 0},  # a boolean is not a number
        {"attribute": "http.route", "glob": "/health*"},
        {"attribute": "db.rows", "lt": 10},
        {"attribute": "user.tier", "gt": 1},  # a string is not a number
        {"attribute": "absent", "not_equals": "x"},  # a missing attribute is no value
    ]
    for table in passes:
        assert compile_when(when(**table))(u), table
    for table in fails:
        assert not compile_when(when(**table))(u), table


def test_all_any_and_not_compose() -> None:
    u = unit(span(1, 1, attributes={"http.route": "/checkout"}), span(1, 2, 1, error=True))
    both = when(all=[{"status": "error"}, {"attribute": "root.http.route", "equals": "/checkout"}])
    either = when(any=[{"status": "ok"}, {"attribute": "http.route", "glob": "/check*"}])
    neither = when(**{"not": {"any": [{"status": "error"}, {"span_count": {"gt": 5}}]}})
    assert compile_when(both)(u) and compile_when(either)(u) and not compile_when(neither)(u)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"status": "error", "span_count": {"gt": 1}}, "exactly one of"),
        ({}, "exactly one of"),
        ({"attribute": "x"}, "needs exactly one test"),
        ({"attribute": "x", "equals": 1, "glob": "a*"}, "needs exactly one test"),
        ({"glob": "a*"}, "apply to an attribute"),
        ({"attribute": "x", "regex": "(unclosed"}, "not a regular expression"),
        ({"latency_ms": {}}, "at least one of gt, gte, lt, lte"),
        ({"status": "failed"}, "'error', 'ok' or 'unset'"),
        ({"all": []}, "at least 1 item"),
    ],
)
def test_a_condition_that_says_nothing_or_two_things_is_refused(
    table: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        When.model_validate(table)


def test_a_rule_that_drops_takes_no_probability() -> None:
    with pytest.raises(ValueError, match="a rule that drops keeps nothing"):
        Rule(name="health", drop=True, sample=0.5)
    with pytest.raises(ValueError, match="name"):
        Rule(name="has space")


# -- probabilities and caps ----------------------------------------------------------------------


def test_the_first_matching_rule_decides() -> None:
    rules = RuleSet(
        [
            Rule(name="health", when=when(attribute="http.route", glob="/health*"), drop=True),
            Rule(name="errors", when=when(status="error")),
            Rule(name="rest", sample=0.5),
        ]
    )
    health = unit(span(7, 1, attributes={"http.route": "/healthz"}, error=True))
    failed = unit(span(7, 1), span(7, 2, 1, error=True))
    verdict = rules.decide(health, 7, None)
    assert verdict is not None and (verdict.rule, verdict.kept, verdict.final) == (
        "health",
        False,
        True,
    )
    verdict = rules.decide(failed, 7, None)
    assert verdict is not None and (verdict.rule, verdict.kept, verdict.th) == ("errors", True, 0)
    assert rules.decide(unit(span(7, 1)), 7, None).rule == "rest"  # type: ignore[union-attr]
    assert (
        RuleSet([Rule(name="only-errors", when=when(status="error"))]).decide(
            unit(span(7, 1)), 7, None
        )
        is None
    )


def test_a_rule_keeps_with_its_probability_consistently() -> None:
    rules = RuleSet([Rule(name="quarter", sample=0.25)])
    n = 8000
    kept = [tid for tid in trace_ids(11, n) if rules.decide(unit(span(tid, 1)), tid, None).kept]  # type: ignore[union-attr]
    assert_binomial(len(kept), n, 0.25)
    # The same trace gets the same decision (the trace's randomness, not a coin).
    again = RuleSet([Rule(name="quarter", sample=0.25)])
    assert all(again.decide(unit(span(t, 1)), t, None).kept for t in kept[:200])  # type: ignore[union-attr]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _offer(rules: RuleSet, clock: Clock, per_second: int, seconds: int, seed: int) -> list[Any]:
    """``per_second`` matching units a second for ``seconds``: each second's verdicts."""
    ids = trace_ids(seed, per_second * seconds)
    out = []
    for _ in range(seconds):
        second = []
        for _ in range(per_second):
            clock.now += 1.0 / per_second
            tid = next(ids)
            second.append(rules.decide(unit(span(tid, 1, error=True)), tid, None))
        out.append(second)
    return out


def test_a_cap_holds_and_what_it_keeps_weighs_what_it_stands_for() -> None:
    clock = Clock()
    rules = RuleSet(
        [Rule(name="errors", when=when(status="error"), max_per_second=100)], clock=clock
    )
    seconds = _offer(rules, clock, per_second=2000, seconds=6, seed=5)
    # The first second foresaw nothing: twice the cap kept, the rest dropped outright, and
    # counted; after it, the probability does the work and nothing more is dropped outright.
    assert sum(v.kept for v in seconds[0]) == 200
    assert rules.capped["errors"] == 1800
    estimate = 0.0
    n_by_p: dict[float, int] = {}
    for second in seconds[1:]:
        kept = [v for v in second if v.kept]
        assert_binomial(len(kept), 2000, 100 / 2000, "kept in a second")
        for v in kept:
            from sfumato._threshold import adjusted_count, probability

            estimate += adjusted_count(v.th)
            n_by_p[probability(v.th)] = n_by_p.get(probability(v.th), 0) + 1
    # Unbiased: the kept units' weights add up to the units offered.
    offered = 5 * 2000
    assert abs(estimate - offered) <= estimate_tolerance(
        {p: round(n / p) for p, n in n_by_p.items()}
    )


def test_an_overall_cap_over_two_rules() -> None:
    clock = Clock()
    rules = RuleSet(
        [
            Rule(name="errors", when=when(status="error")),
            Rule(name="slow", when=when(latency_ms={"gte": 0})),
        ],
        max_per_second=50,
        clock=clock,
    )
    seconds = _offer(rules, clock, per_second=1000, seconds=4, seed=9)
    for second in seconds[1:]:
        assert_binomial(sum(v.kept for v in second), 1000, 0.05, "kept overall")


def test_under_the_cap_nothing_changes() -> None:
    clock = Clock()
    rules = RuleSet([Rule(name="errors", max_per_second=1000)], clock=clock)
    seconds = _offer(rules, clock, per_second=200, seconds=3, seed=3)
    assert all(v.kept and v.th == 0 for second in seconds for v in second)
    assert rules.capped == {}


# -- through the tail processor ------------------------------------------------------------------


def _processor(options: dict[str, Any]) -> tuple[TailProcessor, Recorder, Stats]:
    parsed = TailOptions.model_validate(options)
    recorder, stats = Recorder(), Stats()
    processor = TailProcessor(recorder, stats, tail_policy(parsed, "tail"), name="tail")
    return processor, recorder, stats


def test_kept_units_carry_the_rules_label_and_weight() -> None:
    processor, recorder, stats = _processor(
        {
            "rules": [
                {
                    "name": "health",
                    "when": {"attribute": "http.route", "glob": "/health*"},
                    "drop": True,
                },
                {"name": "slow", "when": {"latency_ms": {"gte": 500}}},
                {"name": "sampled", "sample": 0.5},
            ]
        }
    )
    n = 4000
    ids = list(trace_ids(21, n))
    for i, tid in enumerate(ids):
        route = "/healthz" if i % 4 == 0 else "/items"
        end = 600_000_000 if i % 4 == 1 else 1_000_000
        processor.on_end(span(tid, 2, 1, attributes={"http.route": route}, sampled=True))
        processor.on_end(span(tid, 1, attributes={"http.route": route}, end=end, sampled=True))
    by_policy: dict[str, int] = {}
    for s in recorder.spans:
        by_policy[s.attributes[POLICY]] = by_policy.get(s.attributes[POLICY], 0) + 1
    assert "tail:health" not in by_policy  # dropped, head-sampled spans included
    assert by_policy["tail:slow"] == 2 * (n // 4)
    assert_binomial(by_policy["tail:sampled"] // 2, n // 2, 0.5)
    weights = {
        s.attributes[ADJUSTED_COUNT]
        for s in recorder.spans
        if s.attributes[POLICY] == "tail:sampled"
    }
    assert weights == {2.0}
    snapshot = stats.snapshot()
    assert snapshot["tail.traces.dropped.health"] == n // 4
    assert snapshot["tail.traces.kept.slow"] == n // 4


def test_no_matching_rule_leaves_the_head_decision() -> None:
    processor, recorder, _ = _processor(
        {"rules": [{"name": "errors", "when": {"status": "error"}}]}
    )
    processor.on_end(span(5, 1, sampled=True))
    processor.on_end(span(6, 1, sampled=False))
    assert [s.context.trace_id for s in recorder.spans] == [5]
    assert POLICY not in recorder.spans[0].attributes  # its head weight, untouched


def test_a_drop_rule_drops_late_errors_and_a_probability_drop_keeps_them() -> None:
    processor, recorder, _ = _processor(
        {
            "rules": [
                {
                    "name": "health",
                    "when": {"attribute": "root.http.route", "equals": "/h"},
                    "drop": True,
                },
                {"name": "none", "sample": 0.000001},
            ]
        }
    )
    processor.on_end(span(1, 1, attributes={"http.route": "/h"}))
    processor.on_end(span(1, 2, 1, error=True))  # late, after the root: dropped with it
    processor.on_end(span(2, 1))
    processor.on_end(span(2, 2, 1, error=True))  # late error of a unit the probability dropped
    assert [(s.context.trace_id, s.context.span_id) for s in recorder.spans] == [(2, 2)]


# -- configured --------------------------------------------------------------------------------


def _configure(sampler: dict[str, Any]) -> Any:
    return sfumato.configure(
        backend="none",
        exporters=[{"type": "memory"}],
        metrics={"enabled": False},
        logs={"enabled": False},
        sampler=sampler,
    )


def test_the_tail_sampler_from_the_configuration() -> None:
    handle = _configure(
        {
            "type": "tail",
            "rules": [
                {
                    "name": "checkout",
                    "when": {"attribute": "root.http.route", "equals": "/checkout"},
                },
                {"name": "errors", "when": {"status": "error"}},
            ],
        }
    )
    tracer = trace.get_tracer("app")
    try:
        with (
            tracer.start_as_current_span("GET", attributes={"http.route": "/checkout"}),
            tracer.start_as_current_span("db"),
        ):
            pass
        with tracer.start_as_current_span("GET", attributes={"http.route": "/items"}):
            pass
        with pytest.raises(ValueError), tracer.start_as_current_span("POST"):
            raise ValueError("boom")
        spans = list(handle.exporter("memory").get_finished_spans())
    finally:
        handle.shutdown()
    assert sorted((s.name, s.attributes[POLICY]) for s in spans) == [
        ("GET", "tail:checkout"),
        ("POST", "tail:errors"),
        ("db", "tail:checkout"),
    ]


def test_error_always_takes_rules_after_its_errors() -> None:
    handle = _configure(
        {
            "type": "error-always",
            "rules": [
                {
                    "name": "health",
                    "when": {"attribute": "http.route", "glob": "/health*"},
                    "drop": True,
                },
                {"name": "gold", "when": {"attribute": "root.user.tier", "equals": "gold"}},
            ],
        }
    )
    tracer = trace.get_tracer("app")
    try:
        with (
            pytest.raises(ValueError),
            tracer.start_as_current_span("GET", attributes={"http.route": "/healthz"}),
        ):
            raise ValueError("a failing health check is still an error")
        with tracer.start_as_current_span("GET", attributes={"http.route": "/healthz"}):
            pass
        with tracer.start_as_current_span("GET", attributes={"user.tier": "gold"}):
            pass
        with tracer.start_as_current_span("GET", attributes={"user.tier": "free"}):
            pass
        spans = list(handle.exporter("memory").get_finished_spans())
    finally:
        handle.shutdown()
    assert sorted(s.attributes[POLICY] for s in spans) == [
        "error-always:error",
        "error-always:gold",
    ]


def test_a_bad_rule_in_the_configuration_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"rules.*exactly one of"):
        _configure(
            {
                "type": "tail",
                "rules": [{"name": "x", "when": {"status": "error", "span_count": {"gt": 1}}}],
            }
        )


def test_a_rule_may_nest_a_sampler_whose_threshold_weighs_what_it_keeps() -> None:
    """The general form: a rule's own sampler decides its units (Refinery's nested
    samplers); a consistent one's threshold is the kept spans' weight."""
    handle = _configure(
        {
            "type": "tail",
            "rules": [
                {
                    "name": "nested",
                    "when": {"attribute": "root.route", "equals": "/items"},
                    "sampler": {"type": "ratio", "rate": 0.25},
                }
            ],
        }
    )
    tracer = trace.get_tracer("app")
    n = 3000
    try:
        for _ in range(n):
            with tracer.start_as_current_span("GET", attributes={"route": "/items"}):
                pass
        spans = list(handle.exporter("memory").get_finished_spans())
    finally:
        handle.shutdown()
    assert_binomial(len(spans), n, 0.25)
    assert {s.attributes[POLICY] for s in spans} == {"tail:nested"}
    assert {s.attributes[ADJUSTED_COUNT] for s in spans} == {4.0}


def test_a_rule_takes_sample_or_sampler_not_both() -> None:
    with pytest.raises(ValueError, match="'sample' or 'sampler', not both"):
        Rule.model_validate({"name": "x", "sample": 0.5, "sampler": {"type": "always_on"}})


def test_a_late_error_of_a_unit_a_rule_kept_at_a_rate_weighs_one() -> None:
    processor, recorder, _ = _processor({"rules": [{"name": "half", "sample": 0.5}]})
    kept = next(t for t in trace_ids(31, 100) if (t & ((1 << 56) - 1)) >= (1 << 55))
    processor.on_end(span(kept, 1))
    processor.on_end(span(kept, 2, 1, error=True))  # late: after its root ended
    weights = {s.context.span_id: s.attributes[ADJUSTED_COUNT] for s in recorder.spans}
    assert weights == {1: 2.0, 2: 1.0}
