"""A simulated Botticelli bot server: deterministic for a seed, fully instrumented.

Bots start runs drawn from a mix of narrative types. A ``content_generation`` run goes
through acts, each with an LLM call (real CPU work rendering a prompt and building the JSON
reply, plus an optional simulated latency), a JSON parse that fails at a configured rate, and
the parsed reply interpreted (validated into typed objects and ranked).
Each generated item is stored as a row with its trace carrier; curation picks it up later
(continuing the generation's trace) and approves or rejects it; approved items are posted
in a trace of their own linked back to curation, and posting fails at a configured rate.

``run(config)`` returns the true counts (narratives by type, failures by kind, tokens, act
durations, failed trace ids) so a test or ``sfumato demo`` can compare what the telemetry
estimated against what really happened. All random draws come from one ``random.Random(seed)``
in a fixed order, so the same config gives the same runs, failures and trace structure.

``reference_narrative()`` is the fixed workload benchmarks measure: one narrative of three
acts, ten spans, about ``cpu_ms`` of CPU work (two thirds interpreted Python, one third
C-level JSON: see ``workload``); ``reference_narrative_bare()`` does the same work with no
telemetry at all.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from . import conventions as conv
from .metrics import BotMetrics, default_metrics
from .propagation import continue_from, inject_context, linked_to
from .spans import act, llm_call, narrative, parse_json
from .workload import Workload, workload_for

__all__ = [
    "ACTS",
    "FailureRecord",
    "PostingError",
    "SimulationConfig",
    "SimulationResult",
    "reference_narrative",
    "reference_narrative_bare",
    "run",
]

ACTS: dict[str, tuple[str, ...]] = {
    "content_generation": ("research", "outline", "draft"),
    "research": ("search", "summarize"),
    "curation": ("score",),
    "posting": ("format", "publish"),
}
"""The acts of each narrative type; every act but ``publish`` makes one LLM call."""

STARTED_TYPES = ("content_generation", "research")
"""Narrative types a bot starts; curation and posting follow from generated content."""


class PostingError(RuntimeError):
    """The platform refused a post."""

    error_kind = "posting"


class SimulationConfig(BaseModel):
    """What to simulate. Rates are probabilities in [0, 1]."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    narratives: int = Field(
        default=200,
        ge=0,
        description="Bot runs started (not counting "
        "the curation and posting narratives they lead to).",
    )
    mix: dict[str, float] = Field(
        default_factory=lambda: {"content_generation": 0.8, "research": 0.2},
        description="Relative weights of the narrative types bots start.",
    )
    topics: list[str] = Field(
        default_factory=lambda: ["art", "science", "history", "travel", "food"], min_length=1
    )
    models: list[str] = Field(default_factory=lambda: ["gpt-4o-mini", "claude-haiku"], min_length=1)
    platforms: list[str] = Field(default_factory=lambda: ["mastodon", "bluesky"], min_length=1)
    act_cpu_ms: float = Field(default=1.0, ge=0, description="CPU work per act, in ms.")
    latency_ms: float = Field(
        default=0.0, ge=0, description="Simulated LLM latency per call (sleep), in ms."
    )
    json_failure_rate: float = Field(
        default=0.03, ge=0, le=1, description="Chance that one LLM reply is not valid JSON."
    )
    approval_rate: float = Field(default=0.7, ge=0, le=1)
    posting_failure_rate: float = Field(default=0.08, ge=0, le=1)
    curation_every: int = Field(
        default=10,
        ge=1,
        description="Drain the curation and posting queues after "
        "this many bot runs (and at the end).",
    )
    pool_size: int = Field(default=5, ge=1, description="Simulated database pool size.")
    record_metrics: bool = True

    @field_validator("mix")
    @classmethod
    def _known_types(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(STARTED_TYPES))
        if unknown:
            raise ValueError(f"unknown narrative types {unknown}; bots start: {STARTED_TYPES}")
        if any(w < 0 for w in value.values()) or sum(value.values()) <= 0:
            raise ValueError("mix weights must be >= 0 and not all zero")
        return value


@dataclass(frozen=True)
class FailureRecord:
    """One simulated failure: where it happened and the traces that lead to it."""

    kind: str  # json_parse or posting
    narrative_type: str
    act: str
    trace_id: str
    origin_trace_id: str | None = None  # for posting: the generation's trace


@dataclass
class SimulationResult:
    """What really happened, to compare against what the telemetry reports."""

    config: SimulationConfig
    narratives_by_type: Counter[str] = field(default_factory=Counter)
    failed_by_type: Counter[str] = field(default_factory=Counter)
    failures_by_kind: Counter[str] = field(default_factory=Counter)
    acts: Counter[str] = field(default_factory=Counter)
    act_durations: dict[str, list[float]] = field(default_factory=dict)
    llm_calls: int = 0
    spans: int = 0
    tokens: int = 0
    tokens_by_topic: Counter[str] = field(default_factory=Counter)
    tokens_by_model: Counter[str] = field(default_factory=Counter)
    generations: int = 0
    generation_failures: int = 0
    approved: int = 0
    rejected: int = 0
    published: int = 0
    posting_failed: int = 0
    failures: list[FailureRecord] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def narratives(self) -> int:
        return sum(self.narratives_by_type.values())

    @property
    def failed_trace_ids(self) -> set[str]:
        """Trace ids of every trace that holds a failed span."""
        return {f.trace_id for f in self.failures}

    def summary(self) -> dict[str, Any]:
        return {
            "narratives": self.narratives,
            "narratives_by_type": dict(self.narratives_by_type),
            "failed_by_type": dict(self.failed_by_type),
            "failures_by_kind": dict(self.failures_by_kind),
            "spans": self.spans,
            "tokens": self.tokens,
            "generations": self.generations,
            "generation_failures": self.generation_failures,
            "approved": self.approved,
            "rejected": self.rejected,
            "published": self.published,
            "posting_failed": self.posting_failed,
        }


@dataclass
class _Row:
    """A content item in the simulated database, stored with its trace carrier."""

    content_id: str
    topic: str
    carrier: dict[str, str]
    origin_trace_id: str


class _Server:
    def __init__(self, config: SimulationConfig, metrics: BotMetrics | None) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        # Latency jitter has its own generator: turning latency on must not change which
        # runs fail.
        self.jitter = random.Random(config.seed ^ 0x5EED)
        self.metrics = metrics if metrics is not None else default_metrics()
        self.record = config.record_metrics
        self.workload = workload_for(config.act_cpu_ms)
        self.result = SimulationResult(config=config)
        self.curation_queue: list[_Row] = []
        self.posting_queue: list[_Row] = []
        self.next_id = 0
        types = sorted(config.mix)
        self.types = types
        self.weights = [config.mix[t] for t in types]

    # -- pieces ----------------------------------------------------------------------------------

    def _db(self, operation: str) -> None:
        start = time.perf_counter()
        # Stand-in for a round trip: a little dictionary work.
        {str(i): i for i in range(50)}.get("25")
        if self.record:
            self.metrics.record_db_query(time.perf_counter() - start, operation, "content")

    def _llm_act(self, narrative_type: str, act_name: str, topic: str) -> int:
        """One act with an LLM call, a JSON parse and the parsed reply interpreted; returns
        tokens used, raises on a bad reply. Draws: model, prompt tokens, completion tokens,
        parse failure."""
        rng = self.rng
        model = rng.choice(self.config.models)
        prompt, completion = rng.randint(200, 1200), rng.randint(50, 600)
        corrupt = rng.random() < self.config.json_failure_rate
        result = self.result
        workload = self.workload
        started = time.perf_counter()
        try:
            with act(act_name, metrics=self.metrics, record_metrics=self.record):
                with llm_call(model, provider=_provider(model), metrics=self.metrics) as call:
                    workload.build_prompt(topic, act_name)
                    reply = workload.build_reply(topic, act_name, corrupt=corrupt)
                    if self.config.latency_ms:
                        time.sleep(self.config.latency_ms / 1000 * self.jitter.uniform(0.5, 1.5))
                    call.record_tokens(prompt, completion)
                result.llm_calls += 1
                result.tokens += prompt + completion
                result.tokens_by_topic[topic] += prompt + completion
                result.tokens_by_model[model] += prompt + completion
                if self.record and narrative_type != "content_generation":
                    # Generation runs report their tokens in record_generation*().
                    self.metrics.record_tokens(prompt + completion, topic, model)
                parsed = parse_json(reply, metrics=self.metrics, record_metrics=self.record)
                workload.interpret(parsed)
        finally:
            result.spans += 3
            result.acts[act_name] += 1
            result.act_durations.setdefault(act_name, []).append(time.perf_counter() - started)
        return prompt + completion

    def _plain_act(self, act_name: str, work: Callable[[], None]) -> None:
        started = time.perf_counter()
        try:
            with act(act_name, metrics=self.metrics, record_metrics=self.record):
                work()
        finally:
            self.result.spans += 1
            self.result.acts[act_name] += 1
            self.result.act_durations.setdefault(act_name, []).append(time.perf_counter() - started)

    def _failed(
        self,
        kind: str,
        narrative_type: str,
        act_name: str,
        trace_id: str,
        origin: str | None = None,
    ) -> None:
        result = self.result
        result.failed_by_type[narrative_type] += 1
        result.failures_by_kind[kind] += 1
        result.failures.append(FailureRecord(kind, narrative_type, act_name, trace_id, origin))

    # -- narratives ------------------------------------------------------------------------------

    def generation(self) -> None:
        topic = self.rng.choice(self.config.topics)
        result = self.result
        result.narratives_by_type["content_generation"] += 1
        result.spans += 1
        current = ""
        started = time.perf_counter()
        try:
            with narrative(
                "content_generation",
                "generate_post",
                metrics=self.metrics,
                record_metrics=self.record,
                attributes={conv.TOPIC: topic, conv.STAGE: "generation"},
            ) as run:
                for current in ACTS["content_generation"]:
                    self._llm_act("content_generation", current, topic)
                self.next_id += 1
                content_id = f"c{self.next_id:06d}"
                run.set_attribute(conv.CONTENT_ID, content_id)
                self._db("insert")
                self.curation_queue.append(_Row(content_id, topic, inject_context(), run.trace_id))
        except ValueError:
            # json.JSONDecodeError is a ValueError: the reply was not the JSON the act wanted.
            result.generation_failures += 1
            self._failed("json_parse", "content_generation", current, run.trace_id)
            if self.record:
                self.metrics.record_generation_failure(
                    time.perf_counter() - started, topic, tokens=run.tokens
                )
            return
        result.generations += 1
        if self.record:
            self.metrics.record_generation(time.perf_counter() - started, run.tokens, topic)

    def research(self) -> None:
        topic = self.rng.choice(self.config.topics)
        result = self.result
        result.narratives_by_type["research"] += 1
        result.spans += 1
        current = ""
        try:
            with narrative(
                "research",
                "research_topic",
                metrics=self.metrics,
                record_metrics=self.record,
                attributes={conv.TOPIC: topic},
            ) as run:
                for current in ACTS["research"]:
                    self._llm_act("research", current, topic)
        except ValueError:
            self._failed("json_parse", "research", current, run.trace_id)

    def curation(self, row: _Row) -> None:
        result = self.result
        result.narratives_by_type["curation"] += 1
        result.spans += 1
        self._db("select")
        try:
            with (
                continue_from(row.carrier),
                narrative(
                    "curation",
                    "curate_post",
                    metrics=self.metrics,
                    record_metrics=self.record,
                    attributes={
                        conv.TOPIC: row.topic,
                        conv.CONTENT_ID: row.content_id,
                        conv.STAGE: "curation",
                    },
                ) as run,
            ):
                self._llm_act("curation", "score", row.topic)
                approved = self.rng.random() < self.config.approval_rate
                run.set_attribute("bot.curation.approved", approved)
                if approved:
                    row.carrier = inject_context()
                    self._db("update")
        except ValueError:
            self._failed("json_parse", "curation", "score", run.trace_id)
            return
        if approved:
            result.approved += 1
            self.posting_queue.append(row)
        else:
            result.rejected += 1
        if self.record:
            self.metrics.record_curation(
                approved, row.topic, reason=None if approved else "quality"
            )

    def posting(self, row: _Row) -> None:
        result = self.result
        result.narratives_by_type["posting"] += 1
        result.spans += 1
        platform = self.rng.choice(self.config.platforms)
        fails = self.rng.random() < self.config.posting_failure_rate
        status = 503 if fails else 200
        workload = self.workload

        def format_post() -> None:
            workload.build_prompt(row.topic, "format")
            workload.interpret(workload.parse(workload.build_reply(row.topic, "format")))

        def publish() -> None:
            start = time.perf_counter()
            if self.config.latency_ms:
                time.sleep(self.config.latency_ms / 1000 * self.jitter.uniform(0.5, 1.5))
            if self.record:
                self.metrics.record_api_request(
                    time.perf_counter() - start, f"/{platform}/statuses", status_code=status
                )
            if fails:
                raise PostingError(f"{platform} answered {status}")

        try:
            with (
                linked_to(row.carrier),
                narrative(
                    "posting",
                    "publish_post",
                    metrics=self.metrics,
                    record_metrics=self.record,
                    attributes={
                        conv.TOPIC: row.topic,
                        conv.CONTENT_ID: row.content_id,
                        conv.STAGE: "posting",
                        "bot.platform": platform,
                    },
                ) as run,
            ):
                self._plain_act("format", format_post)
                self._plain_act("publish", publish)
                self._db("update")
        except PostingError as exc:
            result.posting_failed += 1
            self._failed("posting", "posting", "publish", run.trace_id, row.origin_trace_id)
            if self.record:
                self.metrics.record_posting(
                    False, row.topic, platform=platform, error_type=type(exc).__name__
                )
            return
        result.published += 1
        if self.record:
            self.metrics.record_posting(True, row.topic, platform=platform)

    def drain(self) -> None:
        queue, self.curation_queue = self.curation_queue, []
        for row in queue:
            self.curation(row)
        queue, self.posting_queue = self.posting_queue, []
        for row in queue:
            self.posting(row)

    def run(self, progress: Callable[[int, int], None] | None) -> SimulationResult:
        config = self.config
        started = time.perf_counter()
        if self.record:
            self.metrics.set_pool_size(config.pool_size)
        for i in range(config.narratives):
            kind = self.rng.choices(self.types, self.weights)[0]
            if kind == "content_generation":
                self.generation()
            else:
                self.research()
            if (i + 1) % config.curation_every == 0:
                self.drain()
            if progress is not None:
                progress(i + 1, config.narratives)
        self.drain()
        self.result.elapsed_s = time.perf_counter() - started
        return self.result


def run(
    config: SimulationConfig | None = None,
    *,
    metrics: BotMetrics | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SimulationResult:
    """Run the simulated bot server under whatever telemetry is configured.

    ``progress(done, total)`` is called after each bot run.
    """
    return _Server(config or SimulationConfig(), metrics).run(progress)


# -- the reference workload ----------------------------------------------------------------------

REFERENCE_ACTS = ("research", "outline", "draft")
REFERENCE_TOPIC = "reference"
REFERENCE_MODEL = "reference-model"


def _provider(model: str) -> str | None:
    """The GenAI provider name of a simulated model (for the GenAI conventions)."""
    if model.startswith("gpt"):
        return "openai"
    if model.startswith("claude"):
        return "anthropic"
    return None


def reference_narrative(
    cpu_ms: float = 10.0, *, latency_ms: float = 0.0, record_metrics: bool = True
) -> None:
    """One narrative of three acts, each with an act, an LLM-call and a JSON-parse span: ten
    spans in all, and (unless ``record_metrics`` is false) the narrative and act histograms
    and the parse counters, around ``cpu_ms`` of CPU work: about two thirds interpreted
    (rendering the prompt, building the reply, interpreting the parsed reply), one third
    C-level JSON (``json.dumps`` of the reply, ``json.loads`` in the parse)."""
    workload = workload_for(cpu_ms / len(REFERENCE_ACTS))
    with narrative(
        "content_generation",
        "reference",
        attributes={conv.TOPIC: REFERENCE_TOPIC},
        record_metrics=record_metrics,
    ):
        for name in REFERENCE_ACTS:
            with act(name, record_metrics=record_metrics):
                with llm_call(REFERENCE_MODEL) as call:
                    workload.build_prompt(REFERENCE_TOPIC, name)
                    reply = workload.build_reply(REFERENCE_TOPIC, name)
                    if latency_ms:
                        time.sleep(latency_ms / 1000)
                    call.record_tokens(500, 200)
                parsed = parse_json(reply, record_metrics=record_metrics)
                workload.interpret(parsed)


def reference_narrative_bare(cpu_ms: float = 10.0, *, latency_ms: float = 0.0) -> None:
    """The same work as ``reference_narrative`` with no telemetry at all."""
    workload: Workload = workload_for(cpu_ms / len(REFERENCE_ACTS))
    for name in REFERENCE_ACTS:
        workload.build_prompt(REFERENCE_TOPIC, name)
        reply = workload.build_reply(REFERENCE_TOPIC, name)
        if latency_ms:
            time.sleep(latency_ms / 1000)
        workload.interpret(workload.parse(reply))
