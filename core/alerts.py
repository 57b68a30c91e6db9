"""Health rules rendered as a Prometheus alerting-rules file.

The metric names are the ones the OpenTelemetry Prometheus exporter exposes: dots and other
characters become underscores, a unit is appended (``s`` becomes ``_seconds``; annotation
units such as ``{run}`` add nothing), counters get ``_total``, histograms are read through
their ``_count`` and ``_bucket`` series. Units and instrument kinds of known metrics are looked
up in ``instruments`` (what plugins give through the ``sfumato_metric_instruments`` hook);
other metrics take ``unit`` from the rule, and count as counters (histograms for kind
``max``).

The YAML is written by hand: every string is a JSON string, which YAML reads as a
double-quoted scalar, so no YAML library is needed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .settings import HealthRule

__all__ = [
    "Instrument",
    "histogram_boundaries",
    "prometheus_expr",
    "prometheus_name",
    "render_prometheus",
]


@dataclass(frozen=True)
class Instrument:
    """What the rules need to know of a metric's instrument: its kind (``counter``,
    ``histogram``, ``gauge``, ``up_down_counter``), its unit, and a histogram's bucket
    boundaries."""

    kind: str
    unit: str = ""
    boundaries: tuple[float, ...] | None = None


Instruments = Mapping[str, Instrument]

_UNITS = {
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "1": "ratio",
    "%": "percent",
}
_INVALID = re.compile(r"[^a-zA-Z0-9_:]")
_LABEL_INVALID = re.compile(r"[^a-zA-Z0-9_]")


def _instrument(metric: str, instruments: Instruments | None) -> tuple[str | None, str | None]:
    """(kind, unit) of a known instrument."""
    known = (instruments or {}).get(metric)
    return (known.kind, known.unit) if known is not None else (None, None)


def histogram_boundaries(
    metric: str, instruments: Instruments | None = None
) -> tuple[float, ...] | None:
    """The bucket boundaries of a known histogram; None for anything else."""
    known = (instruments or {}).get(metric)
    if known is None or known.kind != "histogram":
        return None
    return known.boundaries


def prometheus_name(rule: HealthRule, instruments: Instruments | None = None) -> tuple[str, str]:
    """(base name as exposed, instrument kind) of the rule's metric."""
    kind, unit = _instrument(rule.metric, instruments)
    unit = rule.unit or unit or ""
    if kind is None:
        kind = "histogram" if rule.kind == "max" else "counter"
    name = _INVALID.sub("_", rule.metric)
    suffix = "" if unit.startswith("{") else _UNITS.get(unit, _INVALID.sub("_", unit))
    if suffix and not name.endswith("_" + suffix):
        name = f"{name}_{suffix}"
    return name, kind


def _selector(where: dict[str, str], extra: dict[str, str] | None = None) -> str:
    labels = {_LABEL_INVALID.sub("_", k): v for k, v in where.items()}
    labels.update(extra or {})
    if not labels:
        return ""
    return "{" + ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items())) + "}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def prometheus_expr(rule: HealthRule, instruments: Instruments | None = None) -> str:
    base, kind = prometheus_name(rule, instruments)
    series = f"{base}_count" if kind == "histogram" else f"{base}_total"
    if kind in ("gauge", "up_down_counter"):
        series = base
    window = f"[{rule.window}]"
    matched = f"sum(increase({series}{_selector(rule.where)}{window}))"
    if rule.kind == "ratio":
        total = f"sum(increase({series}{window}))"
        expr = f"{matched} / {total} > {_number(rule.threshold)}"
        if rule.min_total > 1:
            expr = f"({expr}) and {total} >= {rule.min_total}"
        return expr
    if rule.kind == "count":
        return f"{matched} > {_number(rule.threshold)}"
    if rule.kind == "quota":
        assert rule.quota is not None
        return f"{matched} > {_number(rule.threshold * rule.quota)}"
    if kind in ("gauge", "up_down_counter"):
        return f"max(max_over_time({series}{_selector(rule.where)}{window})) > " + _number(
            rule.threshold
        )
    # max over a histogram: observations in the window above the bucket bound `threshold`.
    le = {"le": repr(float(rule.threshold))}
    above = f"sum(increase({base}_bucket{_selector(rule.where, le)}{window}))"
    return f"({matched} - {above}) > 0"


def render_prometheus(
    rules: Iterable[HealthRule], group: str = "sfumato", instruments: Instruments | None = None
) -> str:
    """A rules file with one group holding one alert per rule."""
    out = ["groups:", f"  - name: {json.dumps(group)}", "    rules:"]
    for rule in rules:
        out.append(f"      - alert: {json.dumps(rule.name)}")
        out.append(f"        expr: {json.dumps(prometheus_expr(rule, instruments))}")
        out.append("        labels:")
        out.append(f"          severity: {json.dumps(rule.severity)}")
        out.append("        annotations:")
        summary = rule.summary or f"{rule.name}: {rule.metric} {rule.kind} over {rule.window}"
        out.append(f"          summary: {json.dumps(summary)}")
        detail = f"{rule.kind} of {rule.metric} over {rule.window}, threshold {rule.threshold}"
        if rule.quota is not None:
            detail += f" of a quota of {_number(rule.quota)}"
        out.append(f"          description: {json.dumps(detail + '; value {{ $value }}')}")
    return "\n".join(out) + "\n"
