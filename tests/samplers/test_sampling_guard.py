"""A sampler that raises falls back to a safe decision, is counted, logged once, and the
application sees nothing."""

from __future__ import annotations

import logging

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    Status,
    StatusCode,
)
from sampling_support import memory_telemetry
from sfumato.samplers._consistent import parent_span_context
from sfumato.samplers._parent_first import ParentFirstSampler
from sfumato.samplers.error_always import ErrorAlwaysOptions, ErrorAlwaysSampler
from sfumato.samplers.narrative import PerNarrativeTypeSampler
from sfumato.samplers.probability import AlwaysOnSampler, ParentBasedSampler, RatioSampler


@pytest.mark.parametrize(
    ("sampler", "counter"),
    [
        ({"type": "sampling_faulty:RaisingOtel"}, "sampler.sampling_faulty:RaisingOtel.errors"),
        ({"type": "sampling_faulty:RaisingTail"}, "sampler.raising-tail.errors"),
        (
            {"type": "parent_based", "root": {"type": "sampling_faulty:RaisingOtel"}},
            "sampler.errors",
        ),
    ],
)
def test_a_raising_sampler_never_reaches_the_application(
    sampler: dict[str, object], counter: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sfumato")
    with memory_telemetry(sampler) as (t, mem):
        tracer = t.tracer()
        for _ in range(20):
            with tracer.start_as_current_span("root"), tracer.start_as_current_span("child"):
                pass
        stats = t.stats()
        exported = mem.get_finished_spans()
    assert stats[counter] >= 20  # every root fell back (children follow the root)
    assert stats["sampler.errors"] >= 20
    assert exported == ()  # the safe decision for a root is to drop it
    warnings = [r for r in caplog.records if "raised" in r.getMessage()]
    assert 1 <= len(warnings) <= 2  # once per failing component, not once per span


def test_a_raising_sampler_under_error_always_falls_back_to_record_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """error-always's nested sampler is marked to record what it would drop; when a sampler
    under it raises, the fallback records too, so a trace with an error is still kept."""
    monkeypatch.delenv("SFUMATO_STRICT", raising=False)
    sampler = {
        "type": "error-always",
        "otherwise": {
            "type": "per-narrative-type",
            "default": {"type": "sampling_faulty:RaisingOtel"},
        },
    }
    with memory_telemetry(sampler) as (t, mem):
        tracer = t.tracer()
        for i in range(10):
            with (
                tracer.start_as_current_span("root"),
                tracer.start_as_current_span("child") as child,
            ):
                if i == 3:
                    child.set_status(Status(StatusCode.ERROR))
        stats = t.stats()
        exported = mem.get_finished_spans()
    assert stats["sampler.errors"] >= 10
    assert stats["tail.spans.seen"] == 20  # every span recorded for the tail
    assert sorted(s.name for s in exported) == ["child", "root"]  # the trace with the error


class _BrokenParent(NonRecordingSpan):
    """A parent span (from some other library) whose span context cannot be read."""

    def __init__(self) -> None:
        pass

    @property
    def _context(self) -> SpanContext:  # type: ignore[override]
        raise RuntimeError("no span context")

    def get_span_context(self) -> SpanContext:
        raise RuntimeError("no span context")


@pytest.mark.parametrize(
    "sampler",
    [
        AlwaysOnSampler(),
        ParentBasedSampler(RatioSampler(0.5)),
        PerNarrativeTypeSampler.from_rates({"curation": 0.5}),
        ErrorAlwaysSampler(PerNarrativeTypeSampler.from_rates({}), ErrorAlwaysOptions()),
    ],
    ids=lambda s: type(s).__name__,
)
def test_a_parent_that_cannot_be_read_falls_back(sampler: ParentFirstSampler) -> None:
    """should_sample finds the parent before sample_span's own guard: a failure there falls
    back too, to the safe decision for a parent it cannot read (drop)."""
    context = trace.set_span_in_context(_BrokenParent())
    with pytest.raises(RuntimeError):  # the lookup itself fails
        parent_span_context(context)
    result = sampler.should_sample(context, 7, "child")
    assert result.decision is Decision.DROP
