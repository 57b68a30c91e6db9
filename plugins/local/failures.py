"""``sfumato report failures``: failed narratives grouped by stage and error, each with the
trace id that leads back to its generation.

A failure is a local root span (a narrative, or any request entering a service) marked as an
error. Its stage is ``bot.stage``, else ``narrative.type``, else the span name; its error is
the ``bot.error.kind`` of the failing span below it, else the exception type. A stage that
continued its generation's trace (curation) has the generation's trace id; a stage that
started a trace of its own and linked it to the earlier one (posting) is followed through
its span links, hop by hop, to the first trace of the chain: the generation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .report import printable, table
from .store import SpanRecord

__all__ = ["Failure", "FailureGroup", "failures", "render_text"]

STAGE = "bot.stage"
NARRATIVE_TYPE = "narrative.type"
ERROR_KIND = "bot.error.kind"


@dataclass(frozen=True)
class Failure:
    trace_id: str
    span: str
    message: str
    origin_trace_id: str  # the first trace of the link chain (its generation)
    hops: int  # links followed to get there
    origin_kept: bool  # the origin trace is in the store too


@dataclass
class FailureGroup:
    stage: str
    error: str
    items: list[Failure] = field(default_factory=list)


def _error_name(message: str) -> str:
    head = message.split(":", 1)[0].strip()
    return head if head and " " not in head else "error"


def failures(spans: Iterable[SpanRecord]) -> list[FailureGroup]:
    roots: list[SpanRecord] = []
    kinds: dict[str, str] = {}
    links: dict[str, str] = {}  # trace id -> the trace it links back to
    traces: set[str] = set()
    for span in spans:
        traces.add(span.trace_id)
        if span.links and span.trace_id not in links:
            linked = span.links[0][0]
            if linked and linked != span.trace_id:
                links[span.trace_id] = linked
        if span.is_error:
            kind = span.attributes.get(ERROR_KIND)
            if kind is not None:
                kinds.setdefault(span.trace_id, str(kind))
            if span.is_local_root:
                roots.append(span)
    groups: dict[tuple[str, str], FailureGroup] = {}
    for root in roots:
        stage = str(root.attributes.get(STAGE) or root.attributes.get(NARRATIVE_TYPE) or root.name)
        error = kinds.get(root.trace_id) or _error_name(root.error_message)
        origin, hops, seen = root.trace_id, 0, {root.trace_id}
        while origin in links and links[origin] not in seen:
            origin = links[origin]
            seen.add(origin)
            hops += 1
        group = groups.get((stage, error))
        if group is None:
            group = groups[(stage, error)] = FailureGroup(stage, error)
        group.items.append(
            Failure(root.trace_id, root.name, root.error_message, origin, hops, origin in traces)
        )
    return sorted(groups.values(), key=lambda g: (-len(g.items), g.stage, g.error))


def render_text(groups: list[FailureGroup], directory: str, limit: int = 5) -> str:
    total = sum(len(g.items) for g in groups)
    out = [f"failures in {directory}: {total:,}"]
    if not groups:
        return printable(out[0] + "\n", lines=True)
    out += [
        "",
        *table(
            ["stage", "error", "count"],
            [[g.stage, g.error, f"{len(g.items):,}"] for g in groups],
            right={2},
        ),
    ]
    for g in groups:
        out += ["", f"{g.stage} / {g.error}: trace -> generation trace"]
        for f in g.items[:limit]:
            if f.hops:
                where = "kept" if f.origin_kept else "not kept"
                back = f"{f.origin_trace_id} ({f.hops} link{'s' * (f.hops > 1)}, {where})"
            else:
                back = "same trace"
            out.append(f"  {f.trace_id} -> {back}  {_short(f.message)}")
        if len(g.items) > limit:
            out.append(f"  (+{len(g.items) - limit} more; --json lists all)")
    return printable("\n".join(out) + "\n", lines=True)


def _short(message: str, limit: int = 70) -> str:
    text = " ".join(message.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
