"""``otlp``: any OTLP receiver, over gRPC or HTTP per ``protocol``."""

from __future__ import annotations

from typing import Any

from sfumato.plugin import Backend, BuildContext, ExporterUse
from sfumato.settings import SIGNALS, Settings

__all__ = ["OtlpBackend"]


class OtlpBackend(Backend):
    def plan(self, settings: Settings, options: Any, context: BuildContext) -> list[ExporterUse]:
        exporter = "otlp-grpc" if settings.protocol == "grpc" else "otlp-http"
        return [ExporterUse(exporter, frozenset(SIGNALS))]
