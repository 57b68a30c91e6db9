"""An example third-party sfumato sampler: keep traces whose root span name matches a glob,
each glob at its own rate.

[telemetry.sampler]
type = "glob-rate"
default = 0.1
rules = [{ glob = "health*", rate = 0.0 }, { glob = "checkout.*", rate = 1.0 }]
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field
from sfumato.plugin import SamplerContext, SamplerPlugin
from sfumato.samplers import HeadSampler, SpanStart

__all__ = ["GlobRate", "GlobRateOptions", "GlobRateSampler", "GlobRule"]


class GlobRule(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is a located ConfigError

    glob: str = Field(min_length=1, description="Glob on the root span's name, e.g. 'health*'.")
    rate: float = Field(ge=0.0, le=1.0, description="Keep probability of matching traces.")


class GlobRateOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[GlobRule] = Field(default_factory=list, description="First match decides.")
    default: float = Field(default=1.0, ge=0.0, le=1.0, description="Rate when none matches.")


class GlobRateSampler(HeadSampler):
    """Decides at the root span; sfumato makes the rest of the trace follow it."""

    policy = "glob-rate"  # recorded on kept spans as sampling.policy

    def __init__(self, options: GlobRateOptions, stats: Any = None) -> None:
        super().__init__(stats)
        self.rules = [(rule.glob, rule.rate) for rule in options.rules]
        self.default = options.default

    def probability(self, start: SpanStart) -> float:
        for glob, rate in self.rules:
            if fnmatchcase(start.name, glob):
                return rate
        return self.default


class GlobRate(SamplerPlugin):
    """The plugin: sfumato validates the TOML table with Options, then calls build()."""

    Options: ClassVar[type[BaseModel]] = GlobRateOptions

    def build(self, options: Any, context: SamplerContext) -> GlobRateSampler:
        return GlobRateSampler(options, context.stats)
