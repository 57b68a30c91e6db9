"""sfumato's tracer providers, and the tracers an application took before a re-configure.

With the fast path (``_otel.FAST``) a provider hands out ``SfumatoTracer`` objects: SDK
tracers whose span path is ``_otel.FastTracer``'s, plus ``start_as_current_span`` as a small
class (``_current.CurrentSpan``). Otherwise ``SdkTracerProvider`` hands out the SDK's own
tracers. Either way ``follow_global`` makes the tracers an application took from an earlier
global provider follow the one installed now.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.trace import SpanKind
from opentelemetry.util import types

from . import _otel
from ._current import CurrentSpan
from ._safe import SafeTracer
from .plugin import SpanStarter

__all__ = ["SdkTracerProvider", "SfumatoTracer", "SfumatoTracerProvider", "follow_global"]

log = logging.getLogger("sfumato")

_INTERNAL = SpanKind.INTERNAL


class SfumatoTracer(_otel.FastTracer):
    """An SDK tracer with a shorter span path (see ``docs/internals.md``).

    ``start_span`` takes two keywords besides the SDK's: ``current`` (the context the parent
    is read from, for a caller that has already read it) and ``trusted`` (the attributes
    are known to be clean); see ``FastTracer.start_span``.
    """

    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = _INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[trace_api.Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> CurrentSpan:
        return CurrentSpan(
            self,
            name,
            context,
            kind,
            attributes,
            links,
            start_time,
            record_exception,
            set_status_on_exception,
            end_on_exit,
        )


if TYPE_CHECKING:
    # mypy checks that sfumato's tracer is what the span helpers ask of it.
    _STARTER: type[SpanStarter] = SfumatoTracer


class _Following:
    """Remembers each tracer it handed out with the arguments it was asked for, so that a
    tracer of an earlier provider can become this one's for the same scope."""

    _global = False  # installed as the global provider (follow_global) at least once

    def _remember(self, tracer: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        made = self.__dict__.setdefault("_sfumato_made", {})
        if id(tracer) not in made:
            with _MADE_LOCK:
                made.setdefault(id(tracer), (tracer, args, kwargs))
            _SCOPES[tracer] = (args, kwargs)
            if self._global:
                _GLOBAL_TRACERS.add(tracer)

    def made_tracers(self) -> list[tuple[Any, tuple[Any, ...], dict[str, Any]]]:
        """(tracer, get_tracer's args, its keywords) of every tracer handed out."""
        with _MADE_LOCK:
            return list(self.__dict__.get("_sfumato_made", {}).values())


_MADE_LOCK = threading.Lock()


class SfumatoTracerProvider(_Following, _otel.FastTracerProvider):
    """The SDK's provider, handing out ``SfumatoTracer`` objects."""

    tracer_class = SfumatoTracer

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace_api.Tracer:
        tracer = super().get_tracer(*args, **kwargs)
        self._remember(tracer, args, kwargs)
        return tracer


class SdkTracerProvider(_Following, sdk_trace.TracerProvider):
    """The SDK's own provider and tracers (the path taken when ``_otel.FAST`` is False),
    each tracer wrapped so that its spans keep sfumato's promises (``_safe.SafeTracer``)."""

    api_errors: Any = None

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace_api.Tracer:
        inner = super().get_tracer(*args, **kwargs)
        wrapped: dict[int, SafeTracer] = self.__dict__.setdefault("_sfumato_safe", {})
        tracer = wrapped.get(id(inner))
        if tracer is None:
            with _MADE_LOCK:
                tracer = wrapped.setdefault(id(inner), SafeTracer(inner, self.api_errors))
        self._remember(tracer, args, kwargs)
        return tracer


def tracer_provider_class() -> type[sdk_trace.TracerProvider]:
    """The provider ``configure()`` builds: sfumato's own on the fast path, else the SDK's."""
    return SfumatoTracerProvider if _otel.FAST else SdkTracerProvider


# Every tracer handed out by a provider that was installed globally (the API's
# ``trace.get_tracer`` and its proxy tracers cache them): each follows the provider
# installed last, see ``follow_global``.
_GLOBAL_TRACERS: weakref.WeakSet[Any] = weakref.WeakSet()
# The get_tracer arguments of each of them, to ask the next provider for the same scope.
_SCOPES: weakref.WeakKeyDictionary[Any, tuple[tuple[Any, ...], dict[str, Any]]] = (
    weakref.WeakKeyDictionary()
)


def follow_global(provider: Any) -> None:
    """``provider`` is now the global tracer provider: every tracer an earlier global
    provider handed out becomes this one's tracer for the same instrumentation scope.

    Applications keep the tracers they got (``tracer = trace.get_tracer(__name__)`` at import,
    the API's proxy tracers keep the first real one they found): after ``shutdown()`` and a
    new ``configure()``, or in a forked child whose pipelines were re-created, those spans
    go to the pipeline running now instead of a shut-down one. An old tracer takes the new
    one's attribute dict itself (shared, not copied), so it stays the same as the new tracer
    whatever changes later, and the span path does exactly what it did before.
    """
    if not isinstance(provider, _Following):
        return
    try:
        provider._global = True
        mine = provider.made_tracers()
        for tracer, _, _ in mine:
            _GLOBAL_TRACERS.add(tracer)
        own = {id(t) for t, _, _ in mine}
        for old in list(_GLOBAL_TRACERS):
            if id(old) in own:
                continue
            scope = _SCOPES.get(old)
            if scope is None:
                continue
            new = provider.get_tracer(*scope[0], **scope[1])  # type: ignore[attr-defined]
            if type(new) is type(old) and new is not old:
                old.__dict__ = new.__dict__
                _SCOPES[old] = scope
    except Exception:
        log.warning("sfumato: tracers taken earlier may still feed the old pipeline", exc_info=True)
