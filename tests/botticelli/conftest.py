"""Fixtures for the Botticelli instrumentation tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sfumato
from botticelli_support import configure_memory


@pytest.fixture
def telemetry() -> Iterator[sfumato.Telemetry]:
    handle = configure_memory()
    try:
        yield handle
    finally:
        handle.shutdown()
