"""Hooks any plugin can implement to join cross-cutting work.

Implement them on a plugin class with ``@sfumato.hookimpl``; sfumato calls them with keyword
arguments, so an implementation may accept fewer arguments than the spec.

The first six are called by ``configure()`` and the handle, on the plugins of the
``sfumato.plugins`` entry-point group. The ``sfumato_cli_*`` hooks, ``sfumato_metric_instruments``
and ``sfumato_doctor_endpoint`` are called by the ``sfumato`` command line only, on the plugins
of the ``sfumato.cli`` group (which ``configure()`` never imports).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import argparse

    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.trace import SpanProcessor

    from ._telemetry import Telemetry
    from .alerts import Instrument
    from .cli.doctor import DoctorEndpoint
    from .plugin import ScrubMatch
    from .settings import Settings, Signal

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


@hookspec(firstresult=True)
def sfumato_scrub(match: ScrubMatch) -> Any:
    """A secret the scrubber found (on the export thread): return the value to send instead
    (``match.value`` keeps it), or None to let it be replaced by ``[scrubbed]``. Called only
    for matches."""


@hookspec
def sfumato_configured(telemetry: Telemetry) -> None:
    """Called once the providers are installed."""


@hookspec
def sfumato_shutdown(telemetry: Telemetry) -> None:
    """Called when shutdown starts, before the providers flush."""


# -- the command line (plugins of the ``sfumato.cli`` group) ----------------------------------


@hookspec
def sfumato_cli_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add commands to ``sfumato``: each through :func:`sfumato.cli.add_command` (its one-line
    summary, details and exit codes), with ``func`` set to a function that takes the parsed
    arguments and returns the exit code. Raise :class:`sfumato.cli.CommandError` or
    ``ConfigError`` for a one-line error (exit 2 by default)."""


@hookspec
def sfumato_metric_instruments() -> Mapping[str, Instrument] | None:
    """The instruments a plugin records, by metric name: ``sfumato alerts`` takes each one's
    kind, unit and histogram boundaries from here (others count as counters, their unit
    from the rule)."""


@hookspec(firstresult=True)
def sfumato_doctor_endpoint(
    exporter: Any,
    options: Any,
    settings: Settings,
    signals: Sequence[Signal],
    key: str,
    timeout: float,
) -> DoctorEndpoint | None:
    """What ``sfumato doctor`` connects to and probes for an exporter this plugin knows (its
    endpoint and one OTLP export probe per signal, each waiting at most ``timeout``
    seconds); None for another exporter. ``key`` is where the exporter is configured
    (``telemetry.exporters[0]``, or the backend's key when the backend planned it). The
    first answer is taken; an exporter no plugin answers for is checked by its ``endpoint``
    option (an ``http(s)://`` URL) or, when it ``serves_port``, by binding its ``host`` and
    ``port``. Raise ConfigError for an endpoint the exporter cannot use (one finding)."""
