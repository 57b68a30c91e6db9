"""Keep generation, curation and posting correlated across a queue or a database row.

The producing stage stores a carrier with the content::

    row.carrier = inject_context()  # {"traceparent": ..., "tracestate": ..., "baggage": ...}

and the consuming stage either continues the same trace (a child of the producer's span)::

    with continue_from(row.carrier):
        with narrative("curation", "curate"):
            ...

or, when the work happens much later and belongs in a trace of its own, starts a new trace
that links back to the producer::

    with linked_to(row.carrier):
        with narrative("posting", "publish"):   # a root span with a link to the generation
            ...

Carriers are written and read by the globally configured propagators (sfumato installs
``propagators = ["tracecontext", "baggage"]`` by default), so a carrier is plain ``str -> str``
data that fits a JSON column or a message header. Nothing here raises into the caller: a
missing or corrupt carrier gives a context with no parent and no link.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import propagate
from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.trace import Link

__all__ = [
    "continue_from",
    "extract_context",
    "inject_context",
    "link_from",
    "linked_to",
    "pending_links",
    "span_context_of",
]

log = logging.getLogger("sfumato.botticelli")

_LINKS_KEY = context_api.create_key("sfumato.botticelli.pending_links")


def inject_context(context: Context | None = None) -> dict[str, str]:
    """The current (or given) context as a carrier: W3C ``traceparent``, ``tracestate`` and
    ``baggage`` entries, as the configured propagators write them."""
    carrier: dict[str, str] = {}
    try:
        propagate.inject(carrier, context=context)
    except Exception:
        log.debug("sfumato: inject_context failed", exc_info=True)
    return carrier


def extract_context(carrier: Mapping[str, str] | None, context: Context | None = None) -> Context:
    """The context a carrier describes, over ``context`` (default: an empty one)."""
    base = context if context is not None else Context()
    if not carrier:
        return base
    try:
        return propagate.extract(dict(carrier), context=base)
    except Exception:
        log.debug("sfumato: extract_context failed", exc_info=True)
        return base


def span_context_of(carrier: Mapping[str, str] | None) -> trace_api.SpanContext | None:
    """The remote span a carrier points at, or None when it holds no valid one."""
    span_context = trace_api.get_current_span(extract_context(carrier)).get_span_context()
    return span_context if span_context.is_valid else None


def link_from(
    carrier: Mapping[str, str] | None, attributes: Mapping[str, Any] | None = None
) -> Link | None:
    """A span link to the span a carrier points at (None when it points at none)."""
    span_context = span_context_of(carrier)
    if span_context is None:
        return None
    return Link(span_context, dict(attributes) if attributes else None)


@contextmanager
def continue_from(carrier: Mapping[str, str] | None) -> Iterator[Context]:
    """Make the carrier's span the current parent: spans started inside are its children,
    in the same trace, and inherit its baggage (the narrative type among it)."""
    context = extract_context(carrier)
    token = context_api.attach(context)
    try:
        yield context
    finally:
        context_api.detach(token)


@contextmanager
def linked_to(
    *carriers: Mapping[str, str] | None, attributes: Mapping[str, Any] | None = None
) -> Iterator[Context]:
    """Start a new trace linked to the carriers' spans.

    Inside the block there is no current span (the next span is a root), the first carrier's
    baggage is current, and ``narrative()`` and ``act()`` give the root span they start a link
    to each carrier's span. For spans started otherwise, pass ``links=pending_links()``.
    """
    links = tuple(link for c in carriers if (link := link_from(c, attributes)) is not None)
    base = extract_context(carriers[0]) if carriers else Context()
    context = trace_api.set_span_in_context(trace_api.INVALID_SPAN, base)
    context = context_api.set_value(_LINKS_KEY, links, context)
    token = context_api.attach(context)
    try:
        yield context
    finally:
        context_api.detach(token)


def pending_links(context: Context | None = None) -> tuple[Link, ...]:
    """The links ``linked_to()`` left for the root span of ``context`` (none once a span is
    current: only a new root takes them)."""
    if trace_api.get_current_span(context).get_span_context().is_valid:
        return ()
    links = context_api.get_value(_LINKS_KEY, context)
    return links if isinstance(links, tuple) else ()
