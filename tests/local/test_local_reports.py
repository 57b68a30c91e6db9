"""``sfumato report costs``, ``failures`` and ``compare`` on stores of known content."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from local_store_support import provider
from opentelemetry import trace
from opentelemetry.trace import Link, Status, StatusCode
from sfumato.cli import main

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in ns
MS = 1_000_000


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- costs -----------------------------------------------------------------------------------


def costs_store(directory: Path) -> None:
    tp = provider(directory, service="bot")
    t = tp.get_tracer("test")
    day2 = T0 + 86_400 * 10**9
    for start, topic, model, tokens, weight in (
        (T0, "art", "m1", (1000, 500), 1.0),
        (T0 + MS, "art", "m1", (2000, 0), 4.0),
        (T0 + 2 * MS, "food", "m2", (100, 100), 1.0),
        (day2, "art", "m1", (10, 10), 1.0),
    ):
        root = t.start_span(
            "narrative generate_post",
            start_time=start,
            attributes={"bot.topic": topic, "sampling.adjusted_count": weight},
        )
        call = t.start_span(
            f"llm {model}",
            trace.set_span_in_context(root),
            start_time=start,
            attributes={
                "gen_ai.request.model": model,
                "gen_ai.usage.input_tokens": tokens[0],
                "gen_ai.usage.output_tokens": tokens[1],
                "sampling.adjusted_count": weight,
            },
        )
        call.end(end_time=start + MS)
        root.end(end_time=start + 2 * MS)
    tp.shutdown()


def test_costs_per_day_topic_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    costs_store(tmp_path / "s")
    prices = tmp_path / "prices.toml"
    prices.write_text('currency = "EUR"\n[models.m1]\ninput_per_1k = 1.0\noutput_per_1k = 2.0\n')
    code, out, _ = run(
        capsys, "report", "costs", str(tmp_path / "s"), "--prices", str(prices), "--csv"
    )
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    by = {(r["day"], r["topic"], r["model"]): r for r in rows}
    assert set(by) == {
        ("2026-01-01", "art", "m1"),
        ("2026-01-01", "food", "m2"),
        ("2026-01-02", "art", "m1"),
    }
    art = by[("2026-01-01", "art", "m1")]
    # 1000 + 4 x 2000 input, 500 output; weighted calls 1 + 4.
    assert float(art["calls"]) == 5
    assert float(art["input_tokens"]) == 9000 and float(art["output_tokens"]) == 500
    assert float(art["cost"]) == pytest.approx(9.0 * 1.0 + 0.5 * 2.0)
    assert by[("2026-01-01", "food", "m2")]["cost"] == ""  # no price for m2

    code, out, _ = run(capsys, "report", "costs", str(tmp_path / "s"), "--prices", str(prices))
    assert code == 0 and "cost EUR" in out and "no price for: m2" in out


def test_costs_bad_price_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    costs_store(tmp_path / "s")
    prices = tmp_path / "prices.toml"
    prices.write_text("[models.m1]\ninput_per_1k = -1\noutput_per_1k = 0\n")
    code, _, err = run(capsys, "report", "costs", str(tmp_path / "s"), "--prices", str(prices))
    assert code == 2 and "price table" in err


# -- failures --------------------------------------------------------------------------------


def test_failures_lead_back_to_their_generation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tp = provider(tmp_path / "s", service="bot")
    t = tp.get_tracer("test")
    generation = t.start_span("narrative generate_post", attributes={"bot.stage": "generation"})
    generation.end()
    curation = t.start_span(
        "narrative curate_post",
        trace.set_span_in_context(generation),
        attributes={"bot.stage": "curation"},
    )
    curation.end()
    posting_ids = []
    for _ in range(2):
        posting = t.start_span(
            "narrative publish_post",
            attributes={"bot.stage": "posting"},
            links=[Link(curation.get_span_context())],
        )
        publish = t.start_span("act publish", trace.set_span_in_context(posting))
        publish.set_attribute("bot.error.kind", "posting")
        publish.set_status(Status(StatusCode.ERROR, "PostingError: 503"))
        publish.end()
        posting.set_status(Status(StatusCode.ERROR, "PostingError: 503"))
        posting.end()
        posting_ids.append(format(posting.get_span_context().trace_id, "032x"))
    broken = t.start_span("narrative research_topic", attributes={"narrative.type": "research"})
    broken.record_exception(ValueError("bad json"))
    broken.set_status(Status(StatusCode.ERROR))
    broken.end()
    tp.shutdown()

    code, out, _ = run(capsys, "report", "failures", str(tmp_path / "s"), "--json")
    assert code == 0
    groups = {(g["stage"], g["error"]): g["items"] for g in json.loads(out)}
    assert set(groups) == {("posting", "posting"), ("research", "ValueError")}
    origin = format(generation.get_span_context().trace_id, "032x")
    posting_items = groups[("posting", "posting")]
    assert sorted(i["trace_id"] for i in posting_items) == sorted(posting_ids)
    assert all(i["origin_trace_id"] == origin and i["hops"] == 1 for i in posting_items)
    assert all(i["origin_kept"] for i in posting_items)
    assert groups[("research", "ValueError")][0]["hops"] == 0

    code, out, _ = run(capsys, "report", "failures", str(tmp_path / "s"))
    assert code == 0 and f"-> {origin} (1 link, kept)" in out


# -- compare ---------------------------------------------------------------------------------


def timed_store(directory: Path, durations_ms: dict[str, list[float]]) -> None:
    tp = provider(directory, service="svc")
    t = tp.get_tracer("test")
    start = T0
    for name, values in durations_ms.items():
        for ms in values:
            s = t.start_span(name, start_time=start)
            s.end(end_time=start + int(ms * MS))
            start += 100 * MS
    tp.shutdown()


def test_compare_flags_regressions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    timed_store(tmp_path / "a", {"fast": [10.0] * 20, "steady": [5.0] * 20})
    timed_store(tmp_path / "b", {"fast": [13.0] * 20, "steady": [5.0] * 20, "new": [1.0]})
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    code, out, _ = run(capsys, "report", "compare", a, b)
    assert code == 1
    flagged = [line for line in out.splitlines() if line.endswith("REGRESSION")]
    assert len(flagged) == 1 and " fast " in flagged[0] and "+30.0%" in flagged[0]

    code, out, _ = run(capsys, "report", "compare", a, b, "--threshold", "35")
    assert code == 0 and "no regressions" in out

    code, out, _ = run(capsys, "report", "compare", a, b, "--json")
    changes = {c["name"]: c for c in json.loads(out)}
    assert changes["new"]["count_a"] == 0 and not changes["new"]["regressed"]
    assert changes["steady"]["p95_a"] == changes["steady"]["p95_b"] == 5 * MS


def test_compare_needs_two_stores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "report", "compare", str(tmp_path))
    assert code == 2 and "two directories" in err
