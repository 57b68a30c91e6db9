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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under ``SFUMATO_OTEL_FALLBACK=1`` (the run ``test_fallback.py`` makes) the tests of the
    fast path itself are deselected, not skipped: nothing skips under CI. On an SDK whose shape
    the fast path does not fit (not forced), they run, and fail."""
    from sfumato import _otel

    if not _otel.FORCED:
        return
    fast = [item for item in items if item.get_closest_marker("fast_path")]
    if fast:
        config.hook.pytest_deselected(items=fast)
        items[:] = [item for item in items if not item.get_closest_marker("fast_path")]
