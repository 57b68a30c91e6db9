"""Metric series: the SDK's record path, shortened for attribute sets recorded before.

Recording into an SDK instrument costs several microseconds: a ``Measurement`` dataclass
whose constructor cleans every attribute, the exemplar filter, then per reader and view a
copy of the attributes, an aggregation key hashed value by value, and the aggregation's own
update. For a caller whose attribute sets are few and already clean (the cardinality-guarded
sets of the Botticelli metrics), most of that work is the same for every record.

``SeriesRecorder(instrument, method).series(attributes)`` gives a ``Series`` that holds
what the SDK would compute for that attribute set: the view matches of every reader, each
one's aggregation key, and the aggregation found under it (kept while the match's table is
the same object: a cumulative table never drops one, a delta collection swaps the table).
``series.record(value)`` then does only what varies, through the same SDK objects and under
the same locks: the value checks, the context, the exemplar decision, the sum or histogram
update (any other aggregation through its own ``aggregate``) and the exemplar offer.

The shape it relies on (opentelemetry-sdk's synchronous instruments, measurement consumer,
reader storages and view matches) is checked when a series is bound; with anything else (a
proxy or no-op instrument, another SDK, attributes that need cleaning, a value the SDK would
warn about) the instrument's own method does the work.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Mapping
from threading import Lock
from time import time_ns
from typing import Any

from opentelemetry.trace import SpanContext
from opentelemetry.trace.propagation import _SPAN_KEY

from ._tracer import _get_current, _tuple_layout

__all__ = ["Series", "SeriesRecorder"]

try:  # the SDK internals the fast path uses; without them every record takes the SDK's path
    from opentelemetry.sdk.metrics._internal import _view_instrument_match as _vim_module
    from opentelemetry.sdk.metrics._internal.exemplar import (
        AlwaysOffExemplarFilter,
        AlwaysOnExemplarFilter,
        TraceBasedExemplarFilter,
    )
    from opentelemetry.sdk.metrics._internal.instrument import (
        _Counter,
        _Gauge,
        _Histogram,
        _UpDownCounter,
    )
    from opentelemetry.sdk.metrics._internal.measurement import Measurement
    from opentelemetry.sdk.metrics._internal.measurement_consumer import (
        SynchronousMeasurementConsumer,
    )
    from opentelemetry.sdk.metrics._internal.metric_reader_storage import MetricReaderStorage

    _hash_attributes: Callable[[Any], Any] | None = _vim_module._hash_attributes
    _ViewInstrumentMatch: type | None = _vim_module._ViewInstrumentMatch
    # Instruments whose values must not be negative (the SDK warns and drops those).
    _NON_NEGATIVE: frozenset[type] = frozenset((_Counter, _Histogram))
    _KNOWN: frozenset[type] = frozenset((_Counter, _Histogram, _UpDownCounter, _Gauge))
    # Instruments whose aggregation does not depend on the order or time of its values
    # relative to other series' records: their values may wait in a buffer (not gauges).
    _DEFERRABLE: frozenset[type] = frozenset((_Counter, _Histogram, _UpDownCounter))
except (ImportError, AttributeError):  # pragma: no cover - another SDK version
    _hash_attributes = None
    _ViewInstrumentMatch = None
    _NON_NEGATIVE = frozenset()
    _KNOWN = frozenset()
    _DEFERRABLE = frozenset()

_new = object.__new__
_set = object.__setattr__
_NUMBERS = (int, float)
_SCALARS = frozenset((str, bool, int, float))
_SUM: Any = None
_HISTOGRAM: Any = None
try:
    from opentelemetry.sdk.metrics._internal import aggregation as _aggregation

    _SUM = _aggregation._SumAggregation
    _HISTOGRAM = _aggregation._ExplicitBucketHistogramAggregation
except (ImportError, AttributeError):  # pragma: no cover - another SDK version
    pass


def _uses(cls: Any, fields: tuple[str, ...]) -> bool:
    """True when ``cls``'s constructors and ``aggregate`` use exactly these fields' names."""
    names: set[str] = set()
    for klass in getattr(cls, "__mro__", ()):
        for method in ("__init__", "aggregate", "_sample_exemplar"):
            code = getattr(klass.__dict__.get(method), "__code__", None)
            if code is not None:
                names.update(code.co_names)
    return set(fields) <= names


# The two aggregations updated inline; any other goes through its own ``aggregate``.
if not _uses(_SUM, ("_lock", "_value", "_reservoir", "offer")):  # pragma: no cover
    _SUM = None
_HISTOGRAM_FIELDS = ("_lock", "_value", "_reservoir", "offer", "_sum", "_min", "_max")
if not _uses(
    _HISTOGRAM, (*_HISTOGRAM_FIELDS, "_boundaries", "_record_min_max")
):  # pragma: no cover
    _HISTOGRAM = None
# The short path reads and locks the SDK's per-view state itself; with another layout of it
# every series takes the instrument's own method.
if _ViewInstrumentMatch is not None and not (
    _uses(_ViewInstrumentMatch, ("_reset_on_collect", "_lock", "_attributes_aggregation"))
    and hasattr(_ViewInstrumentMatch, "_get_or_create_aggregation")
):  # pragma: no cover - another SDK version
    _ViewInstrumentMatch = None
    _hash_attributes = None
_SPAN_CONTEXT_TUPLE = _tuple_layout()
# Values a deferred series keeps before its recording thread folds them in itself.
FOLD_AT = 64


def _clean(attributes: Mapping[str, Any]) -> bool:
    """True when the SDK's attribute cleaning would leave ``attributes`` as they are."""
    return _SCALARS.issuperset(map(type, attributes.values())) and all(
        type(k) is str and k for k in attributes
    )


def _sampled(context: Any) -> bool:
    """The trace-based exemplar filter's rule: the context's current span is sampled."""
    span = context.get(_SPAN_KEY)
    if span is None:
        return False
    sc = getattr(span, "_context", None)  # SDK and non-recording spans keep it here
    if _SPAN_CONTEXT_TUPLE and type(sc) is SpanContext:
        return bool(sc[3] & 1)  # (trace_id, span_id, is_remote, flags, state, is_valid)
    return bool(span.get_span_context().trace_flags.sampled)


class SeriesRecorder:
    """Records into one synchronous SDK instrument.

    ``recorder(value, attributes)`` is the instrument's own method; ``recorder.series(
    attributes)`` gives a :class:`Series` whose ``record(value)`` takes the short path.
    """

    __slots__ = ("call", "consumer", "deferrable", "fast", "instrument", "non_negative")

    def __init__(self, instrument: Any, method: str) -> None:
        self.instrument = instrument
        self.call: Callable[..., Any] = getattr(instrument, method)
        kind = type(instrument)
        consumer: Any = getattr(instrument, "_measurement_consumer", None)
        self.fast = (
            _hash_attributes is not None
            and kind in _KNOWN
            and type(consumer) is SynchronousMeasurementConsumer
            and hasattr(instrument, "_meter_config")
        )
        self.consumer = consumer
        self.non_negative = kind in _NON_NEGATIVE
        self.deferrable = kind in _DEFERRABLE

    def __call__(self, value: Any, attributes: Mapping[str, Any] | None) -> None:
        self.call(value, attributes)

    def series(self, attributes: Mapping[str, Any]) -> Series:
        """The series of ``attributes`` (copied: later changes to the mapping do not count)."""
        return Series(self, dict(attributes))


class _Match:
    """One view match of a series, and the aggregation it found in the match's table."""

    __slots__ = ("aggregation", "attributes", "key", "table", "vim")

    def __init__(self, vim: Any, key: Any, attributes: dict[str, Any]) -> None:
        self.vim = vim
        self.key = key  # the SDK's aggregation key, hashed once
        self.attributes = attributes
        self.table: Any = None
        self.aggregation: Any = None

    def find(self, table: Any) -> Any:
        """The aggregation of this series in ``table`` (created the SDK's way if missing);
        remembered while ``table`` is the match's table. Delta matches: call under the
        match's lock."""
        vim = self.vim
        aggregation = table.get(self.key)
        if aggregation is None:
            if vim._reset_on_collect:
                aggregation = vim._get_or_create_aggregation(self.key, dict(self.attributes))
            else:
                with vim._lock:
                    aggregation = vim._get_or_create_aggregation(self.key, dict(self.attributes))
        if table.get(self.key) is aggregation:  # not the overflow point
            self.table = table
            self.aggregation = aggregation
        return aggregation


class _FlushingCollect:
    """A reader storage's ``collect``, folding the pending values of its consumer's series
    first: a collection (periodic, ``force_flush``, shutdown) sees every value recorded
    before it began."""

    __slots__ = ("collect", "registry")

    def __init__(self, collect: Callable[[], Any], registry: list[Series]) -> None:
        self.collect = collect
        self.registry = registry

    def __call__(self) -> Any:
        for series in self.registry[:]:  # a copy: series may register meanwhile
            if series.pending:
                try:
                    series.fold()
                except Exception:  # pragma: no cover - a fold never fails on clean values
                    series.pending.clear()
        return self.collect()


def _hook(consumer: Any, storages: Any) -> list[Series]:
    """The registry of ``consumer``'s deferred series; every storage in ``storages`` folds
    them before it collects. Call under ``_HOOK_LOCK``."""
    registry: list[Series] = consumer.__dict__.setdefault("_sfumato_series", [])
    for storage in storages.values():
        if type(storage.__dict__.get("collect")) is not _FlushingCollect:
            storage.collect = _FlushingCollect(storage.collect, registry)
    return registry


_HOOK_LOCK = Lock()


class Series:
    """One attribute set of one instrument: ``record(value)``.

    Bound to the reader storages of the moment; when the SDK replaces them (a reader added
    or removed) the series binds again. A value or an attribute set the fast path cannot
    take (see the module docstring) goes through the instrument's own method.

    With exemplars off, a counter's or histogram's values wait in ``pending`` (an append,
    the whole cost of a record) and are folded into the SDK's aggregations by the recording
    thread every ``FOLD_AT`` values and before every collection of the provider's readers
    (the storages' ``collect`` is wrapped for that), so a collection never misses a value
    recorded before it. The SDK's checks of each value (finite, not negative where the
    instrument refuses that, the meter enabled) run on the batch when it is folded; a value
    that fails them goes through the instrument's own method, as it would have at once.
    A series stays registered with its provider while that lives.
    """

    __slots__ = (
        "attributes",
        "consumer",
        "deferred",
        "fast",
        "fold_lock",
        "matches",
        "pending",
        "recorder",
        "registered",
        "storages",
    )

    def __init__(self, recorder: SeriesRecorder, attributes: dict[str, Any]) -> None:
        self.recorder = recorder
        self.consumer = recorder.consumer
        self.attributes = attributes
        self.fast = recorder.fast and _clean(attributes)
        self.storages: Any = None
        self.matches: list[_Match] = []
        self.deferred = False
        self.pending: list[Any] = []
        self.fold_lock = Lock()
        self.registered = False

    def _bind(self, storages: Any) -> bool:
        if self.pending:  # values recorded under the previous readers go to those
            self.fold()
        consumer = self.recorder.consumer
        deferred = (
            self.recorder.deferrable
            and type(consumer._sdk_config.exemplar_filter) is AlwaysOffExemplarFilter
        )
        self.deferred = False
        matches: list[_Match] = []
        instrument = self.recorder.instrument
        for storage in storages.values():
            if type(storage) is not MetricReaderStorage:
                return False
            for vim in storage._get_or_init_view_instrument_match(instrument):
                if type(vim) is not _ViewInstrumentMatch:
                    return False
                keys = vim._view._attribute_keys
                attrs = self.attributes
                kept = attrs if keys is None else {k: v for k, v in attrs.items() if k in keys}
                matches.append(_Match(vim, _hash_attributes(kept), dict(kept)))  # type: ignore[misc]
        self.matches = matches
        if deferred:
            with _HOOK_LOCK:
                registry = _hook(consumer, storages)
                if not self.registered:
                    registry.append(self)
                    self.registered = True
        self.storages = storages
        self.deferred = deferred
        return True

    def fold(self) -> None:
        """Aggregate the values waiting in ``pending``, in their order, each exactly once."""
        with self.fold_lock:
            pending = self.pending
            count = len(pending)
            if not count:
                return
            values = pending[:count]
            # Values appended meanwhile by other threads sit after these, and stay.
            del pending[:count]
            recorder = self.recorder
            config = recorder.instrument._meter_config
            if config is not None and not config.is_enabled:
                return  # the SDK drops what a disabled meter records
            total = sum(values)
            if total - total != 0 or (recorder.non_negative and min(values) < 0):
                # A non-finite value, or a negative one where the SDK refuses it: those go
                # through the instrument's own method (which warns and ignores them).
                good = []
                for value in values:
                    if value - value != 0 or (value < 0 and recorder.non_negative):
                        recorder.call(value, self.attributes)
                    else:
                        good.append(value)
                if not good:
                    return
                values = good
            for match in self.matches:
                vim = match.vim
                if vim._reset_on_collect:
                    # A delta collection swaps the aggregations out: aggregate under its lock.
                    with vim._lock:
                        table = vim._attributes_aggregation
                        hit = table is match.table
                        self._add(match.aggregation if hit else match.find(table), values)
                    continue
                table = vim._attributes_aggregation
                hit = table is match.table
                self._add(match.aggregation if hit else match.find(table), values)

    def _add(self, aggregation: Any, values: list[Any]) -> None:
        """What the aggregation's ``aggregate`` does for each value, exemplars off."""
        kind = type(aggregation)
        if kind is _SUM:
            with aggregation._lock:
                total = aggregation._value
                for value in values:
                    total = value if total is None else total + value
                aggregation._value = total
        elif kind is _HISTOGRAM:
            with aggregation._lock:
                counts = aggregation._value
                if counts is None:
                    counts = aggregation._value = aggregation._get_empty_bucket_counts()
                boundaries = aggregation._boundaries
                total = aggregation._sum
                for value in values:
                    total += value
                    counts[bisect_left(boundaries, value)] += 1
                aggregation._sum = total
                if aggregation._record_min_max:
                    low = min(values)
                    high = max(values)
                    if low < aggregation._min:
                        aggregation._min = low
                    if high > aggregation._max:
                        aggregation._max = high
        else:
            context = _get_current()
            for value in values:
                aggregation.aggregate(self._measurement(value, context), False)

    def record(self, value: Any) -> None:
        # The common case first: a deferred series still bound to the consumer's readers
        # appends the value; the checks the SDK makes per value run when it is folded.
        if (
            self.deferred
            and type(value) in _NUMBERS
            and self.storages is self.consumer._reader_storages
        ):
            pending = self.pending
            pending.append(value)
            if len(pending) >= FOLD_AT:
                self.fold()
            return
        self._record(value)

    def _record(self, value: Any) -> None:
        recorder = self.recorder
        if not self.fast:
            recorder.call(value, self.attributes)
            return
        config = recorder.instrument._meter_config
        if (
            (config is not None and not config.is_enabled)
            or type(value) not in _NUMBERS
            or value - value != 0  # inf or nan: the SDK warns and ignores it
            or (value < 0 and recorder.non_negative)
        ):
            recorder.call(value, self.attributes)
            return
        consumer = recorder.consumer
        storages = consumer._reader_storages  # replaced, never mutated, by the SDK
        if storages is not self.storages and not self._bind(storages):
            self.fast = False
            recorder.call(value, self.attributes)
            return
        if self.deferred:
            pending = self.pending
            pending.append(value)
            if len(pending) >= FOLD_AT:
                self.fold()
            return
        exemplars = consumer._sdk_config.exemplar_filter
        kind = type(exemplars)
        context: Any = None  # read only when something needs it
        if kind is AlwaysOffExemplarFilter:
            sample = False
        elif kind is TraceBasedExemplarFilter:
            context = _get_current()
            # _sampled(context), inline: the common case is a span of this SDK's shape.
            span = context.get(_SPAN_KEY)
            if span is None:
                sample = False
            else:
                sc = getattr(span, "_context", None)
                if _SPAN_CONTEXT_TUPLE and type(sc) is SpanContext:
                    sample = bool(sc[3] & 1)
                else:
                    sample = _sampled(context)
        elif kind is AlwaysOnExemplarFilter:
            context = _get_current()
            sample = True
        else:
            context = _get_current()
            sample = exemplars.should_sample(value, time_ns(), self.attributes, context)
        measurement: Any = None
        for match in self.matches:
            vim = match.vim
            if vim._reset_on_collect:
                # A delta collection swaps the aggregations out: aggregate under its lock.
                with vim._lock:
                    table = vim._attributes_aggregation
                    hit = table is match.table
                    aggregation = match.aggregation if hit else match.find(table)
                    if measurement is None:
                        measurement = self._measurement(value, context or _get_current())
                    aggregation.aggregate(measurement, sample)
                continue
            # A cumulative table never drops an aggregation: the one found before holds.
            table = vim._attributes_aggregation
            hit = table is match.table
            aggregation = match.aggregation if hit else match.find(table)
            kind = type(aggregation)
            if kind is _SUM:
                # _SumAggregation.aggregate, inline.
                with aggregation._lock:
                    total = aggregation._value
                    aggregation._value = value if total is None else total + value
            elif kind is _HISTOGRAM:
                # _ExplicitBucketHistogramAggregation.aggregate, inline.
                with aggregation._lock:
                    counts = aggregation._value
                    if counts is None:
                        counts = aggregation._value = aggregation._get_empty_bucket_counts()
                    aggregation._sum += value
                    if aggregation._record_min_max:
                        if value < aggregation._min:
                            aggregation._min = value
                        if value > aggregation._max:
                            aggregation._max = value
                    counts[bisect_left(aggregation._boundaries, value)] += 1
            else:
                if measurement is None:
                    measurement = self._measurement(value, context or _get_current())
                aggregation.aggregate(measurement, sample)
                continue
            if sample:
                aggregation._reservoir.offer(value, time_ns(), self.attributes, context)

    def _measurement(self, value: Any, context: Any) -> Any:
        """The SDK's Measurement, built without re-cleaning the (clean) attributes."""
        measurement = _new(Measurement)
        _set(
            measurement,
            "__dict__",
            {
                "value": value,
                "time_unix_nano": time_ns(),
                "instrument": self.recorder.instrument,
                "context": context,
                "attributes": self.attributes,
            },
        )
        return measurement
