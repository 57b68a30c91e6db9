"""Building a local store with known content for the tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from sfumato._stats import Stats
from sfumato.plugin import BuildContext
from sfumato.plugins.local.exporters import LocalExporter
from sfumato.plugins.local.options import LocalOptions
from sfumato.settings import Settings


def context() -> BuildContext:
    return BuildContext(settings=Settings(), stats=Stats())


def local_exporter(
    directory: Path, signal: str = "traces", ctx: BuildContext | None = None, **options: Any
) -> Any:
    opts = LocalOptions(directory=str(directory), **options)
    return LocalExporter().create(signal, opts, ctx or context())  # type: ignore[arg-type]


def provider(directory: Path, service: str = "svc", **options: Any) -> TracerProvider:
    """A TracerProvider writing each ended span straight into the store at ``directory``."""
    tp = TracerProvider(resource=Resource.create({"service.name": service}))
    tp.add_span_processor(SimpleSpanProcessor(local_exporter(directory, **options)))
    return tp
