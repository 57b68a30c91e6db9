"""Shared pytest configuration. Fixture modules are registered as plugins, one line each."""

from collections.abc import Iterator

import pytest
import sfumato

pytest_plugins = ["receivers", "loopback_receivers", "venv_support"]


@pytest.fixture(autouse=True)
def _no_telemetry_left_running() -> Iterator[None]:
    """A test that fails before its own shutdown() must not fail every later configure().

    Only a handle the test itself started is shut down: one a module-scoped fixture made
    before the test stays running for the module's other tests."""
    before = sfumato.active()
    yield
    running = sfumato.active()
    if running is not None and running is not before:
        running.shutdown(timeout=2.0)
