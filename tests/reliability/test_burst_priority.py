"""A burst of narratives far beyond what export keeps up with, through a real Rotel.

The span path runs faster than OTLP export, so a burst can fill the export queue (a small
one for certain). What the queue then drops must be whole traces kept by probability, never
a trace kept
because it failed, and never a single span of a trace: every failed narrative arrives
complete, with the default settings.
"""

from __future__ import annotations

import collections
from typing import Any

import pytest
import sfumato
from receivers import RotelServer, wait_until
from sfumato.plugins.botticelli import act, llm_call, narrative

pytestmark = pytest.mark.server

NARRATIVES = 10_000
FAIL_EVERY = 50  # 2% of narratives fail
SPANS = 10  # per narrative: the narrative, 3 acts, 6 LLM calls


class Refused(Exception):
    pass


def _narrative(i: int, trace_ids: list[str]) -> None:
    """One narrative of ``SPANS`` spans; every ``FAIL_EVERY``-th fails in its last LLM call.
    Its trace id (hex) goes into ``trace_ids``."""
    with narrative("content_generation", "burst", attributes={"burst.i": i}) as run:
        trace_ids.append(run.trace_id)
        for a in range(3):
            with act(f"act-{a}"):
                for c in range(2):
                    with llm_call("model") as call:
                        call.record_tokens(10, 20)
                        if i % FAIL_EVERY == FAIL_EVERY - 1 and a == 2 and c == 1:
                            raise Refused(f"narrative {i}")


def _by_trace(rotel: RotelServer) -> dict[str, list[Any]]:
    traces: dict[str, list[Any]] = collections.defaultdict(list)
    for _, span in rotel.sink.spans():
        traces[span.trace_id.hex()].append(span)
    return traces


def _burst(**settings: Any) -> tuple[list[str], dict[str, int]]:
    """Run the burst; the failed narratives' trace ids and the stats after shutdown."""
    failed: list[str] = []
    ids: list[str] = []
    with sfumato.configure(None, service_name="burst", **settings) as telemetry:
        for i in range(NARRATIVES):
            try:
                _narrative(i, ids)
            except Refused:
                failed.append(ids[-1])
    assert len(failed) == NARRATIVES // FAIL_EVERY
    return failed, telemetry.stats()


@pytest.mark.parametrize(
    "queue",
    [
        {},  # the defaults: export may keep up with the burst
        # Export six times slower (the SDK's encoder, one worker) and a smaller queue: the
        # burst overflows it, for certain.
        {"max_queue_size": 2048, "export_workers": 1, "encoder": "sdk"},
    ],
    ids=["defaults", "overflowing"],
)
def test_every_failed_narrative_of_a_burst_arrives_complete(
    rotel: RotelServer, queue: dict[str, Any]
) -> None:
    queue = dict(queue)
    encoder = queue.pop("encoder", "sfumato")
    failed, stats = _burst(
        backend="none",
        exporters=[
            {
                "type": "otlp-grpc",
                "endpoint": rotel.grpc_endpoint,
                "insecure": True,
                "encoder": encoder,
            }
        ],
        metrics={"enabled": False},
        logs={"enabled": False},
        **queue,
    )
    if queue:
        assert stats["traces.dropped.queue_full"] > 0, stats

    def complete() -> dict[str, list[Any]] | None:
        traces = _by_trace(rotel)
        return traces if all(len(traces.get(t, ())) == SPANS for t in failed) else None

    wait_until(complete, timeout=30)
    wait_until(lambda: sum(map(len, _by_trace(rotel).values())) >= stats["traces.exported"])
    traces = _by_trace(rotel)
    incomplete = collections.Counter(len(traces.get(t, ())) for t in failed)
    del incomplete[SPANS]
    assert not incomplete, (
        f"{sum(incomplete.values())} of {len(failed)} failed narratives arrived incomplete "
        f"(number of spans that arrived: count {sorted(incomplete.items())}); stats: {stats}"
    )
    # Whatever was dropped went as whole traces: no trace arrived split.
    split = collections.Counter(len(s) for s in traces.values() if len(s) != SPANS)
    assert not split, f"{sum(split.values())} traces arrived split: {sorted(split.items())}"
    # What arrived is what stats() counts as exported, and the rest is counted dropped.
    arrived = sum(len(s) for s in traces.values())
    assert stats["traces.exported"] == arrived, stats
    dropped = sum(v for k, v in stats.items() if k.startswith("traces.dropped."))
    assert stats["traces.queued"] == NARRATIVES * SPANS == arrived + dropped, stats
    # Only what probability kept was dropped, none of what the tail kept for its error.
    assert stats["traces.dropped.queue_full"] == stats.get("traces.queue_full.probability", 0), (
        stats
    )
