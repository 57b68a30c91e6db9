"""``sfumato report``: what a local store holds, by service and span name.

:func:`summarize` reads a :class:`~sfumato.plugins.local.store.Store` once and returns a
:class:`Summary`; :func:`render_text`, :func:`render_csv` and :func:`to_dict` present it.

Sampling weights: a span carrying ``sampling.adjusted_count = n`` stands for n spans. The
estimated span count of a name is the sum of its spans' weights; the estimated trace count
of a service is the sum of the weights of its local root spans (no parent, or a parent in
another process). Percentiles are weighted the same way, so a sampler that keeps every error
but one success in ten does not make a name look slower than it is. Without weights every
span counts once and the percentiles are the plain nearest-rank ones.
"""

from __future__ import annotations

import csv
import io
import os
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sfumato.cli._help import plural

from .store import ADJUSTED_COUNT, SpanRecord, Store

__all__ = [
    "ErrorGroup",
    "NameSummary",
    "ServiceSummary",
    "Summary",
    "percentile",
    "printable",
    "render_csv",
    "render_text",
    "summarize",
    "to_dict",
]

QUANTILES: tuple[tuple[str, float], ...] = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))


def percentile(samples: Sequence[tuple[int, float]], q: float) -> int:
    """Weighted nearest-rank percentile of ``(value, weight)`` pairs sorted by value.

    The smallest value whose cumulative weight reaches ``q`` of the total; with unit weights
    this is the classic nearest-rank definition (P50 of 1..100 is 50, P95 is 95).
    """
    if not samples:
        raise ValueError("no samples")
    total = sum(w for _, w in samples)
    target = q * total * (1 - 1e-12)  # q * total is not exact in floating point
    running = 0.0
    for value, weight in samples:
        running += weight
        if running >= target:
            return value
    return samples[-1][0]


@dataclass
class NameSummary:
    """One span name of one service."""

    service: str
    name: str
    count: int = 0
    estimated: float = 0.0
    errors: int = 0
    roots: int = 0
    quantiles_ns: dict[str, int] = field(default_factory=dict)
    _samples: list[tuple[int, float]] = field(default_factory=list, repr=False)


@dataclass
class ServiceSummary:
    service: str
    traces: int = 0
    estimated_traces: float = 0.0
    spans: int = 0
    estimated_spans: float = 0.0
    errors: int = 0


@dataclass
class ErrorGroup:
    """Failing spans of one service and name, with their messages (most frequent first)."""

    service: str
    name: str
    count: int = 0
    messages: Counter[str] = field(default_factory=Counter)


@dataclass
class Summary:
    directory: str
    files: int = 0
    bytes: int = 0
    spans: int = 0
    traces: int = 0
    estimated_traces: float = 0.0
    estimated_spans: float = 0.0
    errors: int = 0
    skipped_lines: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    services: list[ServiceSummary] = field(default_factory=list)
    names: list[NameSummary] = field(default_factory=list)
    error_groups: list[ErrorGroup] = field(default_factory=list)


def summarize(store: Store | str | os.PathLike[str]) -> Summary:
    """Read every span of the store and summarise it."""
    if not isinstance(store, Store):
        store = Store(store)
    return summarize_spans(store.spans(), store=store)


def summarize_spans(spans: Iterable[SpanRecord], store: Store | None = None) -> Summary:
    """The summary of any spans (a store's, or a filtered subset of them)."""
    summary = Summary(directory=str(store.directory) if store else "")
    names: dict[tuple[str, str], NameSummary] = {}
    services: dict[str, ServiceSummary] = {}
    trace_ids: dict[str, set[str]] = {}
    errors: dict[tuple[str, str], ErrorGroup] = {}
    for span in spans:
        weight = span.adjusted_count
        key = (span.service, span.name)
        entry = names.get(key)
        if entry is None:
            entry = names[key] = NameSummary(span.service, span.name)
        service = services.get(span.service)
        if service is None:
            service = services[span.service] = ServiceSummary(span.service)
            trace_ids[span.service] = set()
        entry.count += 1
        entry.estimated += weight
        entry._samples.append((span.duration_ns, weight))
        service.spans += 1
        service.estimated_spans += weight
        trace_ids[span.service].add(span.trace_id)
        if span.is_local_root:
            entry.roots += 1
            service.estimated_traces += weight
        if span.is_error:
            entry.errors += 1
            service.errors += 1
            group = errors.get(key)
            if group is None:
                group = errors[key] = ErrorGroup(span.service, span.name)
            group.count += 1
            group.messages[span.error_message or "(no message)"] += 1
        if span.start_ns and (summary.first_ns is None or span.start_ns < summary.first_ns):
            summary.first_ns = span.start_ns
        if span.end_ns and (summary.last_ns is None or span.end_ns > summary.last_ns):
            summary.last_ns = span.end_ns

    for entry in names.values():
        entry._samples.sort(key=lambda s: s[0])
        entry.quantiles_ns = {label: percentile(entry._samples, q) for label, q in QUANTILES}
        entry._samples = []
    for name, service in services.items():
        service.traces = len(trace_ids[name])

    summary.services = sorted(services.values(), key=lambda s: (-s.spans, s.service))
    summary.names = sorted(names.values(), key=lambda n: (n.service, -n.count, n.name))
    summary.error_groups = sorted(errors.values(), key=lambda g: (-g.count, g.service, g.name))
    summary.spans = sum(s.spans for s in services.values())
    summary.traces = len(set().union(*trace_ids.values())) if trace_ids else 0
    summary.estimated_spans = sum(s.estimated_spans for s in services.values())
    summary.estimated_traces = sum(s.estimated_traces for s in services.values())
    summary.errors = sum(s.errors for s in services.values())
    if store is not None:
        files = store.files()
        summary.files = len(files)
        summary.bytes = sum(f.size for f in files)
        summary.skipped_lines = store.skipped
    return summary


# -- presentation ----------------------------------------------------------------------------


def _ms(ns: int) -> float:
    return ns / 1e6


def to_dict(summary: Summary, max_messages: int = 5) -> dict[str, Any]:
    """The summary as JSON-ready data; durations in milliseconds."""
    return {
        "directory": summary.directory,
        "files": summary.files,
        "bytes": summary.bytes,
        "skipped_lines": summary.skipped_lines,
        "first_start_unix_nano": summary.first_ns,
        "last_end_unix_nano": summary.last_ns,
        "traces": summary.traces,
        "estimated_traces": summary.estimated_traces,
        "spans": summary.spans,
        "estimated_spans": summary.estimated_spans,
        "errors": summary.errors,
        "services": [
            {
                "service": s.service,
                "traces": s.traces,
                "estimated_traces": s.estimated_traces,
                "spans": s.spans,
                "estimated_spans": s.estimated_spans,
                "errors": s.errors,
            }
            for s in summary.services
        ],
        "span_names": [
            {
                "service": n.service,
                "name": n.name,
                "count": n.count,
                "estimated": n.estimated,
                "roots": n.roots,
                "errors": n.errors,
                **{f"{label}_ms": _ms(v) for label, v in n.quantiles_ns.items()},
            }
            for n in summary.names
        ],
        "errors_by_span": [
            {
                "service": g.service,
                "name": g.name,
                "count": g.count,
                "messages": [
                    {"message": m, "count": c} for m, c in g.messages.most_common(max_messages)
                ],
            }
            for g in summary.error_groups
        ],
    }


def format_duration(ns: int) -> str:
    ms = ns / 1e6
    if ms < 1:
        return f"{ns / 1e3:.0f}us"
    if ms < 10:
        return f"{ms:.2f}ms"
    if ms < 1000:
        return f"{ms:.1f}ms"
    return f"{ms / 1000:.2f}s"


def _count(value: float) -> str:
    return f"{value:,.0f}" if abs(value - round(value)) < 1e-9 else f"{value:,.1f}"


def _counted(value: float, noun: str) -> str:
    """An estimated count and its noun: ``1 trace``, ``2.5 traces``."""
    whole = abs(value - round(value)) < 1e-9
    return plural(float(round(value)) if whole else round(value, 1), noun)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n = n / 1024  # type: ignore[assignment]
    return f"{n:.1f} GiB"


# What a terminal acts on: C0 and C1 controls, DEL, and the bidirectional overrides and
# isolates, which reorder what follows them on the line.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_CONTROL_BUT_NEWLINE = re.compile(
    "[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, lines: bool = False) -> str:
    """``text`` with its control characters escaped (``\\x1b``, ``\\u202e``), so that what
    a store holds can be printed to a terminal; with ``lines``, newlines are kept."""
    return (_CONTROL_BUT_NEWLINE if lines else _CONTROL).sub(_escape, text)


def table(
    header: Sequence[str], rows: Iterable[Sequence[str]], right: set[int] | None = None
) -> list[str]:
    """Plain aligned columns; ``right`` holds the indexes of right-aligned (number) columns.
    Cells are escaped with :func:`printable`."""
    right = right or set()
    header = [printable(str(c)) for c in header]
    body = [[printable(str(c)) for c in r] for r in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *body, strict=True)]

    def line(cells: Sequence[str]) -> str:
        out = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(out).rstrip()

    return [line(header), *(line(r) for r in body)]


def _when(ns: int | None) -> str:
    if ns is None:
        return "?"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ns / 1e9)) + " UTC"


def render_text(summary: Summary, max_messages: int = 3) -> str:
    weighted = abs(summary.estimated_spans - summary.spans) > 1e-9
    skipped = plural(summary.skipped_lines, "unreadable line")
    out = [
        f"local store {summary.directory}: {plural(summary.files, 'file')}, {_size(summary.bytes)}"
        + (f", {skipped} skipped" if summary.skipped_lines else "")
    ]
    if not summary.spans:
        out.append("no spans")
        return printable("\n".join(out) + "\n", lines=True)
    out.append(
        f"{plural(summary.spans, 'span')} in {plural(summary.traces, 'trace')}, "
        f"{_when(summary.first_ns)} to {_when(summary.last_ns)}"
    )
    if weighted:
        out.append(
            f"estimated before sampling: {_counted(summary.estimated_spans, 'span')}, "
            f"{_counted(summary.estimated_traces, 'trace')} (from {ADJUSTED_COUNT})"
        )

    out += ["", "Services"]
    header = ["service", "traces", "spans", "errors"]
    if weighted:
        header[2:2] = ["est. traces"]
        header.insert(4, "est. spans")
    rows = []
    for s in summary.services:
        row = [s.service, f"{s.traces:,}", f"{s.spans:,}", f"{s.errors:,}"]
        if weighted:
            row[2:2] = [_count(s.estimated_traces)]
            row.insert(4, _count(s.estimated_spans))
        rows.append(row)
    out += table(header, rows, right=set(range(1, len(header))))

    out += ["", "Spans by name"]
    header = ["service", "span", "count", "errors", "p50", "p95", "p99"]
    if weighted:
        header.insert(3, "est.")
    rows = []
    for n in summary.names:
        row = [n.service, n.name, f"{n.count:,}", f"{n.errors:,}"]
        row += [format_duration(n.quantiles_ns[label]) for label, _ in QUANTILES]
        if weighted:
            row.insert(3, _count(n.estimated))
        rows.append(row)
    out += table(header, rows, right=set(range(2, len(header))))

    if summary.error_groups:
        out += ["", "Errors"]
        rows = []
        for g in summary.error_groups:
            for i, (message, count) in enumerate(g.messages.most_common(max_messages)):
                first = i == 0
                rows.append(
                    [
                        g.service if first else "",
                        g.name if first else "",
                        f"{g.count:,}" if first else "",
                        f"{count:,}",
                        _one_line(message),
                    ]
                )
            hidden = len(g.messages) - max_messages
            if hidden > 0:
                rows.append(["", "", "", "", f"(+{plural(hidden, 'other message')})"])
        out += table(["service", "span", "errors", "n", "message"], rows, right={2, 3})
    return printable("\n".join(out) + "\n", lines=True)


def render_csv(summary: Summary) -> str:
    """The spans by name as CSV, one row per service and span name; durations in ms."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    labels = [label for label, _ in QUANTILES]
    writer.writerow(
        ["service", "span", "count", "estimated", "roots", "errors", *(f"{q}_ms" for q in labels)]
    )
    for n in summary.names:
        writer.writerow(
            [
                n.service,
                n.name,
                n.count,
                _count(n.estimated).replace(",", ""),
                n.roots,
                n.errors,
                *(f"{_ms(n.quantiles_ns[q]):.3f}" for q in labels),
            ]
        )
    return printable(buffer.getvalue(), lines=True)


def _one_line(message: str, limit: int = 100) -> str:
    text = " ".join(message.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
