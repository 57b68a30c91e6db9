"""``tail``: rules decide each local unit when its root ends, first match first; the units no
rule matches keep the head's decision (``otherwise``).

    [telemetry.sampler]
    type = "tail"
    otherwise = { type = "ratio", rate = 0.05 }
    max_per_second = 200                          # kept units a second, all rules together

    [[telemetry.sampler.rules]]
    name = "health"
    when = { attribute = "http.route", glob = "/health*" }
    drop = true

    [[telemetry.sampler.rules]]
    name = "errors"
    when = { status = "error" }
    max_per_second = 100

    [[telemetry.sampler.rules]]
    name = "slow"
    when = { latency_ms = { gte = 2000 } }
    sample = 0.5

It is ``error-always`` without the error rule it always puts first (error-always takes the
same ``rules`` after its own): the head, the buffer, late spans and weights are the same.
"""

from __future__ import annotations

from typing import Any, ClassVar

from opentelemetry.sdk.trace.sampling import Sampler
from pydantic import BaseModel, Field
from sfumato._errors import ConfigError
from sfumato.plugin import SamplerContext, SamplerPlugin, SamplerSpec

from ._rules import Rule, tail_policy
from .error_always import ROOT_PATH, ErrorAlwaysSampler, TailBufferOptions

__all__ = ["Tail", "TailOptions", "tail_policy"]


class TailOptions(TailBufferOptions):
    rules: list[Rule] = Field(
        min_length=1,
        description="First match decides: each rule's 'when' (none: every unit), and its "
        "'sample' probability or 'drop'.",
    )
    otherwise: SamplerSpec = Field(
        default_factory=lambda: SamplerSpec(type="always_off"),
        description="The head sampler: decides the units no rule matches (default: "
        "always_off, the rules' units only).",
    )
    max_per_second: float | None = Field(
        default=None,
        gt=0,
        description="Units the rules keep per second at most, all rules together.",
    )
    keep_late_errors: bool = Field(
        default=True,
        description="A span with an error that ends after its unit was decided is kept "
        "(weight 1), unless a 'drop' rule decided the unit.",
    )


class Tail(SamplerPlugin):
    Options: ClassVar[type[BaseModel]] = TailOptions

    def build(self, options: Any, context: SamplerContext) -> Sampler:
        if context.path != ROOT_PATH:
            raise ConfigError(
                "tail decides when a trace's local unit ends, so it must be the root of the "
                "sampler tree ([telemetry.sampler]); nest the other samplers under its "
                "'otherwise'",
                key=context.path,
            )
        return ErrorAlwaysSampler(
            context.build(options.otherwise),
            options,
            context.stats,
            name="tail",
            errors=False,
            build=context.build,
        )
