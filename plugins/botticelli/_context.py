"""Where the narrative type lives in the context, and the tracer that follows the global one.

Samplers read the narrative type of the current context so that the children of a narrative
(and the downstream stages a carrier reaches) inherit its sampling rate. ``narrative()`` sets
it in two places: the samplers' own ``narrative_type`` context variable (cheap to read, local
to the thread or task) and the W3C baggage entry ``narrative.type``, which is in the
OpenTelemetry context every sampler is given and which the baggage propagator carries across
queues and processes.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from typing import NamedTuple, cast

from opentelemetry import baggage
from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from sfumato import _otel
from sfumato.plugin import SpanStarter

from .conventions import BAGGAGE_NARRATIVE_TYPE

__all__ = [
    "SAMPLER_NARRATIVE_TYPE",
    "SCOPE",
    "Conventions",
    "conventions",
    "current_narrative_type",
    "fast_tracer",
    "tracer",
    "with_narrative_type",
]

SCOPE = "sfumato.botticelli"


def _sampler_variable() -> ContextVar[str | None] | None:
    try:
        from sfumato.samplers.narrative import narrative_type
    except ImportError:  # samplers trimmed from this install: baggage alone carries the type
        return None
    return cast("ContextVar[str | None]", narrative_type)


SAMPLER_NARRATIVE_TYPE = _sampler_variable()

# (the provider generation it was made under, the global provider's tracer, that tracer
# again when it is sfumato's own, else None)
_cached: tuple[int, trace_api.Tracer, SpanStarter | None] | None = None


def tracer() -> trace_api.Tracer:
    """A tracer of the current global provider.

    Tracers are cached per provider and made again when ``configure()`` installs a new one,
    so spans started after a shutdown and a second ``configure()`` reach the new pipeline.
    """
    c = _cached
    if c is not None and c[0] == _otel.GENERATION:
        return c[1]
    return _refresh()[1]


def fast_tracer() -> SpanStarter | None:
    """The current global provider's tracer when it is sfumato's own (its ``start_span``
    takes ``trusted``), else None. The span helpers inline this body (a test pins them)."""
    t = c[2] if (c := _cached) is not None and c[0] == _otel.GENERATION else _refresh()[2]
    return t


def _refresh() -> tuple[int, trace_api.Tracer, SpanStarter | None]:
    global _cached
    from sfumato._tracer import SfumatoTracer

    generation = _otel.GENERATION
    made = trace_api.get_tracer_provider().get_tracer(SCOPE)  # the API's proxy until one is set
    fast = made if isinstance(made, SfumatoTracer) else None
    _cached = (generation, made, fast)
    return _cached


class Conventions(NamedTuple):
    """What the LLM-call helper emits, read from the environment at each ``configure()``."""

    genai: bool
    """OpenTelemetry's GenAI conventions (``OTEL_SEMCONV_STABILITY_OPT_IN`` holds
    ``gen_ai_latest_experimental``, as the contrib instrumentations read it): span
    ``{operation} {model}`` of kind CLIENT, ``gen_ai.operation.name`` and
    ``gen_ai.provider.name``, and the ``gen_ai.client.*`` metrics."""
    content: bool
    """Message content on LLM-call spans (``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``
    is ``SPAN_ONLY``, ``SPAN_AND_EVENT`` or ``true``); off by default."""


SEMCONV_OPT_IN = "OTEL_SEMCONV_STABILITY_OPT_IN"
GENAI_OPT_IN = "gen_ai_latest_experimental"
CAPTURE_CONTENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_CONTENT_ON = frozenset({"span_only", "span_and_event", "true"})
_conventions: tuple[int, Conventions] | None = None


def conventions() -> Conventions:
    """The conventions of the current configuration (the environment as ``configure()`` found
    it: changing a variable later takes effect at the next ``configure()``)."""
    global _conventions
    c = _conventions
    generation = _otel.GENERATION
    if c is not None and c[0] == generation:
        return c[1]
    opt_in = {part.strip() for part in os.environ.get(SEMCONV_OPT_IN, "").split(",")}
    content = os.environ.get(CAPTURE_CONTENT, "").strip().lower() in _CONTENT_ON
    made = Conventions(genai=GENAI_OPT_IN in opt_in, content=content)
    _conventions = (generation, made)
    return made


def with_narrative_type(narrative_type: str, context: Context | None = None) -> Context:
    """``context`` (default: the current one) with the narrative type set for children."""
    return baggage.set_baggage(BAGGAGE_NARRATIVE_TYPE, narrative_type, context)


def current_narrative_type(context: Context | None = None) -> str | None:
    """The narrative type of ``context`` (default: the current one), if any."""
    value = baggage.get_baggage(BAGGAGE_NARRATIVE_TYPE, context)
    return value if isinstance(value, str) else None
