"""The debug-baggage sampler: its nested samplers named in the config, validated and built
by sfumato (needs the distribution installed), then on its own, without configure()."""

from __future__ import annotations

import pytest
import sfumato
from opentelemetry import baggage, context, propagate
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Decision
from sfumato_sampler_example.debug import DebugBaggageSampler


def test_marked_traces_go_to_debug_and_the_others_to_otherwise() -> None:
    with sfumato.configure(
        backend="none",
        exporters=[{"type": "memory", "signals": ["traces"]}],
        # otherwise: the OpenTelemetry SDK's own sampler, by its entry-point name; arg 0
        # drops every trace it decides.
        sampler={"type": "debug-baggage", "otherwise": {"type": "traceidratio", "arg": 0.0}},
        metrics={"enabled": False},
        logs={"enabled": False},
    ) as telemetry:
        tracer = telemetry.tracer()
        with tracer.start_as_current_span("plain"):
            tracer.start_span("plain-child").end()
        # As a server does with an incoming request: extract the caller's headers, attach.
        token = context.attach(propagate.extract({"baggage": "sampling.debug=true"}))
        try:
            with tracer.start_as_current_span("marked"):
                tracer.start_span("marked-child").end()
        finally:
            context.detach(token)
        spans = telemetry.exporter("memory", "traces").get_finished_spans()
    assert sorted(s.name for s in spans) == ["marked", "marked-child"]
    assert {s.attributes["sampling.policy"] for s in spans} == {"always_on"}


def test_nested_tables_are_validated_by_their_own_models() -> None:
    sampler = {"type": "debug-baggage", "otherwise": {"type": "ratio", "rat": 0.5}}
    with pytest.raises(sfumato.ConfigError, match=r"telemetry\.sampler\.otherwise\.rat"):
        sfumato.load_settings(sampler=sampler)
    with pytest.raises(sfumato.ConfigError, match=r"telemetry\.sampler\.otherwise"):
        sfumato.load_settings(sampler={"type": "debug-baggage"})


def test_on_its_own_with_the_sdk_samplers() -> None:
    # No configure(): the nested samplers are any OpenTelemetry samplers, given directly.
    sampler = DebugBaggageSampler("sampling.debug", debug=ALWAYS_ON, otherwise=ALWAYS_OFF)
    marked = baggage.set_baggage("sampling.debug", "true")
    assert sampler.should_sample(marked, 1, "work").decision is Decision.RECORD_AND_SAMPLE
    assert sampler.should_sample(None, 1, "work").decision is Decision.DROP
