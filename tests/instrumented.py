"""Shared by the instrumentation tests: sfumato configured with a memory exporter and the
instrumentations asked for, and the spans it exported."""

from __future__ import annotations

from typing import Any

import sfumato


def configure(*, sampler: dict[str, Any] | None = None, **instrumentations: Any) -> Any:
    """Traces only, to the memory exporter, with ``instrumentations`` (and ``sampler``)."""
    return sfumato.configure(
        None,
        service_name="instrumented",
        backend="none",
        exporters=[{"type": "memory"}],
        metrics={"enabled": False},
        logs={"enabled": False},
        instrumentations=instrumentations,
        **({"sampler": sampler} if sampler else {}),
    )


def spans(telemetry: Any) -> list[Any]:
    telemetry.force_flush(5)
    return list(telemetry.exporter("memory").get_finished_spans())
