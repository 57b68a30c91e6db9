"""Instrumentations against real servers: a Redis client against ``redis-server`` (installed by
``.ci/run`` from Debian's packages), and the OpenAI client, instrumented by
``opentelemetry-instrumentation-openai-v2``, against an OpenAI-compatible server written
here and served on loopback. Both instrumented from ``[telemetry.instrumentations]`` alone;
their spans are children of sfumato's own, and the samplers decide for them.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import openai
import pytest
import redis
import requests
import sfumato
from instrumented import configure as _configure
from instrumented import serving
from instrumented import spans as _spans
from receivers import redis_server
from sfumato._scrubbing import MARK
from sfumato.plugins.botticelli import llm_call, narrative
from sfumato.plugins.local.store import Store, attributes

pytestmark = pytest.mark.server

CANARY = "canary-prompt-text-5ac1"


@pytest.fixture(scope="module")
def redis_port() -> Iterator[int]:
    with redis_server() as port:
        yield port


def test_redis_commands_are_spans_of_the_narrative_that_ran_them(redis_port: int) -> None:
    telemetry = _configure(redis=True)
    try:
        client = redis.Redis(host="127.0.0.1", port=redis_port)
        with narrative("curation", "cache") as run:
            client.set("item:1", "approved")
            assert client.get("item:1") == b"approved"
        spans = _spans(telemetry)
    finally:
        telemetry.shutdown()
    commands = [s for s in spans if s.kind.name == "CLIENT"]
    assert [s.name for s in commands] == ["SET", "GET"]
    root = next(s for s in spans if s.context.span_id == int(run.span_id, 16))
    for span in commands:
        assert span.parent.span_id == root.context.span_id
        assert span.attributes.get("db.system") == "redis" or (
            span.attributes.get("db.system.name") == "redis"
        )


def test_a_failed_redis_command_keeps_its_trace_under_error_always(redis_port: int) -> None:
    """error-always over a sampler that keeps nothing: only the trace whose command failed
    is exported, whole."""
    telemetry = _configure(
        sampler={"type": "error-always", "otherwise": {"type": "always_off"}}, redis=True
    )
    try:
        client = redis.Redis(host="127.0.0.1", port=redis_port)
        with narrative("curation", "fine"):
            client.set("ok", "1")
        with pytest.raises(redis.ResponseError), narrative("curation", "broken") as failed:
            client.execute_command("NOSUCH")
        spans = _spans(telemetry)
    finally:
        telemetry.shutdown()
    assert {s.context.trace_id for s in spans} == {int(failed.trace_id, 16)}
    command = next(s for s in spans if s.kind.name == "CLIENT")
    assert command.status.status_code.name == "ERROR"


class _FakeOpenAI(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat completions endpoint: answers every request with one
    completion and its token usage, and remembers the requests."""

    seen: ClassVar[list[dict[str, Any]]] = []
    reply: ClassVar[str] = "a reply"

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append({"path": self.path, "body": body, "headers": dict(self.headers)})
        answer = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": type(self).reply},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        }
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def openai_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeOpenAI)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _FakeOpenAI.seen = []
    _FakeOpenAI.reply = "a reply"
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        thread.join(5)


def test_an_llm_call_through_the_openai_client_is_a_span_of_the_narrative(
    openai_url: str,
) -> None:
    telemetry = _configure(openai=True)
    try:
        client = openai.OpenAI(base_url=openai_url, api_key="sk-test", max_retries=0)
        with narrative("content_generation", "draft") as run:
            reply = client.chat.completions.create(
                model="reference-model",
                messages=[{"role": "user", "content": CANARY}],
            )
        assert reply.choices[0].message.content == "a reply"
        assert telemetry.instrumented == {"openai": "instrumented"}
        spans = _spans(telemetry)
    finally:
        telemetry.shutdown()
    (call,) = [s for s in spans if s.attributes.get("gen_ai.request.model") == "reference-model"]
    assert call.name == "chat reference-model"
    assert call.kind.name == "CLIENT"
    assert call.parent.span_id == int(run.span_id, 16)
    assert call.attributes["gen_ai.usage.input_tokens"] == 11
    assert call.attributes["gen_ai.usage.output_tokens"] == 7
    assert _FakeOpenAI.seen[0]["body"]["model"] == "reference-model"
    # Message content is not recorded unless asked for.
    attributes = [dict(s.attributes) for s in spans]
    events = [dict(e.attributes) for s in spans for e in s.events]
    recorded = json.dumps([attributes, events], default=str)
    assert CANARY not in recorded


SECRET = "canary-secret-9d41e07b"


def test_a_canary_secret_reaches_no_store_through_any_instrumentation(
    redis_port: int, openai_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One narrative hands the same secret to every instrumentation the way applications
    leak them: a query parameter and request headers (requests and FastAPI, headers
    captured), a Redis error that echoes the command, an LLM prompt and reply with message
    content captured (OpenAI's instrumentation and Botticelli's helper, span and event), and
    a log message. The local store, read back as text, never holds it; the spans and records
    that carried it say so in ``sfumato.scrubbed``."""
    monkeypatch.setenv("OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SERVER_REQUEST", "authorization")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_AND_EVENT")
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT", "true")
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "gen_ai_latest_experimental")
    _FakeOpenAI.reply = f"stored with password={SECRET}"
    store = tmp_path / "store"
    telemetry = sfumato.configure(
        service_name="canary",
        backend="local",
        backend_options={"directory": str(store)},
        metrics={"enabled": False},
        logs={"level": "INFO"},
        instrumentations={"requests": True, "fastapi": True, "redis": True, "openai": True},
    )
    try:
        with serving() as url, narrative("content_generation", "canary"):
            answer = requests.get(
                f"{url}/hello?api_key={SECRET}",
                headers={"Authorization": f"Bearer {SECRET}"},
                timeout=10,
            )
            assert answer.status_code == 200
            with pytest.raises(redis.ResponseError, match=SECRET):  # Redis echoes it
                redis.Redis(host="127.0.0.1", port=redis_port).execute_command(
                    "NOSUCH", f"token={SECRET}"
                )
            client = openai.OpenAI(base_url=openai_url, api_key="sk-test", max_retries=0)
            client.chat.completions.create(
                model="reference-model",
                messages=[{"role": "user", "content": f"log in with password={SECRET}"}],
            )
            with llm_call("reference-model", provider="openai") as call:
                call.record_messages(f"my token={SECRET}", f"noted: token={SECRET}")
            logging.getLogger("app").warning("login refused for api_key=%s", SECRET)
    finally:
        telemetry.shutdown()
    text = "\n".join(p.read_text() for p in store.rglob("*") if p.is_file())
    assert text, "nothing was stored"
    assert SECRET not in text
    spans = list(Store(store).spans())
    marked = {s.name: list(s.attributes.get(MARK, ())) for s in spans}
    client_span = next(s.name for s in spans if s.kind == 3 and s.name.startswith("GET"))
    server_span = next(s.name for s in spans if s.kind == 2)
    assert {"url.full", "http.url"} & set(marked[client_span])  # the stable or old name
    assert "http.request.header.authorization" in marked[server_span]
    redis_span = marked["NOSUCH"]
    assert "status.description" in redis_span or any(p.startswith("events.") for p in redis_span)
    openai_marks = [
        marks for s in spans for marks in [marked[s.name]] if s.name == "chat reference-model"
    ]
    assert len(openai_marks) == 2  # the instrumentation's span and Botticelli's
    for marks in openai_marks:
        assert {"gen_ai.input.messages", "gen_ai.output.messages"} <= set(marks)
    records = [
        attributes(record.get("attributes"))
        for request in Store(store).requests("logs")
        for resource_logs in request["resourceLogs"]
        for scope_logs in resource_logs["scopeLogs"]
        for record in scope_logs["logRecords"]
    ]
    scrubbed_records = [r for r in records if MARK in r]
    assert len(scrubbed_records) >= 2  # the log message, and the GenAI event
