"""A sampler that nests two others: a trace its caller marks for debugging, with the W3C
baggage entry ``sampling.debug=true``, goes to ``debug``; every other trace to ``otherwise``.

[telemetry.sampler]
type = "debug-baggage"
[telemetry.sampler.otherwise]
type = "glob-rate"
default = 0.1
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from opentelemetry import baggage
from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes
from pydantic import BaseModel, ConfigDict, Field
from sfumato.plugin import SamplerContext, SamplerPlugin, SamplerSpec

__all__ = ["DebugBaggage", "DebugBaggageOptions", "DebugBaggageSampler"]


class DebugBaggageOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(
        default="sampling.debug", min_length=1, description="Baggage entry; true or 1 marks."
    )
    # A SamplerSpec is a nested sampler table: `type` plus that sampler's options, validated
    # by sfumato with the named sampler's own Options model.
    debug: SamplerSpec = Field(
        default_factory=lambda: SamplerSpec(type="always_on"),
        description="Decides the marked traces (default: keep them all).",
    )
    otherwise: SamplerSpec = Field(description="Decides every other trace.")


class DebugBaggageSampler(Sampler):
    """Hands each span to one of two samplers, by the baggage in its context."""

    def __init__(self, key: str, debug: Sampler, otherwise: Sampler) -> None:
        self.key = key
        self.debug = debug
        self.otherwise = otherwise

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        marked = str(baggage.get_baggage(self.key, parent_context)).lower() in ("true", "1")
        chosen = self.debug if marked else self.otherwise
        # Every nested sampler is an OpenTelemetry Sampler, whatever its kind: hand the call
        # on and return its result (decision, weight attributes, tracestate) unchanged.
        return chosen.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        debug, otherwise = self.debug.get_description(), self.otherwise.get_description()
        return f"DebugBaggage{{{self.key}: {debug}, otherwise: {otherwise}}}"


class DebugBaggage(SamplerPlugin):
    """The plugin: sfumato has validated both nested tables; context.build builds them."""

    Options: ClassVar[type[BaseModel]] = DebugBaggageOptions

    def build(self, options: Any, context: SamplerContext) -> DebugBaggageSampler:
        debug, otherwise = context.build(options.debug), context.build(options.otherwise)
        return DebugBaggageSampler(options.key, debug, otherwise)
