"""The reference work: its composition (interpreted code and C-level JSON), its calibration,
the reply's validation, and the same work with and without telemetry."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
import sfumato
from botticelli_support import finished_spans
from sfumato.plugins.botticelli.simulator import reference_narrative, reference_narrative_bare
from sfumato.plugins.botticelli.workload import (
    InvalidReply,
    Workload,
    composition,
    interpret,
    per_item_seconds,
    workload_for,
)


def test_interpreted_code_is_about_two_thirds_of_an_act() -> None:
    shares = composition()
    assert set(shares) == {"interpreted", "json"}
    assert shares["interpreted"] + shares["json"] == pytest.approx(1.0)
    assert 0.55 <= shares["interpreted"] <= 0.8, shares


def test_an_acts_items_are_sized_by_the_calibration() -> None:
    """The sizing, not a timing (what an act costs is the benchmarks' to measure): the items
    of an act follow the calibrated cost per item and scale with the target."""
    per_item = per_item_seconds()
    assert per_item > 0
    one, four = workload_for(1.0), workload_for(4.0)
    assert one.items == max(1, round(1.0 / 1000 / per_item))
    assert four.items == max(1, round(4.0 / 1000 / per_item))
    assert abs(four.items - 4 * one.items) <= 4


def test_no_work_is_no_items() -> None:
    workload = workload_for(0.0)
    assert workload.items == 0
    assert workload.interpret(workload.parse(workload.build_reply("t", "a"))).picked == ()


def test_a_valid_reply_is_validated_deduplicated_and_ranked() -> None:
    workload = Workload(1.0)
    workload.items = 40
    choice = interpret(json.loads(workload.build_reply("Art", "draft")))
    assert len(choice.picked) == 5
    assert choice.duplicates == 4  # every tenth idea repeats the one before it
    assert choice.tag_counts["art"] == 36  # tags normalised, counted once per kept idea
    assert all(idea.tags[0] == "art" and idea.key == idea.title.lower() for idea in choice.picked)
    scores = [idea.score for idea in choice.picked]
    assert scores[0] >= 0.9


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda item: item.update(score=1.5), r"reply item 3: score must be in \[0, 1\], got 1.5"),
        (lambda item: item.pop("title"), "reply item 3: missing title"),
        (lambda item: item.update(tags="art"), "reply item 3: tags must be a non-empty list"),
        (lambda item: item.update(id="3"), "reply item 3: id must be a non-negative integer"),
        (lambda item: item.update(tags=["art", 7]), "reply item 3: tags must be strings"),
    ],
)
def test_an_invalid_item_is_refused_clearly(
    change: Callable[[dict[str, Any]], object], message: str
) -> None:
    workload = Workload(1.0)
    workload.items = 10
    parsed = json.loads(workload.build_reply("art", "draft"))
    change(parsed["items"][3])
    with pytest.raises(InvalidReply, match=message) as caught:
        interpret(parsed)
    assert isinstance(caught.value, ValueError)


def test_an_invalid_reply_is_refused_clearly() -> None:
    with pytest.raises(InvalidReply, match="expected an object, got list"):
        interpret([])
    with pytest.raises(InvalidReply, match="items must be a list"):
        interpret({"items": None})
    with pytest.raises(InvalidReply, match="reply item 0: expected an object, got str"):
        interpret({"items": ["idea"]})


def test_a_corrupt_reply_does_not_parse() -> None:
    with pytest.raises(ValueError):
        workload_for(0.5).parse(workload_for(0.5).build_reply("art", "draft", corrupt=True))


def _count_calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Calls of each part of the work, counted by wrapping: the workload's methods, and
    ``json.loads`` of a reply (the instrumented narrative parses in ``parse_json``)."""
    calls: Counter[str] = Counter()
    replies: set[str] = set()

    def build_prompt(self: Workload, topic: str, act: str) -> str:
        calls["build_prompt"] += 1
        return original_prompt(self, topic, act)

    def build_reply(self: Workload, topic: str, act: str, *, corrupt: bool = False) -> str:
        calls["build_reply"] += 1
        reply = original_reply(self, topic, act, corrupt=corrupt)
        replies.add(reply)
        return reply

    def interpret(parsed: object) -> Any:
        calls["interpret"] += 1
        return original_interpret(parsed)

    def loads(text: Any, **kwargs: Any) -> Any:
        if isinstance(text, str) and text in replies:
            calls["json.loads"] += 1
        return original_loads(text, **kwargs)

    original_prompt, original_reply = Workload.build_prompt, Workload.build_reply
    original_interpret, original_loads = Workload.interpret, json.loads
    monkeypatch.setattr(Workload, "build_prompt", build_prompt)
    monkeypatch.setattr(Workload, "build_reply", build_reply)
    monkeypatch.setattr(Workload, "interpret", staticmethod(interpret))
    monkeypatch.setattr(json, "loads", loads)
    return calls


def test_bare_and_instrumented_narratives_do_the_same_work(
    telemetry: sfumato.Telemetry, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_calls(monkeypatch)
    reference_narrative(cpu_ms=1.5)
    instrumented = Counter(calls)
    calls.clear()
    reference_narrative_bare(cpu_ms=1.5)
    bare = Counter(calls)
    assert instrumented == bare
    assert bare == {"build_prompt": 3, "build_reply": 3, "json.loads": 3, "interpret": 3}
    assert len(finished_spans(telemetry)) == 10
