"""The glob-rate sampler, driven through sfumato by its entry-point name (needs it installed)."""

from __future__ import annotations

import random

import pytest
import sfumato


def _configure(**sampler: object) -> sfumato.Telemetry:
    return sfumato.configure(
        backend="none",
        exporters=[{"type": "memory", "signals": ["traces"]}],
        sampler={"type": "glob-rate", **sampler},
        metrics={"enabled": False},
        logs={"enabled": False},
    )


def test_rules_decide_by_root_name_and_children_follow() -> None:
    rules = [{"glob": "health*", "rate": 0.0}, {"glob": "checkout.*", "rate": 1.0}]
    with _configure(rules=rules, default=0.0) as telemetry:
        tracer = telemetry.tracer()
        for name in ("checkout.pay", "healthz", "other"):
            with tracer.start_as_current_span(name):
                tracer.start_span("child").end()
        spans = telemetry.exporter("memory", "traces").get_finished_spans()
    assert sorted(s.name for s in spans) == ["checkout.pay", "child"]
    assert {s.attributes["sampling.policy"] for s in spans} == {"glob-rate"}
    assert {s.attributes["sampling.adjusted_count"] for s in spans} == {1.0}


def test_a_rate_keeps_that_share_of_traces_with_its_weight() -> None:
    random.seed(8)  # the SDK draws trace ids from `random`
    n, rate = 4000, 0.25
    with _configure(default=rate) as telemetry:
        for _ in range(n):
            telemetry.tracer().start_span("narrative").end()
        spans = telemetry.exporter("memory", "traces").get_finished_spans()
    # Binomial(4000, 0.25): mean 1000, standard deviation 27.4; 5 sigma either side.
    assert abs(len(spans) - n * rate) < 5 * (n * rate * (1 - rate)) ** 0.5
    assert {s.attributes["sampling.adjusted_count"] for s in spans} == {4.0}


def test_options_are_validated_by_the_plugin_model() -> None:
    with pytest.raises(sfumato.ConfigError, match=r"telemetry\.sampler\.rules"):
        sfumato.load_settings(sampler={"type": "glob-rate", "rules": [{"glob": "x"}]})
    with pytest.raises(sfumato.ConfigError, match="rat"):
        sfumato.load_settings(sampler={"type": "glob-rate", "rat": 0.5})
