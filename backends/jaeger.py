"""``jaeger``: Jaeger's OTLP receiver; Jaeger stores traces only."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field
from sfumato.plugin import Backend, BuildContext, ExporterUse
from sfumato.settings import Settings, Signal

from ._presets import otlp_use

__all__ = ["JaegerBackend"]


class JaegerOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint: str | None = Field(
        default=None,
        description="Jaeger's OTLP endpoint; default telemetry.otlp_endpoint, else "
        "http://localhost:4317 (gRPC) or http://localhost:4318 (http/protobuf).",
    )


class JaegerBackend(Backend):
    Options: ClassVar[type[BaseModel]] = JaegerOptions
    signals: ClassVar[frozenset[Signal]] = frozenset({"traces"})

    def plan(self, settings: Settings, options: Any, context: BuildContext) -> list[ExporterUse]:
        return [
            otlp_use(
                settings,
                self.signals,
                endpoint=options.endpoint,
                default_grpc="http://localhost:4317",
                default_http="http://localhost:4318",
            )
        ]
