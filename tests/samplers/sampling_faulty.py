"""Samplers that raise, reached by import path from the guard tests."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace.sampling import Sampler, SamplingResult
from sfumato.plugin import SamplerContext, SamplerPlugin
from sfumato.samplers import SpanStart, TraceEndSampler


class _RaisingOtel(Sampler):
    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        raise RuntimeError("boom")

    def get_description(self) -> str:
        return "raising"


class RaisingOtel(SamplerPlugin):
    """Builds a plain OpenTelemetry sampler (not sfumato's) that raises on every span."""

    def build(self, options: Any, context: SamplerContext) -> Sampler:
        return _RaisingOtel()


class _RaisingTail(TraceEndSampler):
    policy = "raising-tail"

    def probability(self, start: SpanStart) -> float:
        raise ValueError("no probability today")

    def keep_trace(self, trace: Any) -> bool:
        raise ValueError("no decision today")


class RaisingTail(SamplerPlugin):
    def build(self, options: Any, context: SamplerContext) -> Sampler:
        return _RaisingTail(context.stats)
