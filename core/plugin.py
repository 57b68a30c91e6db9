"""What a plugin author implements: backends, exporters and samplers.

A plugin is a class registered under an entry point; its entry-point name is the name written
in TOML. The host instantiates it with no arguments and validates the plugin's TOML table with
its ``Options`` model (pydantic), so a plugin's errors read like the core's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeAlias, runtime_checkable

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.sampling import SamplingResult
from opentelemetry.trace import Link, Span, SpanContext, SpanKind
from opentelemetry.util.types import Attributes
from pydantic import BaseModel, ConfigDict, PrivateAttr

from ._stats import Stats
from .settings import SIGNALS, Settings, Signal, _scrubbed

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.sdk.trace.export import SpanExporter

    from ._otel import LogRecordExporter

    # What ``Exporter.create`` returns for a signal: the SDK's exporter of that signal, or
    # for metrics a reader that serves them itself (Prometheus).
    ExportTarget: TypeAlias = SpanExporter | MetricExporter | MetricReader | LogRecordExporter
    from opentelemetry.sdk.trace.sampling import Sampler


__all__ = [
    "Backend",
    "BufferingProcessor",
    "BuildContext",
    "Exporter",
    "ExporterUse",
    "NoOptions",
    "SamplerContext",
    "SamplerPlugin",
    "SamplerSpec",
    "ScrubMatch",
    "SpanSampler",
    "SpanStarter",
    "Stats",
    "TailStage",
    "TraceUnit",
]


@dataclass(frozen=True)
class ScrubMatch:
    """A secret the scrubber found, as the ``sfumato_scrub`` hook receives it."""

    path: str
    """Where: an attribute key, ``events.<event name>.<key>``, ``status.description``,
    ``body`` or ``body.<key>``."""
    value: Any
    """The value the rule matched: the whole attribute, or the part of a string."""
    matched: str
    """What matched: the secret's name in the key (``password``), or the rule of a value
    (``pair``, ``credentials``, ``token``, ``card``)."""


class NoOptions(BaseModel):
    """Options model of a plugin that takes none: any key is an error."""

    model_config = ConfigDict(extra="forbid")


class SamplerSpec(BaseModel):
    """A nested sampler inside a sampler's options: ``type`` plus that sampler's options.

    Declare fields of this type in a sampler's ``Options`` (``otherwise: SamplerSpec``); the
    host validates the nested table with the named sampler's own model, and
    ``SamplerContext.build(spec)`` builds it.
    """

    model_config = ConfigDict(extra="allow")

    type: str
    _node: Any = PrivateAttr(default=None)  # the resolved node, set by the host

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


@dataclass(frozen=True)
class ExporterUse:
    """One exporter a backend uses: its plugin name, the signals it carries, its options.

    Give secrets (a header's value, a token) as pydantic ``SecretStr``: the exporter's options
    model takes them as they are where it declares ``SecretStr``, and an OpenTelemetry
    exporter class (used by its entry-point name) gets the plain value when it is built. The
    repr never shows them, nor a plain value under a secret-looking key (``headers``,
    ``*_token``, ``*_key``, ...) or a URL's password.
    """

    exporter: str
    signals: frozenset[Signal]
    options: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"ExporterUse(exporter={self.exporter!r}, signals={self.signals!r}, "
            f"options={_scrubbed(self.options)!r})"
        )


@dataclass
class BuildContext:
    """What an exporter or backend may read while building."""

    settings: Settings
    stats: Stats
    notices: list[str] = field(default_factory=list)
    built: dict[tuple[str, Signal], Any] = field(default_factory=dict)

    def notice(self, message: str) -> None:
        """Tell the user something once at configure time (printed by the CLI, logged)."""
        self.notices.append(message)

    @property
    def environ(self) -> Mapping[str, str]:
        """The environment the settings were loaded from: the ``env`` mapping given to
        ``load_settings``, else the process's. Read secrets (API keys, tokens) from here."""
        given = getattr(self.settings, "_environ", None)
        return os.environ if given is None else given


class Backend:
    """A preset over exporters: which exporters, endpoints and headers per signal.

    ``signals`` are the signals the backend can take; the others are switched off with one
    notice.
    """

    Options: ClassVar[type[BaseModel]] = NoOptions
    signals: ClassVar[frozenset[Signal]] = frozenset(SIGNALS)

    def plan(self, settings: Settings, options: Any, context: BuildContext) -> list[ExporterUse]:
        raise NotImplementedError


class Exporter:
    """Builds an SDK exporter for one signal.

    ``create`` returns a ``SpanExporter`` for traces, a ``MetricExporter`` (push, wrapped in a
    periodic reader by the host) or a ``MetricReader`` (pull) for metrics, and a
    ``LogRecordExporter`` for logs. ``batched = False`` exports spans on the caller's thread
    (the in-memory exporter for tests); everything else goes through the export queue.
    """

    Options: ClassVar[type[BaseModel]] = NoOptions
    signals: ClassVar[frozenset[Signal]] = frozenset(SIGNALS)
    batched: ClassVar[bool] = True
    #: Modules ``create`` imports, each with the requirement that installs it
    #: (``{"prometheus_client": "sfumato[prometheus]"}``): ``sfumato validate`` imports them,
    #: so a missing optional extra is a config error naming the ``pip install`` that fixes it.
    requires: ClassVar[Mapping[str, str]] = {}
    #: True for an exporter that listens on a port (its options' ``host`` and ``port``), as
    #: ``prometheus`` serves ``/metrics``: ``sfumato doctor`` checks that the port is free.
    serves_port: ClassVar[bool] = False

    def check(self, signal: Signal, options: Any, context: BuildContext) -> None:
        """Raise ConfigError for whatever ``create`` would reject (an endpoint it cannot use, a
        file it cannot read), without connecting, binding a port or writing anything.

        ``sfumato validate`` and ``configure()`` call it for each signal the exporter carries,
        so a config that validates also builds. The default checks nothing.
        """

    def create(self, signal: Signal, options: Any, context: BuildContext) -> ExportTarget:
        raise NotImplementedError


@dataclass
class SamplerContext:
    """Handed to ``SamplerPlugin.build``: settings, stats and a way to build nested samplers."""

    settings: Settings
    stats: Stats
    build: Callable[[SamplerSpec], Sampler]
    path: str = "telemetry.sampler"


class SamplerPlugin:
    """Builds an OpenTelemetry ``Sampler`` from validated options."""

    Options: ClassVar[type[BaseModel]] = NoOptions

    def build(self, options: Any, context: SamplerContext) -> Sampler:
        raise NotImplementedError


@runtime_checkable
class TailStage(Protocol):
    """A sampler that decides again when a trace's local root ends.

    When the root of the sampler tree has this method, the pipeline puts the returned
    processor in front of the export processors: it sees every recorded span and forwards
    only those of kept traces.
    """

    def tail_processor(self, downstream: SpanProcessor, stats: Stats) -> SpanProcessor: ...


@runtime_checkable
class TailControl(Protocol):
    """What the handle asks of a tail stage's processor: ``expire()`` at each flush
    (decide the units open past their age, let go of what waits past its time), and
    ``decide_all()`` at shutdown, before the export queues close, so that what it keeps is
    sent rather than dropped."""

    def expire(self) -> None: ...

    def decide_all(self, reason: str) -> None: ...


@runtime_checkable
class SpanSampler(Protocol):
    """A sampler that sfumato's tracer calls with the parent span context it has already
    looked up, instead of ``should_sample`` (every sampler of sfumato's own is one).

    ``sample_span`` takes ``parent``, the valid parent span context or None for a root, then
    what ``should_sample`` takes. ``plain_attributes = True`` promises that a decision adds
    only plain values (str, int, float, bool) to the span's attributes, and that an
    attribute dict it returns, other than the one it was given, is new: the tracer then keeps
    that dict as the span's own without a second look.
    """

    @property
    def plain_attributes(self) -> bool:
        """True: a decision adds only plain values, and a dict it returns is new."""

    def sample_span(
        self,
        parent: SpanContext | None,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
    ) -> SamplingResult: ...


@runtime_checkable
class TraceUnit(Protocol):
    """The local trace a buffering processor opens for a local root span (see
    ``BufferingProcessor``): its local descendants append themselves to ``spans`` as they
    end, while it is the same list they read and shorter than ``room``."""

    @property
    def spans(self) -> list[ReadableSpan] | None:
        """The ended spans, in end order; None once the unit is decided."""

    @property
    def room(self) -> int:
        """How many spans the list may hold."""

    @property
    def root(self) -> ReadableSpan | None:
        """The local root span."""

    @property
    def owner(self) -> object:
        """The processor that opened it."""

    def included(self, span: ReadableSpan, spans: list[ReadableSpan]) -> bool:
        """Whether ``span``, appended to ``spans`` as the unit was being decided, was in
        the decision (else it goes through the processor's ``on_end`` as a late span)."""
        ...


@runtime_checkable
class BufferingProcessor(Protocol):
    """A span processor that buffers each local trace (sfumato's tail processor). As a local
    root span starts, sfumato's tracer opens its unit; descendants then end into the unit
    without calling ``on_end``, and the root's end (through ``on_end``) decides it."""

    def open_trace(self, root: ReadableSpan, trace_id: int, span_id: int) -> TraceUnit | None:
        """The unit of the local trace ``root`` starts, or None (its spans then go through
        ``on_end``)."""
        ...


@runtime_checkable
class SpanStarter(Protocol):
    """What sfumato's tracer offers span helpers besides the SDK's ``start_span``: the same
    method with two keywords. ``current`` is the context the parent is read from when
    ``context`` is None, for a caller that has read the current context already;
    ``trusted=True`` says the attributes have only non-empty string keys and plain values
    (str, int, float, bool), so the tracer does not check them again."""

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Attributes = None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        *,
        current: Context | None = None,
        trusted: bool = False,
    ) -> Span: ...
