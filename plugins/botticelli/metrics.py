"""Botticelli's metrics, under the exact names of its telemetry plan.

``BotMetrics`` creates its instruments from the global MeterProvider the first time it records,
and again whenever ``sfumato.configure()`` has installed a new provider since, so one made at
import time (before ``configure()``) records into whatever pipeline is running, and keeps
doing so across a shutdown and a second ``configure()``. Every attribute set goes through a
per-instrument :class:`CardinalityGuard`. No method raises into the caller: telemetry must
never break the bot.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from opentelemetry import metrics as metrics_api
from sfumato import _otel
from sfumato._otel import FOLD_AT, NUMBERS, Series, SeriesRecorder, reader_storages_of

from .cardinality import DEFAULT_CAP, CardinalityGuard

__all__ = [
    "GENAI_DURATION_BUCKETS",
    "GENAI_INSTRUMENTS",
    "GENAI_TOKEN_BUCKETS",
    "INSTRUMENTS",
    "SECONDS_BUCKETS",
    "BotMetrics",
    "InstrumentSpec",
    "default_metrics",
]

log = logging.getLogger("sfumato.botticelli")

Kind = Literal["counter", "histogram", "up_down_counter", "gauge"]

# Bucket boundaries for durations in seconds: from a 5 ms act to a 5-minute narrative. The SDK's
# default boundaries (0..10000) suit milliseconds and would put every duration in one bucket.
SECONDS_BUCKETS: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
)
# The buckets OpenTelemetry's GenAI metric conventions document for
# gen_ai.client.operation.duration (seconds) and gen_ai.client.token.usage (tokens).
GENAI_DURATION_BUCKETS: Final = (
    *(0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64),
    *(1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92),
)
GENAI_TOKEN_BUCKETS: Final = (
    *(1, 4, 16, 64, 256, 1024, 4096),
    *(16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864),
)


@dataclass(frozen=True)
class InstrumentSpec:
    name: str
    kind: Kind
    unit: str
    description: str
    keys: tuple[str, ...]
    buckets: tuple[float, ...] = SECONDS_BUCKETS  # a histogram's bucket boundaries


INSTRUMENTS: Final[tuple[InstrumentSpec, ...]] = (
    # bots
    InstrumentSpec(
        "bot.generation.runs",
        "counter",
        "{run}",
        "Content generation runs, by topic and outcome (success or failure).",
        ("topic", "outcome", "model"),
    ),
    InstrumentSpec(
        "bot.generation.duration",
        "histogram",
        "s",
        "Duration of one content generation run.",
        ("topic", "outcome", "model"),
    ),
    InstrumentSpec(
        "bot.generation.tokens.used",
        "counter",
        "{token}",
        "LLM tokens used by content generation.",
        ("topic", "model"),
    ),
    InstrumentSpec(
        "bot.curation.approved",
        "counter",
        "{item}",
        "Generated items approved by curation.",
        ("topic",),
    ),
    InstrumentSpec(
        "bot.curation.rejected",
        "counter",
        "{item}",
        "Generated items rejected by curation.",
        ("topic", "reason"),
    ),
    InstrumentSpec(
        "bot.posting.published",
        "counter",
        "{post}",
        "Items published to a platform.",
        ("topic", "platform"),
    ),
    InstrumentSpec(
        "bot.posting.failed",
        "counter",
        "{post}",
        "Publication attempts that failed.",
        ("topic", "platform", "error.type"),
    ),
    # narratives
    InstrumentSpec(
        "narrative.execution.duration",
        "histogram",
        "s",
        "Duration of one narrative, root span to end, by type and outcome.",
        ("narrative.type", "outcome"),
    ),
    InstrumentSpec(
        "narrative.act.duration",
        "histogram",
        "s",
        "Duration of one act of a narrative.",
        ("narrative.type", "narrative.act", "outcome"),
    ),
    InstrumentSpec(
        "narrative.json.parse.failures",
        "counter",
        "{parse}",
        "LLM responses that failed to parse as the JSON the act expected.",
        ("narrative.type", "narrative.act"),
    ),
    InstrumentSpec(
        "narrative.json.parse.success",
        "counter",
        "{parse}",
        "LLM responses parsed as the JSON the act expected.",
        ("narrative.type", "narrative.act"),
    ),
    # system
    InstrumentSpec(
        "database.query.duration",
        "histogram",
        "s",
        "Duration of one database query.",
        ("operation", "table", "outcome"),
    ),
    InstrumentSpec(
        "database.connection.pool.size",
        "gauge",
        "{connection}",
        "Connections currently open in the database pool.",
        ("pool",),
    ),
    InstrumentSpec(
        "api.requests",
        "counter",
        "{request}",
        "Requests made to external APIs.",
        ("endpoint", "method", "status_code", "outcome"),
    ),
    InstrumentSpec(
        "api.requests.duration",
        "histogram",
        "s",
        "Duration of one request to an external API.",
        ("endpoint", "method", "status_code", "outcome"),
    ),
)


# The GenAI client metrics of OpenTelemetry's conventions, recorded by ``llm_call`` when
# OTEL_SEMCONV_STABILITY_OPT_IN holds gen_ai_latest_experimental (not part of the plan).
GENAI_INSTRUMENTS: Final[tuple[InstrumentSpec, ...]] = (
    InstrumentSpec(
        "gen_ai.client.operation.duration",
        "histogram",
        "s",
        "GenAI operation duration.",
        ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model", "error.type"),
        GENAI_DURATION_BUCKETS,
    ),
    InstrumentSpec(
        "gen_ai.client.token.usage",
        "histogram",
        "{token}",
        "Number of input and output tokens used.",
        (
            "gen_ai.operation.name",
            "gen_ai.provider.name",
            "gen_ai.request.model",
            "gen_ai.token.type",
        ),
        GENAI_TOKEN_BUCKETS,
    ),
)
_ALL: Final = INSTRUMENTS + GENAI_INSTRUMENTS

_METHOD = {"counter": "add", "up_down_counter": "add", "gauge": "set", "histogram": "record"}
SPECS: Final[dict[str, InstrumentSpec]] = {spec.name: spec for spec in _ALL}
# Guarded attribute sets remembered per instrument (a set folded by the guard never is).
MAX_CACHED_SETS = 4096


class _Bound:
    """The instruments of one MeterProvider, and each one's recorder by name."""

    __slots__ = ("instruments", "provider", "recorders", "series", "slot")

    def __init__(self, provider: Any, slot: Any, meter_name: str, version: str | None) -> None:
        self.provider = provider
        self.slot = slot  # the pinned provider, or the global providers' generation, when bound
        meter = provider.get_meter(meter_name, version)
        self.instruments: dict[str, Any] = {}
        self.recorders: dict[str, SeriesRecorder] = {}
        # Per instrument: attribute values (in the spec's key order) -> bound series.
        self.series: dict[str, dict[tuple[Any, ...], Series]] = {}
        for spec in _ALL:
            if spec.kind == "counter":
                made = meter.create_counter(spec.name, spec.unit, spec.description)
            elif spec.kind == "up_down_counter":
                made = meter.create_up_down_counter(spec.name, spec.unit, spec.description)
            elif spec.kind == "gauge":
                made = meter.create_gauge(spec.name, spec.unit, spec.description)
            else:
                made = meter.create_histogram(
                    spec.name,
                    spec.unit,
                    spec.description,
                    explicit_bucket_boundaries_advisory=list(spec.buckets),
                )
            self.instruments[spec.name] = made
            self.recorders[spec.name] = SeriesRecorder(made, _METHOD[spec.kind])
            self.series[spec.name] = {}


def _outcome(success: bool) -> str:
    return "success" if success else "failure"


class BotMetrics:
    """Records Botticelli's metrics; every helper is safe to call before ``configure()``.

    ``cap`` bounds the distinct values kept per attribute key and instrument (``caps`` sets it
    per key, e.g. ``{"topic": 200}``); values beyond it are folded into ``"_other"``.
    ``meter_provider`` pins a provider instead of following the global one.
    """

    def __init__(
        self,
        meter_name: str = "sfumato.botticelli",
        *,
        cap: int = DEFAULT_CAP,
        caps: Mapping[str, int] | None = None,
        meter_provider: Any = None,
        version: str | None = None,
    ) -> None:
        per_key = dict(caps or {})
        self.guards: dict[str, CardinalityGuard] = {
            spec.name: CardinalityGuard({key: per_key.get(key, cap) for key in spec.keys})
            for spec in _ALL
        }
        self._meter_name = meter_name
        self._version = version
        self._pinned = meter_provider
        self._bound: _Bound | None = None
        self._lock = threading.Lock()

    # -- plumbing --------------------------------------------------------------------------------

    def _bind(self) -> _Bound:
        # The pinned provider, or the generation of the global providers: a new one after
        # each configure() (the API's proxy stands in until a provider is installed).
        slot = self._pinned or _otel.GENERATION
        bound = self._bound
        if bound is None or bound.slot != slot:
            with self._lock:
                bound = self._bound
                if bound is None or bound.slot != slot:
                    slot = self._pinned or _otel.GENERATION
                    provider = self._pinned or metrics_api.get_meter_provider()
                    bound = _Bound(provider, slot, self._meter_name, self._version)
                    self._bound = bound
        return bound

    def _record(self, name: str, value: float, values: tuple[Any, ...]) -> None:
        """Record ``value`` under the attribute ``values``, in the instrument's key order.

        The narrative helpers call this directly (one frame less than the public methods).
        """
        try:
            bound = self._bound
            if bound is None or bound.slot != (self._pinned or _otel.GENERATION):
                bound = self._bind()
            try:
                series = bound.series[name].get(values)
            except TypeError:  # an unhashable value: guarded (as a string), never cached
                self._first(bound, name, value, values, False)
                return
            if series is None:
                self._first(bound, name, value, values, True)
                return
            # Series.record's common case, inline (one frame less per record; pinned to it by
            # a test): a deferred series still bound to its consumer's readers takes the value.
            if (
                series.deferred
                and type(value) in NUMBERS
                and series.storages is reader_storages_of(series.consumer)
            ):
                pending = series.pending
                pending.append(value)
                if len(pending) >= FOLD_AT:
                    series.fold()
                return
            series.record(value)
        except Exception:
            # A metric is never worth an exception in the bot; say so once per cause.
            _log_once(name)

    def _first(
        self, bound: _Bound, name: str, value: float, values: tuple[Any, ...], hashable: bool
    ) -> None:
        """A set of values not seen before: guard it, and keep its series if it may be kept."""
        given = dict(zip(SPECS[name].keys, values, strict=True))
        attributes, kept = self.guards[name].admit(given)
        cached = bound.series[name]
        if hashable and kept and len(cached) < MAX_CACHED_SETS:
            # Values the guard kept stay kept: the guarded set is the same every time.
            series = cached[values] = bound.recorders[name].series(attributes)
            series.record(value)
        else:
            bound.recorders[name](value, attributes)

    # -- bots ------------------------------------------------------------------------------------

    def record_generation(
        self, duration_s: float, tokens: int, topic: str | None = None, *, model: str | None = None
    ) -> None:
        """One successful generation run: its duration and the tokens it used."""
        values = (topic, "success", model)
        self._record("bot.generation.runs", 1, values)
        self._record("bot.generation.duration", duration_s, values)
        if tokens:
            self._record("bot.generation.tokens.used", tokens, (topic, model))

    def record_generation_failure(
        self,
        duration_s: float,
        topic: str | None = None,
        *,
        tokens: int = 0,
        model: str | None = None,
    ) -> None:
        """One failed generation run; tokens spent before the failure still count."""
        values = (topic, "failure", model)
        self._record("bot.generation.runs", 1, values)
        self._record("bot.generation.duration", duration_s, values)
        if tokens:
            self._record("bot.generation.tokens.used", tokens, (topic, model))

    def record_tokens(
        self, tokens: int, topic: str | None = None, model: str | None = None
    ) -> None:
        """Tokens used outside a generation run (curation, research)."""
        if tokens:
            self._record("bot.generation.tokens.used", tokens, (topic, model))

    def record_curation(
        self, approved: bool, topic: str | None = None, *, reason: str | None = None
    ) -> None:
        if approved:
            self._record("bot.curation.approved", 1, (topic,))
        else:
            self._record("bot.curation.rejected", 1, (topic, reason))

    def record_posting(
        self,
        published: bool,
        topic: str | None = None,
        *,
        platform: str | None = None,
        error_type: str | None = None,
    ) -> None:
        if published:
            self._record("bot.posting.published", 1, (topic, platform))
        else:
            self._record("bot.posting.failed", 1, (topic, platform, error_type))

    # -- narratives ------------------------------------------------------------------------------

    def record_narrative(
        self, duration_s: float, narrative_type: str, success: bool = True
    ) -> None:
        self._record(
            "narrative.execution.duration",
            duration_s,
            (narrative_type, "success" if success else "failure"),
        )

    def record_act(
        self, duration_s: float, narrative_type: str | None, act: str, success: bool = True
    ) -> None:
        self._record(
            "narrative.act.duration",
            duration_s,
            (narrative_type, act, "success" if success else "failure"),
        )

    def record_json_parse(
        self, success: bool, narrative_type: str | None = None, act: str | None = None
    ) -> None:
        name = "narrative.json.parse.success" if success else "narrative.json.parse.failures"
        self._record(name, 1, (narrative_type, act))

    # -- system ----------------------------------------------------------------------------------

    def record_db_query(
        self,
        duration_s: float,
        operation: str,
        table: str | None = None,
        *,
        success: bool = True,
    ) -> None:
        self._record("database.query.duration", duration_s, (operation, table, _outcome(success)))

    def set_pool_size(self, size: int, pool: str = "default") -> None:
        """The number of connections now open in ``pool``."""
        self._record("database.connection.pool.size", size, (pool,))

    def record_api_request(
        self,
        duration_s: float,
        endpoint: str,
        *,
        method: str = "POST",
        status_code: int | None = None,
        success: bool | None = None,
    ) -> None:
        """One request to an external API; success defaults to a status code below 400."""
        if success is None:
            success = status_code is not None and status_code < 400
        values = (endpoint, method, status_code, _outcome(success))
        self._record("api.requests", 1, values)
        self._record("api.requests.duration", duration_s, values)

    # -- GenAI conventions -------------------------------------------------------------------

    def record_genai_call(
        self,
        duration_s: float,
        model: str,
        *,
        operation: str = "chat",
        provider: str | None = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        error_type: str | None = None,
    ) -> None:
        """One GenAI client call, into ``gen_ai.client.operation.duration`` and (per token
        type) ``gen_ai.client.token.usage``: what ``llm_call`` records under the GenAI
        conventions."""
        self._record(
            "gen_ai.client.operation.duration",
            duration_s,
            (operation, provider, model, error_type),
        )
        if input_tokens:
            self._record(
                "gen_ai.client.token.usage", input_tokens, (operation, provider, model, "input")
            )
        if output_tokens:
            self._record(
                "gen_ai.client.token.usage", output_tokens, (operation, provider, model, "output")
            )


_logged: set[str] = set()


def _log_once(name: str) -> None:
    if name not in _logged:
        _logged.add(name)
        log.warning(
            "sfumato: recording metric %s failed; further failures are silent", name, exc_info=True
        )


_default: BotMetrics | None = None
_default_lock = threading.Lock()


def _new_locks_after_fork() -> None:
    """A forked child's own locks: a parent thread may have held one at the fork."""
    global _default_lock
    _default_lock = threading.Lock()
    if _default is not None:
        _default._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_locks_after_fork)


def default_metrics() -> BotMetrics:
    """The process-wide ``BotMetrics`` the narrative helpers record into by default."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = BotMetrics()
    return _default
