"""Real CPU work standing in for an LLM step, in the proportion a Python service's CPU has:
about two thirds interpreted code and one third C-level JSON.

Each act renders a prompt from templates (``build_prompt``, interpreted), receives the model's
JSON reply (``build_reply``: the document built and serialised, standing in for the bytes
received from the network), parses it (``parse``, ``json.loads``) and walks the parsed reply
into typed, validated objects and ranks them (``interpret``, interpreted). The composition is
fixed by the shape of the templates and the document; ``composition()`` reports the shares
measured at calibration. The number of items per act is sized by that calibration so that one
act costs about a given number of milliseconds on the machine at hand, which keeps the
simulator's telemetry-to-work ratio realistic everywhere.
"""

from __future__ import annotations

import heapq
import json
import operator
import os
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

__all__ = [
    "Choice",
    "Idea",
    "InvalidReply",
    "Workload",
    "calibrate",
    "composition",
    "interpret",
    "per_item_seconds",
    "workload_for",
]

_CALIBRATION_ITEMS = 200
_CALIBRATION_ROUNDS = 7
_CALIBRATION_S = 0.3
_TOP = 5
_first = operator.itemgetter(0)
_lock = threading.Lock()
_per_item: float | None = None
_shares: dict[str, float] | None = None


def _new_lock_after_fork() -> None:
    """A forked child's own lock: a parent thread may have held it at the fork."""
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock_after_fork)


# -- the prompt: a small template engine ------------------------------------------------------

Template = tuple[tuple[str, str | None], ...]


def _compile(text: str) -> Template:
    """``text`` as (literal, placeholder name or None) pairs; ``{{`` and ``}}`` are braces."""
    parts: list[tuple[str, str | None]] = []
    literal: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "{}" and text[i + 1 : i + 2] == c:
            literal.append(c)
            i += 2
        elif c == "{":
            end = text.index("}", i)
            parts.append(("".join(literal), text[i + 1 : end].strip()))
            literal = []
            i = end + 1
        else:
            literal.append(c)
            i += 1
    if literal:
        parts.append(("".join(literal), None))
    return tuple(parts)


_MAX_VALUE = 120


def _escape(value: object) -> str:
    """A value as prompt text: one line, trimmed, no braces, at most ``_MAX_VALUE`` long."""
    text = value if type(value) is str else str(value)
    text = " ".join(text.split())
    if "{" in text or "}" in text:
        text = text.replace("{", "(").replace("}", ")")
    if len(text) > _MAX_VALUE:
        text = text[: _MAX_VALUE - 1].rstrip() + "…"
    return text


def _render(template: Template, values: dict[str, object]) -> str:
    out: list[str] = []
    for literal, name in template:
        out.append(literal)
        if name is not None:
            out.append(_escape(values[name]))
    return "".join(out)


_HEADER = _compile(
    "You are {bot}, a writer for a {platform} account about {topic}.\n"
    "This is the {act} act. Propose {count} ideas; answer with JSON only: "
    '{{"topic": ..., "act": ..., "items": [{{"id", "title", "score", "tags", "body"}}]}}.\n'
)
_ITEM = _compile("- [{n}] {title}: {angle}, for {audience}\n")
_ANGLES = ("a surprising fact", "a short history", "a how-to", "a common mistake", "a list")
_AUDIENCES = ("beginners", "enthusiasts", "professionals", "students")


# -- the reply --------------------------------------------------------------------------------


def _document(items: int, topic: str, act: str) -> list[dict[str, Any]]:
    # Every tenth idea repeats the one before it, spelt differently: the model repeats itself.
    return [
        {
            "id": i,
            "title": (
                f"{topic.title()}:  {act.upper()} idea {i - 1}"
                if i % 10 == 9
                else f"{topic}: {act} idea {i}"
            ),
            "score": (i * 37 % 100) / 100,
            "tags": [topic, act, "draft" if i % 2 else "final"],
            "body": f"paragraph {i} about {topic}, written for the {act} act",
        }
        for i in range(items)
    ]


# -- interpreting the reply -------------------------------------------------------------------


class InvalidReply(ValueError):
    """The model's reply parsed as JSON but is not the document the act asked for."""


@dataclass(slots=True)
class Idea:
    """One validated item of the reply."""

    id: int
    title: str
    key: str  # the title normalised: lower case, single spaces
    score: float
    tags: tuple[str, ...]
    body: str


@dataclass(frozen=True, slots=True)
class Choice:
    """What an act keeps of the reply: the best ideas and how often each tag came up."""

    picked: tuple[Idea, ...]
    tag_counts: dict[str, int]
    duplicates: int


_REQUIRED = frozenset(("id", "title", "score", "tags", "body"))


def _bad(index: int, why: str) -> InvalidReply:
    return InvalidReply(f"reply item {index}: {why}")


def _idea(raw: object, index: int) -> Idea:
    if type(raw) is not dict:
        raise _bad(index, f"expected an object, got {type(raw).__name__}")
    missing = _REQUIRED - raw.keys()
    if missing:
        raise _bad(index, f"missing {', '.join(sorted(missing))}")
    ident = raw["id"]
    if type(ident) is not int or ident < 0:
        raise _bad(index, f"id must be a non-negative integer, got {ident!r}")
    title = raw["title"]
    if type(title) is not str or not title.strip():
        raise _bad(index, "title must be a non-empty string")
    score = raw["score"]
    if type(score) is int:
        score = float(score)
    elif type(score) is not float:
        raise _bad(index, f"score must be a number, got {type(score).__name__}")
    if not 0.0 <= score <= 1.0:
        raise _bad(index, f"score must be in [0, 1], got {score}")
    raw_tags = raw["tags"]
    if type(raw_tags) is not list or not raw_tags:
        raise _bad(index, "tags must be a non-empty list")
    tags: list[str] = []
    for tag in raw_tags:
        if type(tag) is not str:
            raise _bad(index, f"tags must be strings, got {type(tag).__name__}")
        normal = tag.strip().lower()
        if normal and normal not in tags:
            tags.append(normal)
    body = raw["body"]
    if type(body) is not str:
        raise _bad(index, "body must be a string")
    title = " ".join(title.split())
    return Idea(ident, title, title.lower(), score, tuple(tags), body.strip())


def _rank(ideas: list[Idea]) -> Choice:
    """Business logic on the validated ideas: dedup by normalised title (keeping the best
    score), count tags, score each idea and keep the top ``_TOP``."""
    best: dict[str, Idea] = {}
    for idea in ideas:
        kept = best.get(idea.key)
        if kept is None or idea.score > kept.score:
            best[idea.key] = idea
    counts: dict[str, int] = {}
    for idea in best.values():
        for tag in idea.tags:
            counts[tag] = counts.get(tag, 0) + 1
    total = len(best) or 1
    scored: list[tuple[float, Idea]] = []
    for idea in best.values():
        seen = 0
        for tag in idea.tags:
            seen += counts[tag]
        final = 0.6 * idea.score + 0.25 * (1.0 - seen / (total * len(idea.tags)))
        final += 0.15 * min(len(idea.body), 240) / 240
        scored.append((final + 0.05 if "final" in idea.tags else final, idea))
    top = heapq.nlargest(_TOP, scored, key=_first)
    return Choice(tuple(entry[1] for entry in top), counts, len(ideas) - len(best))


def interpret(parsed: object) -> Choice:
    """Validate the parsed reply into ``Idea`` objects and choose the best of them; raises
    ``InvalidReply`` (a ``ValueError``) naming the first invalid item."""
    if type(parsed) is not dict:
        raise InvalidReply(f"reply: expected an object, got {type(parsed).__name__}")
    items = parsed.get("items")
    if type(items) is not list:
        raise InvalidReply("reply: items must be a list")
    return _rank([_idea(raw, i) for i, raw in enumerate(items)])


# -- the act ----------------------------------------------------------------------------------


def _prompt(items: int, topic: str, act: str) -> str:
    """The prompt for an act asking for ``items`` ideas: a header and one rendered line per
    item."""
    header: dict[str, object] = {
        "bot": "botticelli",
        "platform": "mastodon",
        "topic": topic,
        "act": act,
        "count": items,
    }
    lines = [_render(_HEADER, header)]
    for i in range(items):
        lines.append(
            _render(
                _ITEM,
                {
                    "n": i + 1,
                    "title": f"{topic}: {act} idea {i}",
                    "angle": _ANGLES[i % len(_ANGLES)],
                    "audience": _AUDIENCES[i % len(_AUDIENCES)],
                },
            )
        )
    return "".join(lines).strip()


def _reply(items: int, topic: str, act: str) -> dict[str, Any]:
    return {"topic": topic, "act": act, "items": _document(items, topic, act)}


def _act_parts(items: int, seconds: float = _CALIBRATION_S) -> dict[str, float]:
    """Seconds of each part of one act of ``items`` items, each the best of the calibration
    rounds: the prompt, building the reply document, ``json.dumps`` + ``json.loads`` of it,
    and interpreting the parsed reply."""
    clock = time.perf_counter
    best = dict.fromkeys(("prompt", "document", "json", "interpret"), float("inf"))
    # At least _CALIBRATION_ROUNDS rounds over at least _CALIBRATION_S: a host whose speed
    # moves between states seconds apart is less likely to be caught in its slow one only.
    rounds = 0
    until = clock() + seconds
    while rounds < _CALIBRATION_ROUNDS or clock() < until:
        rounds += 1
        t0 = clock()
        _prompt(items, "calibration", "act")
        t1 = clock()
        document = _reply(items, "calibration", "act")
        t2 = clock()
        parsed = json.loads(json.dumps(document))
        t3 = clock()
        interpret(parsed)
        t4 = clock()
        for part, seconds in (
            ("prompt", t1 - t0),
            ("document", t2 - t1),
            ("json", t3 - t2),
            ("interpret", t4 - t3),
        ):
            best[part] = min(best[part], seconds)
    return best


def _calibrate(seconds: float = _CALIBRATION_S) -> None:
    global _per_item, _shares
    parts = _act_parts(_CALIBRATION_ITEMS, seconds)
    total = sum(parts.values())
    _shares = {"interpreted": (total - parts["json"]) / total, "json": parts["json"] / total}
    _per_item = total / _CALIBRATION_ITEMS


def calibrate(seconds: float) -> float:
    """Measure the cost per item again, for ``seconds`` (the best of the rounds), before any
    workload is sized; returns it. The benchmarks calibrate for seconds rather than the
    default 0.3 s: on a host whose speed moves between states seconds apart, a short
    calibration sizes the work by whichever state it fell in, and two runs then measure
    different amounts of work."""
    with _lock:
        _calibrate(seconds)
        workload_for.cache_clear()
    assert _per_item is not None
    return _per_item


def per_item_seconds() -> float:
    """Seconds of one act's work per item: prompt, reply, parse and interpret (measured once
    per process: the best of the rounds of 0.3 s, so a busy moment does not inflate it)."""
    if _per_item is None:
        with _lock:
            if _per_item is None:
                _calibrate()
    assert _per_item is not None
    return _per_item


def composition() -> dict[str, float]:
    """The shares of an act's CPU measured at calibration: ``interpreted`` (prompt rendering,
    building the reply document, interpreting the reply) and ``json`` (``json.dumps`` and
    ``json.loads``)."""
    per_item_seconds()
    assert _shares is not None
    return dict(_shares)


class Workload:
    """The CPU work of one act: ``build_prompt`` and ``build_reply`` in the LLM step, ``parse``
    in the JSON step, ``interpret`` after it.

    ``act_ms`` is the target CPU time of one act (all four together).
    """

    __slots__ = ("act_ms", "items")

    def __init__(self, act_ms: float) -> None:
        self.act_ms = act_ms
        self.items = max(1, round(act_ms / 1000 / per_item_seconds())) if act_ms > 0 else 0

    def build_prompt(self, topic: str, act: str) -> str:
        """The act's prompt, rendered from templates (interpreted)."""
        return _prompt(self.items, topic, act)

    def build_reply(self, topic: str, act: str, *, corrupt: bool = False) -> str:
        """The model's JSON reply (``json.dumps`` of the generated document: the bytes a bot
        would receive); ``corrupt`` cuts it in half, as a model that stopped mid-answer
        would."""
        text = json.dumps(_reply(self.items, topic, act))
        return text[: len(text) // 2] if corrupt else text

    @staticmethod
    def parse(text: str) -> Any:
        """``json.loads`` (C-level)."""
        return json.loads(text)

    @staticmethod
    def interpret(parsed: object) -> Choice:
        """The parsed reply validated and ranked (interpreted); see ``interpret``."""
        return interpret(parsed)


@lru_cache(maxsize=64)
def workload_for(act_ms: float) -> Workload:
    """A cached ``Workload`` for ``act_ms`` milliseconds per act."""
    return Workload(act_ms)
