"""Names shared by Botticelli's spans, metrics and reports: one place to look them up.

Span attributes follow OpenTelemetry's GenAI semantic conventions where one exists
(``gen_ai.*``); the rest are Botticelli's own, under ``narrative.*`` and ``bot.*``.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ACT",
    "ACT_SPAN_PREFIX",
    "BAGGAGE_NARRATIVE_TYPE",
    "CHAT",
    "CONTENT_ID",
    "ERROR_KIND",
    "INPUT_MESSAGES",
    "INPUT_TOKENS",
    "JSON_PARSE_SPAN",
    "LLM_SPAN_PREFIX",
    "MODEL",
    "NARRATIVE_NAME",
    "NARRATIVE_SPAN_PREFIX",
    "NARRATIVE_TYPE",
    "OPERATION_NAME",
    "OUTPUT_MESSAGES",
    "OUTPUT_TOKENS",
    "OVERFLOW_VALUE",
    "PROVIDER_NAME",
    "STAGE",
    "TOKENS_USED",
    "TOPIC",
]

# -- span attributes -------------------------------------------------------------------------
NARRATIVE_TYPE: Final = "narrative.type"
"""Kind of narrative (content_generation, curation, posting, research, ...); set at span
start on every narrative, act and LLM span so head samplers can key on it."""
NARRATIVE_NAME: Final = "narrative.name"
ACT: Final = "narrative.act"
STAGE: Final = "bot.stage"
"""Pipeline stage of a content item: generation, curation or posting."""
TOPIC: Final = "bot.topic"
CONTENT_ID: Final = "bot.content.id"
ERROR_KIND: Final = "bot.error.kind"
"""Short failure class on the span that failed: json_parse, posting, llm, ..."""
MODEL: Final = "gen_ai.request.model"
INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
OPERATION_NAME: Final = "gen_ai.operation.name"
"""The GenAI operation (chat, text_completion, embeddings, ...), under the GenAI conventions."""
PROVIDER_NAME: Final = "gen_ai.provider.name"
INPUT_MESSAGES: Final = "gen_ai.input.messages"
OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
CHAT: Final = "chat"
TOKENS_USED: Final = "bot.tokens.used"
"""Tokens used by all LLM calls under a narrative, set on the narrative's span at its end."""

# -- span names ------------------------------------------------------------------------------
NARRATIVE_SPAN_PREFIX: Final = "narrative "
ACT_SPAN_PREFIX: Final = "act "
LLM_SPAN_PREFIX: Final = "llm "
JSON_PARSE_SPAN: Final = "json.parse"

# -- context ---------------------------------------------------------------------------------
BAGGAGE_NARRATIVE_TYPE: Final = NARRATIVE_TYPE
"""Baggage entry carrying the narrative type to child spans and downstream stages."""

# -- metrics ---------------------------------------------------------------------------------
OVERFLOW_VALUE: Final = "_other"
"""What an attribute value becomes once its key has seen its cap of distinct values."""
