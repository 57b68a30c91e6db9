"""Consistent probability sampling's arithmetic: thresholds, randomness, the ``ot`` entry.

OpenTelemetry's tracestate probability sampling: the randomness R is the trace id's low 56
bits (or an explicit ``rv`` in the ``ot`` tracestate entry), a probability p becomes the
rejection threshold T = (1 - p) * 2**56, and a span is kept when R >= T. A kept span carries
``ot=th:<T in hex, trailing zeros trimmed>`` so any later stage can tell its adjusted count,
2**56 / (2**56 - T). The decisions built on it are in ``_decisions``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from ._stats import Counter

__all__ = [
    "ADJUSTED_COUNT",
    "MALFORMED",
    "MAX_THRESHOLD",
    "POLICY",
    "PRECISION",
    "RANDOM_MASK",
    "SAMPLE_RATE",
    "adjusted_count",
    "parse_ot",
    "probability",
    "rounded_weights",
    "th_hex",
    "threshold",
    "weight_attributes",
]

# Attribute names every exported span carries (documented in docs/samplers.md).
ADJUSTED_COUNT = "sampling.adjusted_count"
POLICY = "sampling.policy"
SAMPLE_RATE = "SampleRate"  # Honeycomb's name for the same weight, an integer

RANDOM_BITS = 56
MAX_THRESHOLD = 1 << RANDOM_BITS  # T = 2**56: nothing is kept
RANDOM_MASK = MAX_THRESHOLD - 1
_SCALE = float(MAX_THRESHOLD)
_OT = "ot"


# Hex digits of precision a threshold is written with: the spec recommends 4 by default, more
# for probabilities near 0 (one more per leading "f"). The samplers that turn a probability
# into a threshold (ratio, per-narrative-type, load-adaptive) take a ``precision`` option.
PRECISION = 4


def threshold(p: float, precision: int | None = None) -> int:
    """The rejection threshold for probability ``p`` (clamped to [0, 1]), rounded to
    ``precision`` hex digits (default ``PRECISION``) as the tracestate probability sampling
    spec does, so that the threshold a span is decided at is the one its ``th`` says."""
    if p >= 1.0:
        return 0
    if p <= 0.0:
        return MAX_THRESHOLD
    exact = MAX_THRESHOLD - round(p * _SCALE)
    _, exponent = math.frexp(p)
    digits = max(1, min(14, (PRECISION if precision is None else precision) + exponent // -4))
    quantum = 1 << (4 * (14 - digits))
    return min((exact + quantum // 2) // quantum * quantum, MAX_THRESHOLD - quantum)


def probability(t: int) -> float:
    """The keep probability a threshold stands for."""
    return (MAX_THRESHOLD - t) / _SCALE


def adjusted_count(t: int) -> float:
    """How many spans one kept span stands for: 1 / p (0 when nothing is kept)."""
    kept = MAX_THRESHOLD - t
    return _SCALE / kept if kept > 0 else 0.0


def th_hex(t: int) -> str:
    """``th`` encoding: 14 hex digits with trailing zeros removed, "0" for keep-all."""
    if t <= 0:
        return "0"
    return f"{t:014x}".rstrip("0") or "0"


# The spec's forms: th is 1-14 lowercase hex digits, rv exactly 14. (int(x, 16) alone would
# also read "+c", "0xc", "f_f" and " c", each as some other threshold.)
_TH = re.compile(r"[0-9a-f]{1,14}")
_RV = re.compile(r"[0-9a-f]{14}")


@lru_cache(maxsize=1024)
def parse_ot(value: str) -> tuple[int, int, tuple[str, ...]]:
    """(th, rv, other members) of an ``ot`` tracestate value; -1 where absent or invalid.
    An invalid th or rv is left out of the other members too: it is erased on output."""
    th = rv = -1
    rest: list[str] = []
    for member in value.split(";"):
        if member.startswith("th:"):
            digits = member[3:]
            if _TH.fullmatch(digits):
                th = int(digits, 16) << (4 * (14 - len(digits)))
        elif member.startswith("rv:"):
            digits = member[3:]
            if _RV.fullmatch(digits):
                rv = int(digits, 16)
        elif member:
            rest.append(member)
    return th, rv, tuple(rest)


def _malformed(value: str) -> bool:
    """Whether an ``ot`` value carries a th or rv that is not in the spec's form."""
    for member in value.split(";"):
        if member.startswith("th:") and not _TH.fullmatch(member[3:]):
            return True
        if member.startswith("rv:") and not _RV.fullmatch(member[3:]):
            return True
    return False


# Trace states that arrived with a malformed th or rv (erased on output): counted once per
# trace state, as stats()' sampling.tracestate.invalid.
MALFORMED = Counter()


@lru_cache(maxsize=4096)
def rounded_weights(policy: str, t: int) -> tuple[Mapping[str, Any], Mapping[str, Any], int]:
    """The weight attributes of a span kept at threshold ``t`` by ``policy``: with
    ``SampleRate`` rounded down, rounded up, and the randomness below which it is rounded up.

    ``SampleRate`` is an integer, and 1/p often is not (p = 0.4: 2.5). Rounding it the same way
    for every span sums 20-30% off; rounding up with probability equal to the fraction is
    right on average. The draw is the trace's own randomness R: a kept span has R uniform in
    [t, 2**56), so R < t + frac * (2**56 - t) happens with probability frac. Every span of a
    trace (same R, same t) carries the same SampleRate.
    """
    count = adjusted_count(t)
    low = int(count)
    fraction = count - low
    if fraction < 1e-9 or fraction > 1 - 1e-9:  # an integer, up to float rounding
        exact = {ADJUSTED_COUNT: count, POLICY: policy, SAMPLE_RATE: max(1, round(count))}
        return exact, exact, t
    down = {ADJUSTED_COUNT: count, POLICY: policy, SAMPLE_RATE: max(1, low)}
    up = {ADJUSTED_COUNT: count, POLICY: policy, SAMPLE_RATE: low + 1}
    return down, up, t + int(fraction * (MAX_THRESHOLD - t))


def weight_attributes(policy: str, t: int, r: int = MAX_THRESHOLD) -> Mapping[str, Any]:
    """The weight attributes of a span kept at threshold ``t`` by ``policy``, for a trace of
    randomness ``r`` (which rounds ``SampleRate``; see ``rounded_weights``)."""
    down, up, cut = rounded_weights(policy, t)
    return up if r < cut else down
