"""Real CPU work standing in for an LLM step: building a prompt document and parsing the JSON
reply. Sized by calibration so that one act costs about a given number of milliseconds on the
machine at hand, which keeps the simulator's telemetry-to-work ratio realistic everywhere."""

from __future__ import annotations

import json
import os
import threading
import time
from functools import lru_cache
from typing import Any

__all__ = ["Workload", "per_item_seconds", "workload_for"]

_CALIBRATION_ITEMS = 200
_lock = threading.Lock()
_per_item: float | None = None


def _new_lock_after_fork() -> None:
    """A forked child's own lock: a parent thread may have held it at the fork."""
    global _lock
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock_after_fork)


def _document(items: int, topic: str, act: str) -> list[dict[str, Any]]:
    return [
        {
            "id": i,
            "title": f"{topic}: {act} idea {i}",
            "score": (i * 37 % 100) / 100,
            "tags": [topic, act, "draft" if i % 2 else "final"],
            "body": f"paragraph {i} about {topic}, written for the {act} act",
        }
        for i in range(items)
    ]


def per_item_seconds() -> float:
    """Seconds to build, serialise and parse one item of the stand-in document (measured once
    per process: the best of a few rounds, so a busy moment does not inflate it)."""
    global _per_item
    if _per_item is None:
        with _lock:
            if _per_item is None:
                best = float("inf")
                for _ in range(7):
                    start = time.perf_counter()
                    json.loads(json.dumps(_document(_CALIBRATION_ITEMS, "calibration", "act")))
                    best = min(best, time.perf_counter() - start)
                _per_item = best / _CALIBRATION_ITEMS
    return _per_item


class Workload:
    """The CPU work of one act: ``build_reply()`` in the LLM step, ``parse`` in the JSON step.

    ``act_ms`` is the target CPU time of one act (both steps together).
    """

    __slots__ = ("act_ms", "items")

    def __init__(self, act_ms: float) -> None:
        self.act_ms = act_ms
        self.items = max(1, round(act_ms / 1000 / per_item_seconds())) if act_ms > 0 else 0

    def build_reply(self, topic: str, act: str, *, corrupt: bool = False) -> str:
        """Build the prompt document and the model's JSON reply to it; ``corrupt`` cuts the
        reply in half, as a model that stopped mid-answer would."""
        text = json.dumps({"topic": topic, "act": act, "items": _document(self.items, topic, act)})
        return text[: len(text) // 2] if corrupt else text

    @staticmethod
    def parse(text: str) -> Any:
        return json.loads(text)


@lru_cache(maxsize=64)
def workload_for(act_ms: float) -> Workload:
    """A cached ``Workload`` for ``act_ms`` milliseconds per act."""
    return Workload(act_ms)
