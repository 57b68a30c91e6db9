"""What the span path does with arguments it cannot use: mend them or drop them, count it,
say so once per kind of call, and never raise into the application."""

from __future__ import annotations

import logging
from typing import Any

from opentelemetry.trace import SpanKind

__all__ = ["TIME_LIMIT", "mend_kind", "mend_time", "rejected", "safe_text"]

log = logging.getLogger("sfumato")

# Times are nanoseconds since the epoch in an unsigned 64-bit field of OTLP.
TIME_LIMIT = 2**64
# The span calls that were reported once already.
_WARNED_CALLS: set[str] = set()


def safe_text(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__} that cannot be shown>"


def rejected(api_errors: Any, call: str, exc: Exception) -> None:
    """A span method the application called raised: what it gave is dropped, counted in
    ``api_errors`` (stats ``spans.api_errors``), and said once per kind of call."""
    if api_errors is not None:
        api_errors.incr()
    if call not in _WARNED_CALLS:
        _WARNED_CALLS.add(call)
        log.warning(
            "sfumato: span.%s() failed (%s: %s): what it was given is dropped; such calls "
            "are counted as spans.api_errors in stats(), this warning is not repeated",
            call,
            type(exc).__name__,
            safe_text(exc),
        )


def mend_kind(api_errors: Any, kind: object) -> SpanKind:
    """A ``SpanKind`` for what was given: its name (``"server"``) is mended, anything else
    is INTERNAL and counted."""
    if isinstance(kind, SpanKind):
        return kind
    if isinstance(kind, str) and kind.upper() in SpanKind.__members__:
        return SpanKind[kind.upper()]
    rejected(
        api_errors, "start_span", TypeError(f"kind must be a SpanKind, got {type(kind).__name__}")
    )
    return SpanKind.INTERNAL


def mend_time(api_errors: Any, call: str, value: object) -> int | None:
    """A time in nanoseconds for what was given: a number is made an int, anything else is
    dropped (the time of the call is used) and counted."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            time = int(value)
        except (OverflowError, ValueError):
            time = -1  # an infinity or NaN
        if 0 <= time < TIME_LIMIT:
            return time
    what = f"a time in ns since the epoch (0 to 2**64), got {type(value).__name__}"
    rejected(api_errors, call, TypeError(what))
    return None
