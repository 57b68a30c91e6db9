"""BotMetrics: the plan's metric names, units and descriptions, the cardinality guard, and
recording across configure() and shutdown()."""

from __future__ import annotations

import threading

import sfumato
from botticelli_support import configure_memory, metric_points, point_sum
from sfumato.plugins.botticelli import INSTRUMENTS, BotMetrics, CardinalityGuard

PLAN = {
    "bot.generation.runs": ("Sum", "{run}"),
    "bot.generation.duration": ("Histogram", "s"),
    "bot.generation.tokens.used": ("Sum", "{token}"),
    "bot.curation.approved": ("Sum", "{item}"),
    "bot.curation.rejected": ("Sum", "{item}"),
    "bot.posting.published": ("Sum", "{post}"),
    "bot.posting.failed": ("Sum", "{post}"),
    "narrative.execution.duration": ("Histogram", "s"),
    "narrative.act.duration": ("Histogram", "s"),
    "narrative.json.parse.failures": ("Sum", "{parse}"),
    "narrative.json.parse.success": ("Sum", "{parse}"),
    "database.query.duration": ("Histogram", "s"),
    "database.connection.pool.size": ("Gauge", "{connection}"),
    "api.requests": ("Sum", "{request}"),
    "api.requests.duration": ("Histogram", "s"),
}


def record_everything(metrics: BotMetrics) -> None:
    metrics.record_generation(1.5, 1200, "cats", model="m1")
    metrics.record_generation_failure(0.5, "cats", tokens=30)
    metrics.record_curation(True, "cats")
    metrics.record_curation(False, "cats", reason="off-topic")
    metrics.record_posting(True, "cats", platform="mastodon")
    metrics.record_posting(False, "cats", platform="mastodon", error_type="Timeout")
    metrics.record_narrative(2.0, "content_generation", True)
    metrics.record_act(0.7, "content_generation", "draft")
    metrics.record_json_parse(True, "content_generation", "draft")
    metrics.record_json_parse(False, "content_generation", "draft")
    metrics.record_db_query(0.002, "select", "items")
    metrics.set_pool_size(7)
    metrics.record_api_request(0.3, "/statuses", status_code=200)


def test_every_plan_metric_is_exported_with_its_kind_unit_and_description(
    telemetry: sfumato.Telemetry,
) -> None:
    assert {spec.name for spec in INSTRUMENTS} == set(PLAN)
    record_everything(BotMetrics())
    found = metric_points(telemetry)
    for name, (kind, unit) in PLAN.items():
        assert name in found, name
        metric = found[name]
        assert type(metric.data).__name__ == kind, name
        assert metric.unit == unit, name
        assert len(metric.description) > 10, name


def test_recorded_values_and_attributes(telemetry: sfumato.Telemetry) -> None:
    metrics = BotMetrics()
    record_everything(metrics)
    metrics.record_generation(0.5, 100, "dogs")
    found = metric_points(telemetry)
    runs = found["bot.generation.runs"]
    assert point_sum(runs) == 3
    assert point_sum(runs, outcome="failure") == 1
    assert point_sum(runs, topic="cats", outcome="success") == 1
    assert point_sum(found["bot.generation.tokens.used"]) == 1200 + 30 + 100
    assert point_sum(found["bot.generation.duration"], topic="cats") == 2  # histogram count
    hist = found["bot.generation.duration"].data.data_points[0]
    # Seconds-scale buckets, not the SDK's default 0..10000 (which suit milliseconds).
    assert 1.0 in hist.explicit_bounds and 0.01 in hist.explicit_bounds
    pool = found["database.connection.pool.size"].data.data_points[0]
    assert pool.value == 7
    api = found["api.requests"].data.data_points[0]
    assert api.attributes["status_code"] == 200 and api.attributes["outcome"] == "success"


def test_cardinality_guard_folds_overflow_into_other(telemetry: sfumato.Telemetry) -> None:
    metrics = BotMetrics(cap=3)
    for i in range(10):
        metrics.record_generation(0.1, 10, f"topic-{i}")
    runs = metric_points(telemetry)["bot.generation.runs"]
    topics = {p.attributes["topic"]: p.value for p in runs.data.data_points}
    assert topics == {"topic-0": 1, "topic-1": 1, "topic-2": 1, "_other": 7}
    assert metrics.guards["bot.generation.runs"].folded()["topic"] == 7
    # A value kept once stays itself after the cap is reached.
    metrics.record_generation(0.1, 10, "topic-1")
    runs = metric_points(telemetry)["bot.generation.runs"]
    assert point_sum(runs, topic="topic-1") == 2


def test_repeated_sets_are_cached_and_folded_ones_keep_being_counted(
    telemetry: sfumato.Telemetry,
) -> None:
    metrics = BotMetrics(cap=1)
    for _ in range(3):
        metrics.record_act(0.1, "curation", "draft")
        metrics.record_act(0.2, "curation", "review")  # "review" folded into "_other"
        metrics.record_act(0.3, "curation", ["not", "hashable"])  # type: ignore[arg-type]
    acts = metric_points(telemetry)["narrative.act.duration"]
    counts = {p.attributes["narrative.act"]: p.count for p in acts.data.data_points}
    assert counts == {"draft": 3, "_other": 6}
    assert metrics.guards["narrative.act.duration"].folded()["narrative.act"] == 6


def test_guard_drops_keys_the_instrument_does_not_allow() -> None:
    guard = CardinalityGuard(["topic"], cap=2)
    assert guard.filter({"topic": "a", "user.id": "u-123", "model": None}) == {"topic": "a"}
    assert guard.filter({"topic": None}) == {}
    assert guard.value("topic", 42) == 42  # numbers stay numbers
    assert guard.value("topic", "c") == "_other"


def test_guard_per_key_caps_and_thread_safety() -> None:
    guard = CardinalityGuard({"topic": 5, "model": 1})
    results: list[str] = []
    lock = threading.Lock()

    def worker(offset: int) -> None:
        mine = [str(guard.value("topic", f"t{(i + offset) % 40}")) for i in range(400)]
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    kept = set(results) - {"_other"}
    assert len(kept) == 5  # never more than the cap, even when threads race
    assert guard.distinct("topic") == 5
    assert guard.value("model", "a") == "a"
    assert guard.value("model", "b") == "_other"


def test_metrics_made_before_configure_record_after_it() -> None:
    metrics = BotMetrics()
    metrics.record_generation(1.0, 10, "early")  # no provider yet: a no-op, and no error
    handle = configure_memory()
    try:
        metrics.record_generation(1.0, 10, "cats")
        runs = metric_points(handle)["bot.generation.runs"]
        assert point_sum(runs) == 1
        assert point_sum(runs, topic="cats") == 1
    finally:
        handle.shutdown()
    # A second configure() gets the records too, not the shut-down provider.
    handle = configure_memory()
    try:
        metrics.record_generation(2.0, 5, "dogs")
        runs = metric_points(handle)["bot.generation.runs"]
        assert point_sum(runs) == 1
        assert point_sum(runs, topic="dogs") == 1
    finally:
        handle.shutdown()


def test_recording_never_raises(telemetry: sfumato.Telemetry) -> None:
    metrics = BotMetrics()
    metrics.record_generation("not a number", 10, "cats")  # type: ignore[arg-type]
    metrics.record_api_request(0.1, object())  # type: ignore[arg-type]
    metrics.record_generation(1.0, 1, "cats")
    assert point_sum(metric_points(telemetry)["bot.generation.runs"]) >= 1


def test_a_parse_counts_under_the_act_it_runs_in(telemetry: sfumato.Telemetry) -> None:
    from sfumato.plugins.botticelli import act, narrative, parse_json

    metrics = BotMetrics()
    with narrative("curation", metrics=metrics):
        parse_json("{}", metrics=metrics)  # no act yet
        with act("score", metrics=metrics):
            parse_json("[]", metrics=metrics)
            with narrative("research", metrics=metrics):  # a narrative inside an act
                parse_json("1", metrics=metrics)
            parse_json("2", metrics=metrics)  # the act again, once the inner narrative ends
    parses = metric_points(telemetry)["narrative.json.parse.success"]
    counts = {
        (p.attributes["narrative.type"], p.attributes.get("narrative.act")): p.value
        for p in parses.data.data_points
    }
    assert counts == {("curation", None): 1, ("curation", "score"): 2, ("research", None): 1}
