"""GlobRateSampler on its own: built from its options model and called as the SDK calls it,
without configure(): no providers, no exporters, nothing installed globally."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    TraceFlags,
    set_span_in_context,
)
from pydantic import ValidationError
from sfumato.samplers import ADJUSTED_COUNT, POLICY, SpanStart
from sfumato_sampler_example import GlobRateOptions, GlobRateSampler

# A trace is kept at probability p when the low 56 bits of its id are >= (1 - p) * 2**56.
KEPT_AT_ANY_RATE = 0x00FFFFFFFFFFFFFF  # low 56 bits all set: kept whenever p > 0
KEPT_ONLY_AT_RATE_1 = 0x0100000000000000  # low 56 bits all clear: kept only when p = 1


def _sampler(**options: object) -> GlobRateSampler:
    return GlobRateSampler(GlobRateOptions.model_validate(options))


def test_the_first_matching_rule_gives_the_probability() -> None:
    rules = [{"glob": "health*", "rate": 0.0}, {"glob": "checkout.*", "rate": 0.5}]
    sampler = _sampler(rules=rules, default=0.1)

    def probability(name: str) -> float:
        return sampler.probability(SpanStart(name, SpanKind.SERVER, {}, 1, None, None))

    assert [probability(n) for n in ("healthz", "checkout.pay", "other")] == [0.0, 0.5, 0.1]


def test_a_kept_root_carries_its_weight() -> None:
    sampler = _sampler(default=0.25)
    kept = sampler.should_sample(None, KEPT_AT_ANY_RATE, "narrative")
    assert kept.decision is Decision.RECORD_AND_SAMPLE
    assert kept.attributes is not None and kept.trace_state is not None
    assert (kept.attributes[ADJUSTED_COUNT], kept.attributes[POLICY]) == (4.0, "glob-rate")
    assert kept.trace_state.get("ot") == "th:c"  # the threshold (1 - 0.25) * 2**56, in hex
    assert sampler.should_sample(None, KEPT_ONLY_AT_RATE_1, "narrative").decision is Decision.DROP


def test_a_local_child_follows_its_parent() -> None:
    sampler = _sampler(default=0.0)
    parent = SpanContext(
        KEPT_ONLY_AT_RATE_1, span_id=1, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED)
    )
    in_parent = set_span_in_context(NonRecordingSpan(parent))
    child = sampler.should_sample(in_parent, KEPT_ONLY_AT_RATE_1, "child")
    assert child.decision is Decision.RECORD_AND_SAMPLE  # rate 0, yet kept: its parent was


def test_the_options_model_rejects_what_a_config_would() -> None:
    with pytest.raises(ValidationError, match="rate"):
        GlobRateOptions.model_validate({"rules": [{"glob": "x", "rate": 2}]})
