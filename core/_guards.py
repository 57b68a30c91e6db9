"""Plugin code isolated from the application: raising hooks and span processors are counted
and logged once, and ``SFUMATO_STRICT=1`` turns them into errors (for CI).

What a plugin runs on the application's thread (a span processor's ``on_start`` /
``on_end``) or while sfumato starts (a hook) must not break the application. Each failure
bumps ``plugins.errors`` and ``plugins.<name>.errors``; the first of each plugin is logged
with its traceback. In strict mode the exception is re-raised after it is counted (hooks at
configure time as a ConfigError), so a test suite sees it at once.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from ._errors import ConfigError
from ._stats import Stats

__all__ = ["GuardedSpanProcessor", "PluginErrors", "call_hook", "strict"]

log = logging.getLogger("sfumato")

_TRUE = ("1", "true", "yes", "on")


def strict() -> bool:
    """True when ``SFUMATO_STRICT`` is set to a true value (1, true, yes, on)."""
    return os.environ.get("SFUMATO_STRICT", "").strip().lower() in _TRUE


class PluginErrors:
    """Counts and logs (once per plugin) the failures of one plugin."""

    __slots__ = ("_errors", "_logged", "_mine", "name")

    def __init__(self, name: str, stats: Stats) -> None:
        self.name = name
        self._errors = stats.counter("plugins.errors")
        self._mine = stats.counter(f"plugins.{name}.errors")
        self._logged = False

    def record(self, what: str) -> None:
        """Count a failure, logging the first; from an ``except`` block the log line has the
        traceback, elsewhere (a plugin that failed to import, described in ``what``) not."""
        self._errors.incr()
        self._mine.incr()
        if not self._logged:
            self._logged = True
            log.warning(
                "sfumato: plugin %r raised in %s; isolated (counted as plugins.errors, "
                "logged once; SFUMATO_STRICT=1 makes it an error)",
                self.name,
                what,
                exc_info=sys.exc_info()[0] is not None,
            )


class GuardedSpanProcessor(SpanProcessor):
    """A plugin's span processor whose exceptions never reach the application.

    The SDK calls every processor's ``on_start`` and ``on_end`` on the application's thread
    without catching anything, so an unguarded processor's bug is the application's crash.
    """

    def __init__(self, processor: SpanProcessor, name: str, stats: Stats) -> None:
        self.processor = processor
        self.errors = PluginErrors(name, stats)

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            self.processor.on_start(span, parent_context=parent_context)
        except Exception:
            self.errors.record("on_start")
            if strict():
                raise

    def _on_ending(self, span: Span) -> None:
        try:
            on_ending = getattr(self.processor, "_on_ending", None)
            if on_ending is not None:
                on_ending(span)
        except Exception:
            self.errors.record("_on_ending")
            if strict():
                raise

    def on_end(self, span: ReadableSpan) -> None:
        try:
            self.processor.on_end(span)
        except Exception:
            self.errors.record("on_end")
            if strict():
                raise

    def shutdown(self) -> None:
        try:
            self.processor.shutdown()
        except Exception:
            self.errors.record("shutdown")

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        try:
            return bool(self.processor.force_flush(timeout_millis))
        except Exception:
            self.errors.record("force_flush")
            return False


def call_hook(pm: Any, hook: str, stats: Stats, **kwargs: Any) -> list[Any]:
    """Call each implementation of ``hook`` on its own, as pluggy would (last registered
    first), so one raising plugin does not take the others' results with it.

    A raising implementation is counted and logged once and left out; in strict mode it is a
    ConfigError naming the plugin.
    """
    results: list[Any] = []
    for impl in reversed(getattr(pm.hook, hook).get_hookimpls()):
        try:
            result = impl.function(**{name: kwargs[name] for name in impl.argnames})
        except Exception as exc:
            name = impl.plugin_name
            if strict():
                raise ConfigError(
                    f"plugin {name!r} raised in {hook}: {type(exc).__name__}: {exc} "
                    "(SFUMATO_STRICT is set)"
                ) from None
            PluginErrors(name, stats).record(hook)
            continue
        if result is not None:
            results.append(result)
    return results
