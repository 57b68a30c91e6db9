"""``none``: nothing is exported; the API still works and spans are still sampled."""

from __future__ import annotations

from typing import Any, ClassVar

from sfumato.plugin import Backend, BuildContext, ExporterUse
from sfumato.settings import Settings, Signal

__all__ = ["NoneBackend"]


class NoneBackend(Backend):
    # Takes every signal so that no "switched off" notice is printed: sending nothing is
    # what was asked for. ``[[telemetry.exporters]]`` and export_console still apply.
    signals: ClassVar[frozenset[Signal]] = frozenset({"traces", "metrics", "logs"})

    def plan(self, settings: Settings, options: Any, context: BuildContext) -> list[ExporterUse]:
        return []
