"""``stdout``: every signal printed to the console, for development."""

from __future__ import annotations

from typing import Any

from sfumato.plugin import Backend, BuildContext, ExporterUse
from sfumato.settings import SIGNALS, Settings

__all__ = ["StdoutBackend"]


class StdoutBackend(Backend):
    def plan(self, settings: Settings, options: Any, context: BuildContext) -> list[ExporterUse]:
        if settings.export_console:
            return []  # export_console already adds the console exporter
        return [ExporterUse("console", frozenset(SIGNALS))]
