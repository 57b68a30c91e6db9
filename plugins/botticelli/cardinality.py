"""A guard that keeps metric attribute sets small.

Every distinct attribute set is a time series a backend stores forever; one unbounded value
(a topic typed by a user, a model id with a date in it) can multiply them without limit.
The guard keeps only the keys an instrument allows and, per key, the first ``cap`` distinct
values it sees; later new values become ``"_other"``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry.util.types import AttributeValue

from .conventions import OVERFLOW_VALUE

__all__ = ["DEFAULT_CAP", "CardinalityGuard"]

DEFAULT_CAP = 50


class CardinalityGuard:
    """Filters one instrument's attributes: allowed keys only, capped distinct values per key.

    Thread-safe. A value already seen costs one set lookup and takes no lock; only a new
    value takes the lock, so the steady state never contends.
    """

    __slots__ = ("_caps", "_folded", "_lock", "_seen", "overflow")

    def __init__(
        self,
        keys: Iterable[str] | Mapping[str, int],
        cap: int = DEFAULT_CAP,
        overflow: str = OVERFLOW_VALUE,
    ) -> None:
        if cap < 1:
            raise ValueError("cap must be at least 1")
        caps = dict(keys) if isinstance(keys, Mapping) else dict.fromkeys(keys, cap)
        self._caps: dict[str, int] = caps
        self._seen: dict[str, set[AttributeValue]] = {key: set() for key in caps}
        self._folded: dict[str, int] = dict.fromkeys(caps, 0)
        self._lock = threading.Lock()
        self.overflow = overflow

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(self._caps)

    def value(self, key: str, value: Any) -> AttributeValue:
        """``value`` itself while ``key`` is under its cap (or already saw it), else overflow."""
        if not isinstance(value, (str, bool, int, float)):
            value = str(value)
        seen = self._seen[key]
        if value in seen:
            return value  # type: ignore[no-any-return]
        with self._lock:
            if value in seen:
                return value  # type: ignore[no-any-return]
            if len(seen) < self._caps[key]:
                seen.add(value)
                return value  # type: ignore[no-any-return]
            self._folded[key] += 1
            return self.overflow

    def filter(self, attributes: Mapping[str, Any] | None) -> dict[str, AttributeValue]:
        """The allowed keys of ``attributes`` (None values left out), values capped."""
        if not attributes:
            return {}
        return {
            key: self.value(key, value)
            for key, value in attributes.items()
            if value is not None and key in self._caps
        }

    def admit(self, attributes: Mapping[str, Any]) -> tuple[dict[str, AttributeValue], bool]:
        """``filter(attributes)``, and whether no value was folded into the overflow value
        (a value once kept stays kept, so the same attributes filter the same way again)."""
        filtered = self.filter(attributes)
        return filtered, self.overflow not in filtered.values()

    def folded(self) -> dict[str, int]:
        """How many values were folded into the overflow value, per key."""
        with self._lock:
            return dict(self._folded)

    def distinct(self, key: str) -> int:
        """How many distinct values ``key`` has kept."""
        return len(self._seen[key])
