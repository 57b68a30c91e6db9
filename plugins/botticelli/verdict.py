"""What the telemetry of a simulator run kept, against what really happened.

:func:`compare` takes the simulator's true counts and the spans that reached the backend and
answers the questions ``sfumato demo`` asks: was every failure kept, which rate did each
narrative type get against the configured one, what latencies did the acts have, and do the
sampling weights (``sampling.adjusted_count``) estimate the true narrative counts within a
binomial tolerance. :func:`render` prints it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sfumato.cli._help import plural
from sfumato.plugins.local.report import QUANTILES, format_duration, percentile, table

from . import conventions as conv
from .simulator import SimulationResult

__all__ = ["NARRATIVE_NAMES", "Comparison", "KeptSpan", "compare", "configured_rates", "render"]

NARRATIVE_NAMES: dict[str, str] = {
    "narrative generate_post": "content_generation",
    "narrative research_topic": "research",
    "narrative curate_post": "curation",
    "narrative publish_post": "posting",
}
"""The simulator's narrative span names and their types: a span kept only for its error may
have lost its start attributes (the type among them), its name still tells."""

SIGMAS = 4.0
"""Tolerance of the estimates, in binomial standard deviations (plus one narrative)."""


@dataclass(frozen=True)
class KeptSpan:
    """The little the comparison needs of one exported span."""

    trace_id: str
    name: str
    attributes: Mapping[str, Any]
    error: bool
    duration_ns: int
    weight: float


@dataclass
class TypeRow:
    narrative_type: str
    true: int
    failed: int
    kept: int = 0
    kept_failed: int = 0
    estimated: float = 0.0
    configured: float | None = None

    @property
    def achieved(self) -> float | None:
        """Share of the successful narratives kept (failures are kept whatever the rate)."""
        successes = self.true - self.failed
        return (self.kept - self.kept_failed) / successes if successes else None

    @property
    def tolerance(self) -> float:
        """Binomial tolerance of the estimate: kept successes ~ B(n, p), each weighing 1/p."""
        p = self.configured
        successes = self.true - self.failed
        if p is None or p <= 0:
            return math.inf
        return SIGMAS * math.sqrt(successes * (1 - p) / p) + 1

    @property
    def estimate_ok(self) -> bool:
        return abs(self.estimated - self.true) <= self.tolerance


@dataclass
class ActRow:
    act: str
    true: int
    kept: int
    kept_ns: dict[str, int]
    true_ns: dict[str, int]


@dataclass
class Comparison:
    narratives: int
    traces_kept: int
    spans_kept: int
    types: list[TypeRow] = field(default_factory=list)
    acts: list[ActRow] = field(default_factory=list)
    failed_traces: int = 0
    failed_traces_kept: int = 0
    missing_failures: list[str] = field(default_factory=list)

    @property
    def failures_kept(self) -> bool:
        return not self.missing_failures and all(t.kept_failed >= t.failed for t in self.types)

    @property
    def estimates_ok(self) -> bool:
        return all(t.estimate_ok for t in self.types)

    @property
    def ok(self) -> bool:
        return self.failures_kept and self.estimates_ok


def configured_rates(sampler: Mapping[str, Any] | None) -> tuple[dict[str, float], float | None]:
    """The per-type rates (and default) of the first ``per-narrative-type`` node of a sampler
    tree; ``({}, rate)`` for a plain ratio; ``({}, None)`` when no fixed rate is known."""
    if not sampler:
        return {}, 1.0
    kind = sampler.get("type")
    if kind == "per-narrative-type":
        rates = {k: float(v) for k, v in sampler.get("rates", {}).items() if _number(v)}
        default = sampler.get("default", 1.0)
        return rates, float(default) if _number(default) else None
    if kind == "ratio":
        return {}, float(sampler.get("rate", 1.0))
    if kind == "always_on":
        return {}, 1.0
    for key in ("otherwise", "root", "delegate"):
        nested = sampler.get(key)
        if isinstance(nested, Mapping):
            return configured_rates(nested)
    return {}, None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _type_of(span: KeptSpan) -> str | None:
    value = span.attributes.get(conv.NARRATIVE_TYPE)
    return str(value) if value is not None else NARRATIVE_NAMES.get(span.name)


def compare(
    result: SimulationResult,
    spans: Iterable[KeptSpan],
    rates: Mapping[str, float] | None = None,
    default_rate: float | None = None,
) -> Comparison:
    """Compare a run's true counts with the spans its telemetry exported."""
    rates = rates or {}
    rows = {
        t: TypeRow(
            t,
            n,
            result.failed_by_type.get(t, 0),
            configured=rates.get(t, default_rate),
        )
        for t, n in sorted(result.narratives_by_type.items())
    }
    traces: set[str] = set()
    error_traces: set[str] = set()
    act_samples: dict[str, list[tuple[int, float]]] = {}
    act_kept: Counter[str] = Counter()
    count = 0
    for span in spans:
        count += 1
        traces.add(span.trace_id)
        if span.error:
            error_traces.add(span.trace_id)
        if span.name.startswith(conv.NARRATIVE_SPAN_PREFIX):
            kind = _type_of(span)
            row = rows.get(kind) if kind else None
            if row is None:
                continue
            row.kept += 1
            row.estimated += span.weight
            if span.error:
                row.kept_failed += 1
        elif span.name.startswith(conv.ACT_SPAN_PREFIX):
            name = span.name[len(conv.ACT_SPAN_PREFIX) :]
            act_kept[name] += 1
            act_samples.setdefault(name, []).append((span.duration_ns, span.weight))

    acts = []
    for name, true_n in sorted(result.acts.items()):
        samples = sorted(act_samples.get(name, []))
        truth = sorted((int(d * 1e9), 1.0) for d in result.act_durations.get(name, []))
        acts.append(
            ActRow(
                name,
                true_n,
                act_kept[name],
                {q: percentile(samples, v) for q, v in QUANTILES} if samples else {},
                {q: percentile(truth, v) for q, v in QUANTILES} if truth else {},
            )
        )
    failed = result.failed_trace_ids
    return Comparison(
        narratives=result.narratives,
        traces_kept=len(traces),
        spans_kept=count,
        types=list(rows.values()),
        acts=acts,
        failed_traces=len(failed),
        failed_traces_kept=len(failed & error_traces),
        missing_failures=sorted(failed - error_traces),
    )


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _est(value: float) -> str:
    return f"{value:,.1f}"


def render(comparison: Comparison, result: SimulationResult) -> str:
    c = comparison
    out = [
        f"narratives run: {c.narratives:,} from {plural(result.config.narratives, 'bot run')} "
        f"in {result.elapsed_s:.1f}s ({plural(result.spans, 'span')} created)",
        f"traces kept:    {c.traces_kept:,} ({plural(c.spans_kept, 'span')} exported)",
        f"failures:       {c.failed_traces_kept:,} of "
        f"{plural(c.failed_traces, 'failed trace')} kept "
        f"({', '.join(f'{k} {v}' for k, v in sorted(result.failures_by_kind.items())) or 'none'})",
        "",
        "Narratives by type",
    ]
    rows = [
        [
            t.narrative_type,
            f"{t.true:,}",
            f"{t.kept:,}",
            f"{t.failed:,}",
            f"{t.kept_failed:,}",
            _rate(t.configured),
            _rate(t.achieved),
            _est(t.estimated),
            f"±{t.tolerance:,.1f}" if math.isfinite(t.tolerance) else "-",
            "ok" if t.estimate_ok else "OFF",
        ]
        for t in c.types
    ]
    header = [
        "type",
        "true",
        "kept",
        "failed",
        "failed kept",
        "rate set",
        "rate got",
        "estimated",
        "tolerance",
        "",
    ]
    out += table(header, rows, right=set(range(1, 9)))
    out += ["", "Acts (kept spans weighted by sampling.adjusted_count, and the true durations)"]
    rows = []
    for a in c.acts:
        kept = [format_duration(a.kept_ns[q]) if a.kept_ns else "-" for q, _ in QUANTILES]
        true = [format_duration(a.true_ns[q]) if a.true_ns else "-" for q, _ in QUANTILES]
        rows.append([a.act, f"{a.true:,}", f"{a.kept:,}", *kept, *true])
    labels = [q for q, _ in QUANTILES]
    out += table(
        ["act", "true", "kept", *labels, *(f"true {q}" for q in labels)],
        rows,
        right=set(range(1, 3 + 2 * len(labels))),
    )
    out.append("")
    if c.missing_failures:
        out.append(f"failed traces not kept: {', '.join(c.missing_failures[:5])}")
    problems = []
    if not c.failures_kept:
        problems.append("some failures were not kept")
    off = [t.narrative_type for t in c.types if not t.estimate_ok]
    if off:
        problems.append(f"estimates outside tolerance for {', '.join(off)}")
    if problems:
        out.append("verdict: FAIL: " + "; ".join(problems))
    else:
        out.append(
            "verdict: OK: every failure kept, estimated counts within "
            f"{SIGMAS:g} binomial standard deviations of the true ones"
        )
    return "\n".join(out) + "\n"
