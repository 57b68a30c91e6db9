"""Self-observability counters: cheap to bump from any thread, read as a snapshot."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Counter", "Stats"]


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


class Stats:
    """Named counters: ``spans.exported``, ``spans.dropped.queue_full``, ...

    Components create their counters once (``stats.counter(name)``) and bump them on the
    hot path without any lookup.
    """

    def __init__(self) -> None:
        self._counters: dict[str, Counter] = {}
        self._lock = threading.Lock()

    def counter(self, name: str) -> Counter:
        with self._lock:
            counter = self._counters.get(name)
            if counter is None:
                counter = self._counters[name] = Counter()
            return counter

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            items = list(self._counters.items())
        return {name: c.value for name, c in sorted(items)}

    def __iter__(self) -> Iterator[tuple[str, int]]:
        return iter(self.snapshot().items())
