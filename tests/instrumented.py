"""Shared by the instrumentation tests: sfumato configured with a memory exporter and the
instrumentations asked for, the spans it exported, and a FastAPI application served on
loopback."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import fastapi
import sfumato
import uvicorn
from receivers import free_port, wait_until


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


@contextmanager
def serving() -> Iterator[str]:
    """A FastAPI application served by uvicorn on loopback, whose /hello answers. FastAPI's
    instrumentation wraps the applications made after it is instrumented: this one is made
    when entered."""
    app = fastapi.FastAPI()

    @app.get("/hello")
    def hello() -> str:
        return "hello"

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout=10)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
