"""Botticelli instrumentation: its metrics, narrative spans, pipeline propagation and a
simulated bot server.

    from sfumato.plugins.botticelli import BotMetrics, act, llm_call, narrative

Everything here works before ``sfumato.configure()`` (as no-ops) and follows the pipeline
``configure()`` installs; none of it raises into the bot's code.
"""

from __future__ import annotations

from .cardinality import CardinalityGuard
from .metrics import INSTRUMENTS, BotMetrics, default_metrics
from .propagation import continue_from, extract_context, inject_context, link_from, linked_to
from .spans import (
    ActSpan,
    LlmCall,
    NarrativeSpan,
    act,
    current_narrative,
    llm_call,
    narrative,
    parse_json,
)

__all__ = [
    "INSTRUMENTS",
    "ActSpan",
    "BotMetrics",
    "CardinalityGuard",
    "LlmCall",
    "NarrativeSpan",
    "act",
    "continue_from",
    "current_narrative",
    "default_metrics",
    "extract_context",
    "inject_context",
    "link_from",
    "linked_to",
    "llm_call",
    "narrative",
    "parse_json",
]
