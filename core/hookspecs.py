"""Hooks any plugin can implement to join cross-cutting work.

Implement them on a plugin class with ``@sfumato.hookimpl``; sfumato calls them with keyword
arguments, so an implementation may accept fewer arguments than the spec.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.trace import SpanProcessor

    from ._telemetry import Telemetry
    from .settings import Settings

__all__ = ["hookimpl", "hookspec"]

PROJECT = "sfumato"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def sfumato_resource_attributes(settings: Settings) -> Mapping[str, Any] | None:
    """Resource attributes to add; the config's own ``[telemetry.resource]`` wins."""


@hookspec
def sfumato_span_processors(settings: Settings) -> Sequence[SpanProcessor] | None:
    """Extra span processors, added after sfumato's export pipeline."""


@hookspec
def sfumato_metric_readers(settings: Settings) -> Sequence[MetricReader] | None:
    """Extra metric readers for the MeterProvider."""


@hookspec
def sfumato_configured(telemetry: Telemetry) -> None:
    """Called once the providers are installed."""


@hookspec
def sfumato_shutdown(telemetry: Telemetry) -> None:
    """Called when shutdown starts, before the providers flush."""
