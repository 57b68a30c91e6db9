"""The scrubber: secrets out of span attributes, event attributes, status messages and log
records before export, marked on what carried them, on the export thread.

First the rules on their own (``Scrubber.mapping``), then through the pipeline: the local
store (a batched exporter, so the export thread) read back from disk, Python logging's
records, the ``sfumato_scrub`` hook from an installed plugin, the settings' errors.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sfumato
from opentelemetry import trace
from sfumato import ConfigError
from sfumato._otel import scrubbed_copy
from sfumato._scrubbing import MARK, REPLACEMENT, Scrubber
from sfumato._stats import Stats
from sfumato.plugin import ScrubMatch
from sfumato.plugins.local.store import Store, any_value, attributes

CANARY = "hunter2-canary-7f3e"


def scrub(attributes: dict[str, Any], **options: Any) -> tuple[dict[str, Any], list[str]]:
    paths: list[str] = []
    out = Scrubber(**options).mapping(attributes, "", paths)
    return (attributes if out is None else out), paths


# -- keys --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "db.password",
        "user_passwd",
        "http.request.header.authorization",
        "http.request.header.x-api-key",
        "apiKey",
        "access_token",
        "refresh-token",
        "oauth_token",
        "client_secret",
        "session_id",
        "http.response.header.set-cookie",
        "credit_card",
        "card.number",
        "aws.secret_access_key",
        "private_key",
        "user.ssn",
        "x-csrf-token",
        "CREDENTIALS",
    ],
)
def test_a_key_with_a_secrets_name_has_its_value_replaced(key: str) -> None:
    out, paths = scrub({key: CANARY, "narrative.type": "curation"})
    assert out[key] == REPLACEMENT
    assert out["narrative.type"] == "curation"
    assert paths == [key]


@pytest.mark.parametrize(
    "key",
    [
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens",
        "bot.tokens.used",
        "gen_ai.token.type",
        "book.author",
        "http.authority",
        "narrative.type",
        "url.path",
        "sampling.adjusted_count",
    ],
)
def test_keys_that_only_look_like_secrets_are_kept(key: str) -> None:
    out, paths = scrub({key: 42})
    assert out == {key: 42} and paths == []


def test_any_value_type_under_a_secret_key_is_replaced() -> None:
    out, paths = scrub({"pin_password": 1234, "auth.headers": ("Bearer x", "Basic y")})
    assert out == {"pin_password": REPLACEMENT, "auth.headers": REPLACEMENT}
    assert sorted(paths) == ["auth.headers", "pin_password"]


# -- values ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"https://api.example.com/v1/items?api_key={CANARY}&page=2",
            "https://api.example.com/v1/items?api_key=[scrubbed]&page=2",
        ),
        (
            f"UPDATE users SET password = '{CANARY}' WHERE id = 7",
            "UPDATE users SET password = [scrubbed] WHERE id = 7",
        ),
        (f'{{"user": "ann", "password": "{CANARY}"}}', '{"user": "ann", "password": [scrubbed]}'),
        (f"Authorization: Bearer {CANARY}", "Authorization: Bearer [scrubbed]"),
        (f"sent with bearer {CANARY}", "sent with bearer [scrubbed]"),
        (f"login failed: token={CANARY}", "login failed: token=[scrubbed]"),
        ("paid with 4111 1111 1111 1111 today", "paid with [scrubbed] today"),
        ("card 5555-5555-5555-4444", "card [scrubbed]"),
        ("key sk-proj-abcdefghijklmnop1234 leaked", "key [scrubbed] leaked"),
        ("AKIAIOSFODNN7EXAMPLE", "[scrubbed]"),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
            "jwt [scrubbed]",
        ),
        ("ghp_" + "a" * 36, "[scrubbed]"),
    ],
)
def test_secrets_inside_strings_are_replaced_and_the_rest_kept(text: str, expected: str) -> None:
    out, paths = scrub({"message": text})
    assert out["message"] == expected
    assert paths == ["message"]


@pytest.mark.parametrize(
    "text",
    [
        "content_generation",
        "tokens: 500",
        "https://api.example.com/v1/chat/completions",
        "SELECT * FROM items WHERE id = ?",
        "order 4111 1111 1111 1112 (not a card: the Luhn check fails)",
        "took 1733563200000 ms",  # a time in milliseconds, not a card
        "author: Ann",
        "",
    ],
)
def test_strings_without_secrets_are_kept(text: str) -> None:
    out, paths = scrub({"message": text})
    assert out["message"] == text and paths == []


def test_strings_in_sequences_are_scanned() -> None:
    out, paths = scrub({"urls": ["https://a/?x=1", f"https://b/?token={CANARY}"]})
    assert out["urls"] == ["https://a/?x=1", "https://b/?token=[scrubbed]"]
    assert paths == ["urls"]


def test_values_false_scans_keys_only() -> None:
    out, paths = scrub({"url": f"https://a/?api_key={CANARY}", "password": "x"}, values=False)
    assert out["url"] == f"https://a/?api_key={CANARY}"
    assert out["password"] == REPLACEMENT and paths == ["password"]


def test_a_clean_mapping_is_not_copied() -> None:
    attributes = {"narrative.type": "curation", "http.route": "/items/{id}", "n": 3}
    assert Scrubber().mapping(attributes, "", []) is None


# -- extra patterns, the allow-list, the hook ---------------------------------------------------


def test_extra_patterns_join_the_defaults_for_keys_and_pairs() -> None:
    out, paths = scrub(
        {"customer.iban": CANARY, "note": f"wire to iban={CANARY} today"},
        extra_patterns=[r"\biban\b"],
    )
    assert out == {"customer.iban": REPLACEMENT, "note": "wire to iban=[scrubbed] today"}
    assert sorted(paths) == ["customer.iban", "note"]


def test_allowed_keys_are_left_alone_exactly_or_by_glob() -> None:
    given = {
        "auth.method": "oauth",
        "http.request.header.x-token-kind": "short",
        "http.request.header.authorization": CANARY,
        "note": f"token={CANARY}",
    }
    out, paths = scrub(given, allow=["auth.method", "http.request.header.x-*", "note"])
    assert out["auth.method"] == "oauth"
    assert out["http.request.header.x-token-kind"] == "short"
    assert out["note"] == f"token={CANARY}"  # allowed: its value is not scanned either
    assert out["http.request.header.authorization"] == REPLACEMENT
    assert paths == ["http.request.header.authorization"]


def test_the_hook_may_keep_a_value_or_let_it_go() -> None:
    seen: list[ScrubMatch] = []

    def hook(match: ScrubMatch) -> Any:
        seen.append(match)
        if match.path == "auth.method":
            return match.value  # not a secret here
        if match.matched == "card":
            return "****" + match.value[-4:]
        return None

    out, paths = scrub(
        {"auth.method": "oauth", "password": CANARY, "note": "card 4111111111111111"},
        callback=hook,
    )
    assert out == {"auth.method": "oauth", "password": REPLACEMENT, "note": "card ****1111"}
    assert sorted(paths) == ["note", "password"]
    assert {(m.path, m.matched) for m in seen} == {
        ("auth.method", "auth"),
        ("password", "password"),
        ("note", "card"),
    }


def test_a_hook_that_raises_leaves_the_value_scrubbed_and_is_counted() -> None:
    def hook(match: ScrubMatch) -> Any:
        raise RuntimeError("broken hook")

    stats = Stats()
    paths: list[str] = []
    out = Scrubber(callback=hook, stats=stats).mapping({"password": CANARY}, "", paths)
    assert out == {"password": REPLACEMENT}
    assert stats.snapshot()["scrub.errors"] == 1


def test_invalid_extra_patterns_are_a_clear_error_at_configure() -> None:
    with pytest.raises(ConfigError, match=r"extra_patterns.*not a regular expression"):
        sfumato.configure(backend="none", scrubbing={"extra_patterns": ["(unclosed"]})


# -- spans and log records -----------------------------------------------------------------------


def _ended_span(attributes: dict[str, Any]) -> Any:
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider()
    span = provider.get_tracer("t").start_span("s", attributes=attributes)
    span.add_event("exception", {"exception.message": f"login with password={CANARY} failed"})
    span.set_status(trace.Status(trace.StatusCode.ERROR, f"denied for token={CANARY}"))
    span.end()
    return span


def test_a_span_is_copied_scrubbed_and_marked_the_original_untouched() -> None:
    span = _ended_span({"password": CANARY, "narrative.type": "curation"})
    clean = _ended_span({"narrative.type": "curation"})
    stats = Stats()
    batch = Scrubber(stats=stats).spans([span, clean])
    scrubbed = batch[0]
    assert scrubbed is not span
    assert scrubbed.attributes["password"] == REPLACEMENT
    assert scrubbed.attributes["narrative.type"] == "curation"
    assert scrubbed.events[0].attributes["exception.message"] == (
        "login with password=[scrubbed] failed"
    )
    assert scrubbed.status.description == "denied for token=[scrubbed]"
    assert scrubbed.attributes[MARK] == (
        "events.exception.exception.message",
        "password",
        "status.description",
    )
    assert span.attributes["password"] == CANARY  # another exporter may hold it
    # The clean span's own attributes were left as they are (its event and status were not).
    assert batch[1] is not clean and MARK in batch[1].attributes
    assert stats.snapshot()["traces.scrubbed"] == 2


def test_a_span_with_nothing_to_scrub_is_the_same_object() -> None:
    from opentelemetry.sdk.trace import TracerProvider

    span = TracerProvider().get_tracer("t").start_span("s", attributes={"a": "b"})
    span.end()
    assert Scrubber().spans([span])[0] is span


def test_a_span_that_cannot_be_read_is_sent_emptied_and_marked() -> None:
    span = _ended_span({"password": CANARY})

    class Odd(dict[str, Any]):
        def items(self) -> Any:
            raise RuntimeError("unreadable")

    odd = scrubbed_copy(span, {}, None, None)
    odd._attributes = Odd(password=CANARY)
    stats = Stats()
    (sent,) = Scrubber(stats=stats).spans([odd])
    assert dict(sent.attributes) == {MARK: ("*",)} and not sent.events
    assert stats.snapshot()["scrub.errors"] == 1


@pytest.fixture
def store_telemetry(tmp_path: Path) -> Iterator[tuple[Any, Path]]:
    handle = sfumato.configure(
        backend="local",
        backend_options={"directory": str(tmp_path / "store")},
        service_name="scrubbed",
        metrics={"enabled": False},
        logs={"level": "INFO"},
    )
    try:
        yield handle, tmp_path / "store"
    finally:
        handle.shutdown()


def _stored_logs(directory: Path) -> dict[Any, dict[str, Any]]:
    """The log records of a store: body -> attributes."""
    found: dict[Any, dict[str, Any]] = {}
    for request in Store(directory).requests("logs"):
        for resource_logs in request["resourceLogs"]:
            for scope_logs in resource_logs["scopeLogs"]:
                for record in scope_logs["logRecords"]:
                    body = any_value(record.get("body", {}))
                    found[str(body)] = attributes(record.get("attributes"))
    return found


def _stored_text(directory: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(directory.rglob("*")) if p.is_file())


def test_the_local_store_never_receives_the_secret(store_telemetry: tuple[Any, Path]) -> None:
    handle, directory = store_telemetry
    tracer = trace.get_tracer("app")
    with tracer.start_as_current_span(
        "login", attributes={"user": "ann", "password": CANARY, "url": f"/l?token={CANARY}"}
    ):
        logging.getLogger("app").warning("login with password=%s refused", CANARY)
        logging.getLogger("app").info("retry", extra={"api_key": CANARY, "attempt": 2})
    handle.force_flush(10)
    text = _stored_text(directory)
    assert "login" in text and "retry" in text  # the span and the records were stored
    assert CANARY not in text
    store = Store(directory)
    (span,) = [s for s in store.spans() if s.name == "login"]
    assert list(span.attributes[MARK]) == ["password", "url"]
    assert span.attributes["user"] == "ann"
    records = _stored_logs(directory)
    assert list(records["login with password=[scrubbed] refused"][MARK]) == ["body"]
    assert records["retry"]["api_key"] == REPLACEMENT
    assert records["retry"]["attempt"] == 2
    snapshot = handle.stats()
    assert snapshot["traces.scrubbed"] == 1 and snapshot["logs.scrubbed"] == 2


def test_mapping_bodies_of_log_records_are_scrubbed_by_key(
    store_telemetry: tuple[Any, Path],
) -> None:
    from opentelemetry._logs import LogRecord, get_logger

    handle, directory = store_telemetry
    get_logger("app").emit(
        LogRecord(body={"event": "signup", "password": CANARY, "nested": {"token": CANARY}})
    )
    handle.force_flush(10)
    assert "signup" in _stored_text(directory)
    assert CANARY not in _stored_text(directory)


def test_the_scrubber_runs_on_the_export_thread(tmp_path: Path) -> None:
    """The hook is asked on the thread that exports: never the application's."""
    site = _hook_plugin(tmp_path)
    sys.path.insert(0, str(site))
    try:
        handle = sfumato.configure(
            backend="local",
            backend_options={"directory": str(tmp_path / "store")},
            metrics={"enabled": False},
            logs={"enabled": False},
            scrubbing={"extra_patterns": ["pin"]},
        )
        try:
            import scrubhook

            with trace.get_tracer("app").start_as_current_span("s", attributes={"pin_code": 1}):
                pass
            handle.force_flush(10)
            assert scrubhook.THREADS, "the hook was never asked"
            assert threading.get_ident() not in scrubhook.THREADS
            (span,) = Store(tmp_path / "store").spans()
            assert span.attributes["pin_code"] == "kept by the hook"
        finally:
            handle.shutdown()
    finally:
        sys.path.remove(str(site))
        sys.modules.pop("scrubhook", None)


def _hook_plugin(tmp_path: Path) -> Path:
    """An installed plugin (``sfumato.plugins`` entry point) implementing ``sfumato_scrub``,
    with ``pin`` as an extra secret's name."""
    site = tmp_path / "site"
    info = site / "scrubhook-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: scrubhook\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[sfumato.plugins]\nscrubhook = scrubhook:Hooks\n")
    (site / "scrubhook.py").write_text(
        "import threading\n"
        "import sfumato\n"
        "THREADS = set()\n"
        "class Hooks:\n"
        "    @sfumato.hookimpl\n"
        "    def sfumato_scrub(self, match):\n"
        "        THREADS.add(threading.get_ident())\n"
        "        return 'kept by the hook' if match.path == 'pin_code' else None\n"
    )
    return site


def test_scrubbing_can_be_turned_off() -> None:
    handle = sfumato.configure(
        backend="none",
        exporters=[{"type": "memory"}],
        scrubbing={"enabled": False},
        metrics={"enabled": False},
        logs={"enabled": False},
    )
    try:
        with trace.get_tracer("app").start_as_current_span("s", attributes={"password": "x"}):
            pass
        (span,) = handle.exporter("memory").get_finished_spans()
    finally:
        handle.shutdown()
    assert span.attributes["password"] == "x" and MARK not in span.attributes
