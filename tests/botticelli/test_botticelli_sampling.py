"""The simulator under the demo's sampler tree: every failure is kept, and the adjusted counts
of the kept narratives estimate the true counts per type."""

from __future__ import annotations

import math
import random
from collections import Counter

from botticelli_support import configure_memory, finished_spans
from sfumato.plugins.botticelli.simulator import SimulationConfig, run

RATES = {"content_generation": 0.5, "curation": 0.2}
DEFAULT_RATE = 0.3


# The SDK builds a span's attributes from the sampling result: a RECORD_ONLY answer must carry
# the caller's attributes, or traces kept for their error lose narrative.type.
def test_failures_kept_and_counts_estimated() -> None:
    random.seed(1234)  # the SDK draws trace ids (and so sampling randomness) from `random`
    handle = configure_memory(
        sampler={
            "type": "error-always",
            "otherwise": {"type": "per-narrative-type", "default": DEFAULT_RATE, "rates": RATES},
        }
    )
    try:
        result = run(SimulationConfig(seed=11, narratives=300, act_cpu_ms=0.05))
        handle.force_flush()
        spans = finished_spans(handle)
    finally:
        handle.shutdown()

    kept_traces = {format(s.context.trace_id, "032x") for s in spans}
    assert result.failed_trace_ids, "the run must contain failures"
    assert result.failed_trace_ids <= kept_traces

    roots = [s for s in spans if s.name.startswith("narrative ")]
    assert len(roots) < result.narratives  # something was sampled out
    # Every kept narrative still names its type (its start attributes survive sampling).
    assert all("narrative.type" in s.attributes for s in roots)
    estimated: Counter[str] = Counter()
    for span in roots:
        estimated[span.attributes["narrative.type"]] += span.attributes["sampling.adjusted_count"]
    for kind, true_count in result.narratives_by_type.items():
        rate = RATES.get(kind, DEFAULT_RATE)
        successes = true_count - result.failed_by_type[kind]
        # Kept successes are binomial(successes, rate), each weighted 1/rate; failures weigh 1.
        sd = math.sqrt(successes * (1 - rate) / rate)
        assert abs(estimated[kind] - true_count) <= 4.5 * sd + 1, (
            kind,
            estimated[kind],
            true_count,
        )
