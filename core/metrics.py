"""Metric instruments by name, usable before, during and after ``configure()``.

    from sfumato import metrics

    REQUESTS = metrics.counter("bot.requests", description="Requests handled", unit="1")
    LATENCY = metrics.histogram("bot.latency", unit="ms")

    REQUESTS.add(1, {"route": "/chat"})
    LATENCY.record(12.5)

An instrument is created once per name and cached, so module-level definitions and calls from
anywhere share it. Each one follows the process's meter provider: before ``configure()`` it is
a no-op, once sfumato (or anything else) installs a provider it records there, and after a
``shutdown()`` and a new ``configure()`` it records into the new provider. Recording never
raises into the caller.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any, ClassVar

from opentelemetry import metrics as metrics_api

from . import _otel

__all__ = [
    "Counter",
    "Gauge",
    "Histogram",
    "UpDownCounter",
    "counter",
    "gauge",
    "histogram",
    "up_down_counter",
]

log = logging.getLogger("sfumato")

SCOPE = "sfumato.metrics"
Attributes = Mapping[str, Any] | None

_lock = threading.Lock()
_instruments: dict[str, _Instrument] = {}


def _new_lock_after_fork() -> None:
    """A forked child's own lock: a parent thread may have held it at the fork."""
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock_after_fork)


class _Instrument:
    """Binds lazily to the current global meter provider's instrument of the same name."""

    kind: ClassVar[str]
    __slots__ = ("_generation", "_real", "description", "name", "unit")

    def __init__(self, name: str, description: str, unit: str) -> None:
        self.name = name
        self.description = description
        self.unit = unit
        self._generation = -1  # never a generation: the first use binds
        self._real: Any = None

    def _current(self) -> Any:
        generation = _otel.GENERATION  # bumped when sfumato installs or removes providers
        if generation == self._generation:
            return self._real
        # The API's proxy meter until a provider is installed: its instruments forward to
        # the provider once one is.
        meter = metrics_api.get_meter_provider().get_meter(SCOPE)
        create = getattr(meter, f"create_{self.kind}")
        self._real = create(self.name, unit=self.unit, description=self.description)
        self._generation = generation  # after _real: a reader that sees it sees the new _real
        return self._real

    def __repr__(self) -> str:
        unit = f" unit={self.unit!r}" if self.unit else ""
        return f"<{type(self).__name__} {self.name!r}{unit}>"


class Counter(_Instrument):
    """A monotonic sum: requests, errors, tokens used."""

    kind = "counter"
    __slots__ = ()

    def add(self, amount: int | float = 1, attributes: Attributes = None) -> None:
        try:
            self._current().add(amount, attributes)
        except Exception:
            log.debug("sfumato: %r.add failed", self, exc_info=True)


class UpDownCounter(_Instrument):
    """A sum that goes both ways: items in a queue, open connections."""

    kind = "up_down_counter"
    __slots__ = ()

    def add(self, amount: int | float, attributes: Attributes = None) -> None:
        try:
            self._current().add(amount, attributes)
        except Exception:
            log.debug("sfumato: %r.add failed", self, exc_info=True)


class Histogram(_Instrument):
    """A distribution: durations, sizes. Buckets come from ``[telemetry.metrics.views]``."""

    kind = "histogram"
    __slots__ = ()

    def record(self, amount: int | float, attributes: Attributes = None) -> None:
        try:
            self._current().record(amount, attributes)
        except Exception:
            log.debug("sfumato: %r.record failed", self, exc_info=True)


class Gauge(_Instrument):
    """The last value set: a queue depth, a pool size."""

    kind = "gauge"
    __slots__ = ()

    def set(self, amount: int | float, attributes: Attributes = None) -> None:
        try:
            self._current().set(amount, attributes)
        except Exception:
            log.debug("sfumato: %r.set failed", self, exc_info=True)


def _get(cls: type[_Instrument], name: str, description: str, unit: str) -> Any:
    found = _instruments.get(name)
    if found is None:
        with _lock:
            found = _instruments.get(name)
            if found is None:
                found = _instruments[name] = cls(name, description, unit)
    if type(found) is not cls:
        raise ValueError(
            f"metric {name!r} is already a {found.kind.replace('_', '-')}, "
            f"not a {cls.kind.replace('_', '-')}"
        )
    return found


def counter(name: str, *, description: str = "", unit: str = "") -> Counter:
    """The counter named ``name``, created on first use."""
    instrument: Counter = _get(Counter, name, description, unit)
    return instrument


def up_down_counter(name: str, *, description: str = "", unit: str = "") -> UpDownCounter:
    """The up-down counter named ``name``, created on first use."""
    instrument: UpDownCounter = _get(UpDownCounter, name, description, unit)
    return instrument


def histogram(name: str, *, description: str = "", unit: str = "") -> Histogram:
    """The histogram named ``name``, created on first use."""
    instrument: Histogram = _get(Histogram, name, description, unit)
    return instrument


def gauge(name: str, *, description: str = "", unit: str = "") -> Gauge:
    """The gauge named ``name``, created on first use."""
    instrument: Gauge = _get(Gauge, name, description, unit)
    return instrument
