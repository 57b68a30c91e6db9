"""``sfumato report compare A B``: per span name, how P50 and P95 moved from store A to B.

Percentiles are the weighted ones of ``sfumato report`` (``sampling.adjusted_count``). A name
regresses when its P50 or P95 in B exceeds A's by more than the threshold, in percent. Names
in one store only are listed but never flagged.
"""

from __future__ import annotations

from dataclasses import dataclass

from .report import Summary, format_duration, printable, table

__all__ = ["Change", "compare", "render_text"]


@dataclass
class Change:
    service: str
    name: str
    count_a: int
    count_b: int
    p50_a: int | None
    p50_b: int | None
    p95_a: int | None
    p95_b: int | None
    regressed: bool = False

    @staticmethod
    def _pct(a: int | None, b: int | None) -> float | None:
        if a is None or b is None:
            return None
        if a == 0:
            return 0.0 if b == 0 else float("inf")
        return (b - a) / a * 100

    @property
    def p50_change(self) -> float | None:
        return self._pct(self.p50_a, self.p50_b)

    @property
    def p95_change(self) -> float | None:
        return self._pct(self.p95_a, self.p95_b)


def compare(a: Summary, b: Summary, threshold_pct: float) -> list[Change]:
    before = {(n.service, n.name): n for n in a.names}
    after = {(n.service, n.name): n for n in b.names}
    changes = []
    for key in sorted(before.keys() | after.keys()):
        x, y = before.get(key), after.get(key)
        change = Change(
            key[0],
            key[1],
            x.count if x else 0,
            y.count if y else 0,
            x.quantiles_ns.get("p50") if x else None,
            y.quantiles_ns.get("p50") if y else None,
            x.quantiles_ns.get("p95") if x else None,
            y.quantiles_ns.get("p95") if y else None,
        )
        moved = [c for c in (change.p50_change, change.p95_change) if c is not None]
        change.regressed = any(c > threshold_pct for c in moved)
        changes.append(change)
    return changes


def _d(ns: int | None) -> str:
    return "-" if ns is None else format_duration(ns)


def _c(pct: float | None) -> str:
    return "-" if pct is None else f"{pct:+.1f}%"


def render_text(changes: list[Change], a: str, b: str, threshold_pct: float) -> str:
    out = [f"compare {a} -> {b} (regression: P50 or P95 up more than {threshold_pct:g}%)"]
    rows = [
        [
            c.service,
            c.name,
            f"{c.count_a:,}",
            f"{c.count_b:,}",
            _d(c.p50_a),
            _d(c.p50_b),
            _c(c.p50_change),
            _d(c.p95_a),
            _d(c.p95_b),
            _c(c.p95_change),
            "REGRESSION" if c.regressed else "",
        ]
        for c in changes
    ]
    header = ["service", "span", "n A", "n B", "p50 A", "p50 B", "p50", "p95 A", "p95 B", "p95", ""]
    out += table(header, rows, right=set(range(2, 10)))
    flagged = [c for c in changes if c.regressed]
    out.append("")
    out.append(
        f"{len(flagged)} regression{'s' * (len(flagged) != 1)}: "
        + ", ".join(f"{c.service}/{c.name}" for c in flagged)
        if flagged
        else "no regressions"
    )
    return printable("\n".join(out) + "\n", lines=True)
