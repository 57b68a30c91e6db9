"""``signoz``: SigNoz (self-hosted or cloud) over OTLP, all three signals."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from sfumato.plugin import Backend, BuildContext, ExporterUse
from sfumato.settings import SIGNALS, Settings, Signal

from ._presets import from_environment, otlp_use

__all__ = ["SignozBackend"]


class SignozOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint: str | None = Field(
        default=None,
        description="SigNoz's OTLP endpoint; default telemetry.otlp_endpoint, else "
        "http://localhost:4317 (gRPC) or http://localhost:4318 (http/protobuf).",
    )
    ingestion_key_env: str | None = Field(
        default=None,
        description="SigNoz Cloud: environment variable holding the ingestion key, sent as "
        "the signoz-ingestion-key header.",
    )


class SignozBackend(Backend):
    Options: ClassVar[type[BaseModel]] = SignozOptions
    signals: ClassVar[frozenset[Signal]] = frozenset(SIGNALS)

    def plan(self, settings: Settings, options: Any, context: BuildContext) -> list[ExporterUse]:
        headers: dict[str, SecretStr] = {}
        if options.ingestion_key_env:
            headers["signoz-ingestion-key"] = from_environment(
                options.ingestion_key_env, "SigNoz ingestion key", context.environ
            )
        return [
            otlp_use(
                settings,
                self.signals,
                endpoint=options.endpoint,
                default_grpc="http://localhost:4317",
                default_http="http://localhost:4318",
                headers=headers,
            )
        ]
