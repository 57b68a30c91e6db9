"""``sfumato report costs``: LLM tokens and their estimated cost per topic, model and day.

Read from the LLM-call spans of a local store (``llm <model>``, or any span with
``gen_ai.operation.name``: Botticelli's under the GenAI conventions and the GenAI
instrumentations'), with ``gen_ai.usage.input_tokens`` and ``gen_ai.usage.output_tokens``;
the topic is the ``bot.topic`` of the trace's narrative, the day the span's start (UTC).
Each span counts ``sampling.adjusted_count`` times, so the totals estimate the whole
traffic, not only the kept traces. Prices come from a TOML table, per model, in currency
units per 1000 tokens::

    [models."gpt-4o-mini"]
    input_per_1k = 0.00015
    output_per_1k = 0.0006
"""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from .report import printable, table
from .store import SpanRecord, Store

__all__ = ["CostRow", "Prices", "costs", "load_prices", "render_csv", "render_text"]

LLM_PREFIX = "llm "
OPERATION = "gen_ai.operation.name"
MODEL = "gen_ai.request.model"
INPUT = "gen_ai.usage.input_tokens"
OUTPUT = "gen_ai.usage.output_tokens"
TOPIC = "bot.topic"


class ModelPrice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input_per_1k: float = Field(ge=0)
    output_per_1k: float = Field(ge=0)


class Prices(BaseModel):
    model_config = ConfigDict(extra="forbid")

    currency: str = "USD"
    models: dict[str, ModelPrice] = Field(default_factory=dict)


def load_prices(path: str | os.PathLike[str]) -> Prices:
    """A price file: ``[models."name"]`` tables (and an optional ``currency``)."""
    import tomlkit
    from sfumato._errors import ConfigError

    try:
        data = tomlkit.parse(Path(path).read_text(encoding="utf-8")).unwrap()
        return Prices.model_validate(data)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the price table: {exc}") from None


@dataclass
class CostRow:
    day: str
    topic: str
    model: str
    calls: float = 0.0
    input_tokens: float = 0.0
    output_tokens: float = 0.0
    cost: float | None = None

    @property
    def tokens(self) -> float:
        return self.input_tokens + self.output_tokens


def costs(spans: Iterable[SpanRecord], prices: Prices | None = None) -> list[CostRow]:
    """Rows per (day, topic, model), weighted by the sampling adjusted count."""
    topics: dict[str, str] = {}
    calls: list[SpanRecord] = []
    for span in spans:
        topic = span.attributes.get(TOPIC)
        if topic is not None and span.trace_id not in topics:
            topics[span.trace_id] = str(topic)
        if span.name.startswith(LLM_PREFIX) or OPERATION in span.attributes:
            calls.append(span)
    rows: dict[tuple[str, str, str], CostRow] = {}
    for span in calls:
        model = str(span.attributes.get(MODEL) or span.name.partition(" ")[2])
        day = time.strftime("%Y-%m-%d", time.gmtime(span.start_ns / 1e9))
        key = (day, topics.get(span.trace_id, "?"), model)
        row = rows.get(key)
        if row is None:
            row = rows[key] = CostRow(*key)
        weight = span.adjusted_count
        row.calls += weight
        row.input_tokens += weight * _int(span.attributes.get(INPUT))
        row.output_tokens += weight * _int(span.attributes.get(OUTPUT))
    models: Mapping[str, ModelPrice] = prices.models if prices else {}
    for row in rows.values():
        price = models.get(row.model)
        if price is not None:
            row.cost = (
                row.input_tokens * price.input_per_1k + row.output_tokens * price.output_per_1k
            ) / 1000
    return sorted(rows.values(), key=lambda r: (r.day, r.topic, r.model))


def _int(value: object) -> int:
    try:
        return int(value)  # type: ignore[call-overload,no-any-return]
    except (TypeError, ValueError):
        return 0


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.4f}"


def render_text(rows: list[CostRow], store: Store, prices: Prices | None) -> str:
    currency = prices.currency if prices else ""
    out = [f"LLM usage in {store.directory} (estimated: each call weighted by its sampling)"]
    if not rows:
        return printable(out[0] + "\nno LLM calls\n", lines=True)
    body = [
        [
            r.day,
            r.topic,
            r.model,
            f"{r.calls:,.0f}",
            f"{r.input_tokens:,.0f}",
            f"{r.output_tokens:,.0f}",
            f"{r.tokens:,.0f}",
            _money(r.cost),
        ]
        for r in rows
    ]
    priced = [r.cost for r in rows if r.cost is not None]
    total_tokens = sum(r.tokens for r in rows)
    body.append(
        [
            "total",
            "",
            "",
            "",
            "",
            "",
            f"{total_tokens:,.0f}",
            _money(sum(priced) if priced else None),
        ]
    )
    header = ["day", "topic", "model", "calls", "input", "output", "tokens", f"cost {currency}"]
    out += table(header, body, right=set(range(3, 8)))
    missing = sorted({r.model for r in rows if r.cost is None})
    if missing:
        out.append(f"no price for: {', '.join(missing)} (--prices FILE)")
    return printable("\n".join(out) + "\n", lines=True)


def render_csv(rows: list[CostRow]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["day", "topic", "model", "calls", "input_tokens", "output_tokens", "tokens", "cost"]
    )
    for r in rows:
        writer.writerow(
            [
                r.day,
                r.topic,
                r.model,
                f"{r.calls:.2f}",
                f"{r.input_tokens:.2f}",
                f"{r.output_tokens:.2f}",
                f"{r.tokens:.2f}",
                "" if r.cost is None else f"{r.cost:.6f}",
            ]
        )
    return printable(buffer.getvalue(), lines=True)
