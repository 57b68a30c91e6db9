"""``local``: the embedded default. Every signal goes to OTLP/JSON lines files in a directory
(``.sfumato/`` unless ``backend_options.directory`` says otherwise), readable with
``sfumato report`` and replayable into any backend through a Collector."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel
from sfumato.plugin import Backend, BuildContext, ExporterUse
from sfumato.plugins.local.options import LocalOptions
from sfumato.settings import SIGNALS, Settings

__all__ = ["LocalBackend"]


class LocalBackend(Backend):
    Options: ClassVar[type[BaseModel]] = LocalOptions

    def plan(self, settings: Settings, options: Any, context: BuildContext) -> list[ExporterUse]:
        return [ExporterUse("local", frozenset(SIGNALS), options.model_dump())]
