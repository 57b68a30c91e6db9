"""sfumato: a config-driven OpenTelemetry host for Python services.

import sfumato
with sfumato.configure("app.toml"):
    run()
"""

from __future__ import annotations

from ._errors import ConfigError
from ._loading import load_settings
from ._telemetry import Telemetry, active, after_fork, configure
from .hookspecs import hookimpl
from .settings import Settings

__all__ = [
    "ConfigError",
    "Settings",
    "Telemetry",
    "__version__",
    "active",
    "after_fork",
    "configure",
    "hookimpl",
    "load_settings",
]


def __getattr__(name: str) -> str:
    if name == "__version__":
        from importlib.metadata import version

        return version("sfumato")
    raise AttributeError(f"module 'sfumato' has no attribute {name!r}")
