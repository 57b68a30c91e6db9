"""An example third-party sfumato hook plugin (entry point ``deployment`` in the group
``sfumato.plugins``). Installed, it joins every ``sfumato.configure()``; no config names it.

- The deployment's identity on every span, as resource attributes read from the environment
  variables a deploy sets: ``DEPLOYMENT_ID`` as ``deployment.id`` and ``GIT_COMMIT`` as
  ``vcs.ref.head.revision``.
- A span processor that counts the spans that end, and those that end with an error; the
  counts are logged once, when sfumato shuts down.
"""

from __future__ import annotations

import logging
import os
import threading

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.trace import StatusCode
from sfumato import Telemetry, hookimpl

__all__ = ["ENVIRONMENT", "DeploymentHooks", "SpanCounter"]

log = logging.getLogger("sfumato_hook_example")

# Environment variable -> resource attribute (OpenTelemetry semantic conventions).
ENVIRONMENT = {"DEPLOYMENT_ID": "deployment.id", "GIT_COMMIT": "vcs.ref.head.revision"}


class SpanCounter(SpanProcessor):
    """Counts the spans that end, and those that end with an ERROR status."""

    def __init__(self) -> None:
        self.ended = 0
        self.errors = 0
        self._lock = threading.Lock()

    def on_end(self, span: ReadableSpan) -> None:
        # Called on the application's thread for every recorded span: keep it this small.
        failed = span.status.status_code is StatusCode.ERROR
        with self._lock:
            self.ended += 1
            if failed:
                self.errors += 1


class DeploymentHooks:
    """The plugin: sfumato makes one instance for each configure() and calls its hooks with
    keyword arguments, so each takes only the arguments it uses."""

    def __init__(self) -> None:
        self.counter = SpanCounter()

    @hookimpl
    def sfumato_resource_attributes(self) -> dict[str, str]:
        return {
            attribute: os.environ[variable]
            for variable, attribute in ENVIRONMENT.items()
            if os.environ.get(variable)
        }

    @hookimpl
    def sfumato_span_processors(self) -> list[SpanProcessor]:
        self.counter = SpanCounter()  # one count per pipeline built
        return [self.counter]

    @hookimpl
    def sfumato_shutdown(self, telemetry: Telemetry) -> None:
        log.info(
            "%s ended %d spans, %d with an error",
            telemetry.settings.service_name,
            self.counter.ended,
            self.counter.errors,
        )
