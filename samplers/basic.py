"""Head samplers: ``always_on``, ``always_off``, ``parent_based`` and ``ratio``."""

from __future__ import annotations

from typing import Any, ClassVar

from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, Sampler, TraceIdRatioBased
from pydantic import BaseModel, ConfigDict, Field

from tempera.plugin import SamplerContext, SamplerPlugin, SamplerSpec

__all__ = ["AlwaysOff", "AlwaysOn", "ParentBasedSampler", "Ratio"]


class AlwaysOn(SamplerPlugin):
    def build(self, options: Any, context: SamplerContext) -> Sampler:
        return ALWAYS_ON


class AlwaysOff(SamplerPlugin):
    def build(self, options: Any, context: SamplerContext) -> Sampler:
        return ALWAYS_OFF


class RatioOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rate: float = Field(ge=0.0, le=1.0, description="Probability of keeping a trace.")


class Ratio(SamplerPlugin):
    Options: ClassVar[type[BaseModel]] = RatioOptions

    def build(self, options: Any, context: SamplerContext) -> Sampler:
        return TraceIdRatioBased(options.rate)


class ParentBasedOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    root: SamplerSpec = Field(
        default_factory=lambda: SamplerSpec(type="always_on"),
        description="Sampler for root spans; children follow their parent.",
    )


class ParentBasedSampler(SamplerPlugin):
    Options: ClassVar[type[BaseModel]] = ParentBasedOptions

    def build(self, options: Any, context: SamplerContext) -> Sampler:
        return ParentBased(root=context.build(options.root))
