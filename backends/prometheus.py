"""``prometheus``: metrics served for scraping; Prometheus takes no traces or logs."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field
from sfumato.plugin import Backend, BuildContext, ExporterUse
from sfumato.settings import Settings, Signal

__all__ = ["PrometheusBackend"]


class PrometheusBackendOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(default="127.0.0.1", description="Bind address; loopback unless asked.")
    port: int = Field(default=9464, ge=0, le=65535, description="Port of /metrics; 0 picks one.")


class PrometheusBackend(Backend):
    Options: ClassVar[type[BaseModel]] = PrometheusBackendOptions
    signals: ClassVar[frozenset[Signal]] = frozenset({"metrics"})

    def plan(self, settings: Settings, options: Any, context: BuildContext) -> list[ExporterUse]:
        return [
            ExporterUse("prometheus", self.signals, {"host": options.host, "port": options.port})
        ]
