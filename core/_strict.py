"""``SFUMATO_STRICT=1``: failures sfumato would count and log are raised instead (for CI)."""

from __future__ import annotations

import os

__all__ = ["strict"]

_TRUE = ("1", "true", "yes", "on")


def strict() -> bool:
    """True when ``SFUMATO_STRICT`` is set to a true value (1, true, yes, on)."""
    return os.environ.get("SFUMATO_STRICT", "").strip().lower() in _TRUE
