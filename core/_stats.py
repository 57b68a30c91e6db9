"""Self-observability counters: cheap to bump from any thread, read as a snapshot."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Counter", "Stats", "Tally"]


class Counter:
    """A monotonic counter; ``add`` is one C call and safe across threads under the GIL."""

    __slots__ = ("_bulk", "_count", "_lock", "incr")

    def __init__(self) -> None:
        self._count = itertools.count()
        self._bulk = 0
        self._lock = threading.Lock()
        # ``incr()`` is the count's own C-level ``__next__``: no Python frame on hot paths.
        self.incr: Callable[[], object] = self._count.__next__

    def add(self, n: int) -> None:
        if n == 1:
            next(self._count)
        elif n:
            with self._lock:
                self._bulk += n

    @property
    def value(self) -> int:
        # itertools.count exposes its next value only through its reduce tuple.
        reduced: Any = self._count.__reduce__()
        return int(reduced[1][0]) + self._bulk


class Tally:
    """A count its owner keeps as a plain int (``tally.n += k``), always under one lock of
    the owner's that it already holds for other reasons: no call and no lock of its own."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0

    @property
    def value(self) -> int:
        return self.n


class Stats:
    """Named counters: ``spans.exported``, ``spans.dropped.queue_full``, ...

    Components create their counters once (``stats.counter(name)``) and bump them on the
    hot path without any lookup.
    """

    def __init__(self) -> None:
        self._counters: dict[str, Counter | Tally] = {}
        self._parts: dict[str, list[Counter]] = {}  # a total's per-exporter counters
        self._lock = threading.Lock()

    def part(self, total: str, exporter: str) -> Counter:
        """The counter ``exporters.<exporter>.<total>``, also summed into ``total`` in
        snapshots (a key outside ``total``'s prefix: summing ``traces.dropped.*`` still
        counts each drop once).

        Each export queue counts into its own counters (no work added on the hot path);
        ``total`` is their sum, plus a plain counter of that name if one exists.
        """
        counter = self.counter(f"exporters.{exporter}.{total}")
        with self._lock:
            parts = self._parts.setdefault(total, [])
            if counter not in parts:
                parts.append(counter)
        return counter

    def counter(self, name: str) -> Counter:
        with self._lock:
            counter = self._counters.get(name)
            if counter is None:
                counter = self._counters[name] = Counter()
            if not isinstance(counter, Counter):
                raise TypeError(f"{name} is a tally, not a counter")
            return counter

    def adopt(self, name: str, counter: Counter) -> None:
        """Show ``counter`` (one kept elsewhere, e.g. for the whole process) as ``name``."""
        with self._lock:
            self._counters.setdefault(name, counter)

    def tally(self, name: str) -> Tally:
        """A ``Tally`` under ``name`` (one owner: it must not also be a ``counter``)."""
        with self._lock:
            tally = self._counters.get(name)
            if tally is None:
                tally = self._counters[name] = Tally()
            if not isinstance(tally, Tally):
                raise TypeError(f"{name} is a counter, not a tally")
            return tally

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            items = list(self._counters.items())
            parts = [(name, list(counters)) for name, counters in self._parts.items()]
        values = {name: c.value for name, c in items}
        for total, counters in parts:
            plain = self._counters.get(total)
            values[total] = (plain.value if plain is not None else 0) + sum(
                c.value for c in counters
            )
        return dict(sorted(values.items()))

    def __iter__(self) -> Iterator[tuple[str, int]]:
        return iter(self.snapshot().items())
