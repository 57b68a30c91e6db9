"""The scrubber: secrets taken out of span attributes, event attributes, the status message
and log records before export, on the export thread.

Two kinds of rule:

- **keys**: an attribute whose key holds a secret's name (``password``, ``api_key``,
  ``http.request.header.authorization``, ...) has its whole value replaced. A key's verdict
  is computed once and kept, so a key that matches nothing costs one dict lookup.
- **values**: inside a string, the value of a ``name=value`` or ``name: value`` pair with a
  secret's name (URLs' query strings, SQL, log messages), the credentials of ``Bearer`` and
  ``Basic``, well-known token shapes (JWTs, ``sk-`` keys, AWS access key ids, GitHub and
  Slack tokens) and card numbers that pass the Luhn check are replaced, the rest of the
  string kept. Strings seen clean are remembered (up to a bound), and identifiers are
  cleared by a test in C, so repeated values cost a set lookup.

Each match goes first to the ``sfumato_scrub`` hook (a plugin may return the value to keep);
what it does not keep becomes ``[scrubbed]``. The span or log record then carries
``sfumato.scrubbed``: the paths of what was replaced. Spans are copied, never changed in
place (another exporter may hold the same span); log records are each exporter's own copy.
"""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

from . import _otel
from ._stats import Stats
from .plugin import ScrubMatch

__all__ = [
    "DEFAULT_PATTERNS",
    "MARK",
    "REPLACEMENT",
    "SAFE_KEYS",
    "ScrubMatch",
    "Scrubber",
    "check_pattern",
]

log = logging.getLogger("sfumato")

REPLACEMENT: Final = "[scrubbed]"
MARK: Final = "sfumato.scrubbed"
"""The attribute that lists what was scrubbed on a span or log record (its paths)."""

# Secrets' names, searched (case-insensitively) in attribute keys and before the ``=`` or
# ``:`` of a pair in a string. ``token`` but not ``tokens`` (token counts are not secrets),
# ``auth`` but not ``author`` or ``authority``.
DEFAULT_PATTERNS: Final[tuple[str, ...]] = (
    r"passw(?:or)?d",
    r"passphrase",
    r"\bpwd\b",
    r"secret",
    r"token(?!s)",
    r"api[._ -]?key",
    r"access[._ -]?key",
    r"private[._ -]?key",
    r"auth(?!ors?\b|ority)",
    r"credential",
    r"cookie",
    r"session[._ -]?(?:id|key)",
    r"jwt",
    r"csrf",
    r"xsrf",
    r"credit[._ -]?card",
    r"card[._ -]?number",
    r"\bcvv\b",
    r"\bssn\b",
    r"social[._ -]?security",
)

SAFE_KEYS: Final = frozenset(
    {
        MARK,
        "sampling.adjusted_count",
        "sampling.policy",
        "gen_ai.token.type",
        "http.request.header.cookie_consent",
        "user_agent.original",
    }
)
"""Keys never scrubbed: sfumato's own, and conventions' keys that only look like secrets."""

# Token shapes recognisable without a name.
_SHAPES = (
    r"\beyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,}",  # a JWT
    r"\bsk-[\w-]{16,}",  # OpenAI and Anthropic API keys
    r"\bAKIA[0-9A-Z]{16}\b",  # an AWS access key id
    r"\bgh[pousr]_[A-Za-z0-9]{30,}",  # GitHub tokens
    r"\bxox[abprs]-[\w-]{10,}",  # Slack tokens
)
# What an identifier may start with and still be a token (the other shapes hold a - or .).
_IDENTIFIER_SHAPES = ("AKIA", "ghp_", "gho_", "ghu_", "ghs_", "ghr_")
_CARD = r"\b[2-6]\d{3}(?:[ -]?\d){9,15}\b"
# The value after a name (and a scheme, kept): a quoted string, or a bare word.
_SECRET_VALUE = r"(?:\"[^\"]*\"|'[^']*'|[^\s&\"',;}]+)"
CLEAN_CACHE: Final = 8192
# One of these is in (the lower-cased form of) every string a default rule matches, or it
# holds 13 digits (a card number): checked in C, before any regular expression runs.
_TRIGGERS = (
    *("pass", "pwd", "secret", "token", "key", "auth", "cred", "cookie", "session", "jwt"),
    *("srf", "card", "cvv", "ssn", "social", "bearer", "basic", "eyj", "sk-", "akia", "xox"),
    "gh",
)
_DIGITS = b"0123456789"
_NUMBERS = frozenset({int, float, bool})
# A key's verdict, compared by identity: not a secret's name (its string values scanned), or
# allowed (left alone); else the secret's name that matched.
_SCAN: Final = object()
_ALLOWED: Final = object()


def check_pattern(pattern: str) -> str:
    """``pattern`` if it compiles as a regular expression; else a ValueError saying why."""
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{pattern!r} is not a regular expression: {exc}") from None
    return pattern


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        n = ord(ch) - 48
        if i % 2:
            n *= 2
            if n > 9:
                n -= 9
        total += n
    return total % 10 == 0


class Scrubber:
    """Scrubs batches of spans and log records (``spans``, ``log_records``): the
    ``prepare`` step of the export queues. ``callback`` is the ``sfumato_scrub`` hook (or
    None): given a :class:`ScrubMatch`, it returns the value to keep, or None."""

    def __init__(
        self,
        *,
        extra_patterns: Iterable[str] = (),
        allow: Iterable[str] = (),
        values: bool = True,
        callback: Callable[[ScrubMatch], Any] | None = None,
        stats: Stats | None = None,
    ) -> None:
        names = "|".join(f"(?:{p})" for p in (*DEFAULT_PATTERNS, *extra_patterns))
        self._key = re.compile(names, re.IGNORECASE)
        self._value = re.compile(
            rf"(?P<pair>(?<![\w.-])(?P<name>[\w.-]*?(?:{names})[\w.-]*)[\"']?\s*[:=]\s*"
            rf"(?:(?:bearer|basic|token)\s+)?)"
            rf"(?P<secret>{_SECRET_VALUE})"
            rf"|(?P<scheme>\b(?:bearer|basic)\s+)(?P<credentials>[A-Za-z0-9._~+/=-]{{8,}})"
            rf"|(?P<token>{'|'.join(_SHAPES)})"
            rf"|(?P<card>{_CARD})",
            re.IGNORECASE,
        )
        extra = "|".join(f"(?:{p})" for p in extra_patterns)
        self._extra = re.compile(extra, re.IGNORECASE) if extra else None
        allowed = list(allow)
        self._allow_exact = SAFE_KEYS | {a for a in allowed if not any(c in a for c in "*?[")}
        globs = [fnmatch.translate(a) for a in allowed if any(c in a for c in "*?[")]
        self._allow_glob = re.compile("|".join(globs)) if globs else None
        self.values = values
        self._callback = callback
        # key -> _SCAN (scan its string values), _ALLOWED (leave alone) or the name matched
        self._verdicts: dict[str, object] = {}
        self._clean: set[str] = set()
        self._scrubbed_spans = stats.counter("traces.scrubbed") if stats else None
        self._scrubbed_logs = stats.counter("logs.scrubbed") if stats else None
        self._errors = stats.counter("scrub.errors") if stats else None

    # -- verdicts ------------------------------------------------------------------------------

    def _verdict(self, key: str) -> object:
        verdict: object
        if key in self._allow_exact or (
            self._allow_glob is not None and self._allow_glob.fullmatch(key)
        ):
            verdict = _ALLOWED
        else:
            found = self._key.search(key)
            verdict = found.group(0) if found else _SCAN
        if len(self._verdicts) < 65536:  # a bound against keys that never repeat
            self._verdicts[key] = verdict
        return verdict

    def _clean_string(self, text: str) -> bool:
        """Whether no value rule can match ``text``: a set lookup for a string seen clean
        before, checks in C for an identifier or a string without a trigger, and the rules'
        regular expression only for the rest."""
        clean = self._clean
        if text in clean:
            return True
        if (
            len(text) >= 5
            and not (text.isidentifier() and not text.startswith(_IDENTIFIER_SHAPES))
            and self._may_hold_secret(text)
            and self._value.search(text) is not None
        ):
            return False
        if len(clean) >= CLEAN_CACHE:
            clean.clear()
        clean.add(text)
        return True

    def _may_hold_secret(self, text: str) -> bool:
        low = text.lower()
        for trigger in _TRIGGERS:
            if trigger in low:
                return True
        if self._extra is not None and self._extra.search(text) is not None:
            return True
        data = text.encode("utf-8", "replace")
        return len(data) - len(data.translate(None, _DIGITS)) >= 13

    # -- the rules -----------------------------------------------------------------------------

    def _ask(self, path: str, value: Any, matched: str) -> Any:
        """The hook's answer for a match (the value to keep), or the replacement."""
        callback = self._callback
        if callback is not None:
            try:
                kept = callback(ScrubMatch(path, value, matched))
            except Exception:
                if self._errors is not None:
                    self._errors.incr()
                log.warning("sfumato: a sfumato_scrub hook raised; scrubbed", exc_info=True)
                kept = None
            if kept is not None:
                return kept
        return REPLACEMENT

    def _in_string(self, path: str, text: str, paths: list[str]) -> str:
        """``text`` with the secrets in it replaced (the paths of what was, added)."""
        changed = False

        def replace(found: re.Match[str]) -> str:
            nonlocal changed
            if found.group("pair") is not None:
                secret = found.group("secret")
                kept = self._ask(path, secret, "pair")
                changed = changed or kept != secret
                return found.group("pair") + str(kept)
            if found.group("scheme") is not None:
                secret = found.group("credentials")
                kept = self._ask(path, secret, "credentials")
                changed = changed or kept != secret
                return found.group("scheme") + str(kept)
            whole = found.group(0)
            if found.group("card") is not None:
                digits = "".join(c for c in whole if c.isdigit())
                if not 13 <= len(digits) <= 19 or not _luhn(digits):
                    return whole
                kept = self._ask(path, whole, "card")
            else:
                kept = self._ask(path, whole, "token")
            changed = changed or kept != whole
            return str(kept)

        result = self._value.sub(replace, text)
        if changed:
            paths.append(path)
        return result

    def _value_of(self, path: str, value: Any, paths: list[str]) -> Any:
        """A value whose key did not match: its strings scanned, itself otherwise kept."""
        if type(value) is str:
            if self._clean_string(value):
                return value
            return self._in_string(path, value, paths)
        if isinstance(value, (list, tuple)):  # also lists of mappings, in log records
            kept = [self._value_of(path, v, paths) for v in value]
            if all(a is b for a, b in zip(kept, value, strict=True)):
                return value
            return type(value)(kept)
        if isinstance(value, Mapping):  # a log record's body or a nested AnyValue
            return self.mapping(value, path + ".", paths) or value
        return value

    def mapping(
        self, attributes: Mapping[str, Any], prefix: str, paths: list[str]
    ) -> dict[str, Any] | None:
        """``attributes`` scrubbed, or None when nothing in them needed it."""
        verdicts = self._verdicts
        scan = self.values
        out: dict[str, Any] | None = None
        for key, value in attributes.items():
            verdict: object
            try:
                verdict = verdicts.get(key)
            except TypeError:  # an unhashable key of a log record's body
                verdict = _ALLOWED
            if verdict is None:
                verdict = self._verdict(key) if type(key) is str else _ALLOWED
            if verdict is _ALLOWED:
                continue
            if verdict is _SCAN:
                if not scan or type(value) in _NUMBERS:
                    continue
                kept = self._value_of(prefix + key, value, paths)
                if kept is value:
                    continue
            else:
                path = prefix + key
                kept = self._ask(path, value, str(verdict))
                if kept is value or kept == value:
                    continue
                paths.append(path)
            if out is None:
                out = dict(attributes)
            out[key] = kept
        return out

    # -- batches -------------------------------------------------------------------------------

    def spans(self, batch: list[Any]) -> list[Any]:
        """``batch`` with each span that held a secret replaced by a scrubbed copy.

        The common case is written out in this loop, no call per span or attribute: every
        key known and not a secret's name, every value a number or a string seen clean
        before, no events, no status message. Anything else goes to ``_span``."""
        get, clean, numbers = self._verdicts.get, self._clean, _NUMBERS
        scan, allowed, keys_only = _SCAN, _ALLOWED, not self.values
        verdict_of, clean_string = self._verdict, self._clean_string
        for i, (attributes, events, description) in enumerate(_otel.scrub_views(batch)):
            try:
                for key, value in attributes.items():
                    verdict = get(key)
                    if verdict is None:
                        verdict = verdict_of(key)
                    if verdict is allowed:
                        continue
                    if verdict is scan:
                        kind = type(value)
                        if keys_only:
                            continue
                        if kind is str:
                            if value in clean or clean_string(value):
                                continue
                        elif kind in numbers:
                            continue
                    break
                else:
                    if not events and not description:
                        continue
            except Exception:  # an odd mapping: _span says why
                pass
            span = batch[i]
            try:
                scrubbed = self._span(span, attributes, events, description)
            except Exception:
                self._failed(span)
                scrubbed = _otel.scrubbed_copy(span, {MARK: ("*",)}, [], None)
            if scrubbed is not None:
                batch[i] = scrubbed
        return batch

    def _span(
        self,
        span: Any,
        attributes: Mapping[str, Any],
        events: Sequence[Any],
        description: str | None,
    ) -> Any:
        paths: list[str] = []
        new_attributes = self.mapping(attributes, "", paths) if attributes else None
        new_events: list[Any] | None = None
        if events:
            for i, event in enumerate(events):
                given = event.attributes
                if not given:
                    continue
                changed = self.mapping(given, f"events.{event.name}.", paths)
                if changed is not None:
                    if new_events is None:
                        new_events = list(events)
                    new_events[i] = _otel.event_with(event, changed)
        new_description = None
        if description and self.values and not self._clean_string(description):
            scrubbed = self._in_string("status.description", description, paths)
            if scrubbed != description:
                new_description = scrubbed
        if not paths:
            return None
        marked = dict(new_attributes if new_attributes is not None else attributes)
        marked[MARK] = tuple(sorted(set(paths)))
        if self._scrubbed_spans is not None:
            self._scrubbed_spans.incr()
        return _otel.scrubbed_copy(span, marked, new_events, new_description)

    def log_records(self, batch: list[Any]) -> list[Any]:
        """``batch`` with each log record's attributes and body scrubbed (in place: each
        export queue holds its own copies of the records)."""
        for record in batch:
            try:
                self._log_record(record.log_record)
            except Exception:
                self._failed(record)
                record.log_record.attributes = {MARK: ("*",)}
                record.log_record.body = REPLACEMENT
        return batch

    def _log_record(self, record: Any) -> None:
        paths: list[str] = []
        attributes = record.attributes
        new_attributes = self.mapping(attributes, "", paths) if attributes else None
        body = record.body
        if body is not None:
            new_body = self._body(body, paths)
            if new_body is not body:
                record.body = new_body
        if paths:
            marked = dict(new_attributes if new_attributes is not None else attributes or {})
            marked[MARK] = tuple(sorted(set(paths)))
            record.attributes = marked
            if self._scrubbed_logs is not None:
                self._scrubbed_logs.incr()

    def _body(self, body: Any, paths: list[str]) -> Any:
        """A record's body: a mapping's keys are checked even with ``values`` off."""
        if self.values or isinstance(body, Mapping):
            return self._value_of("body", body, paths)
        return body

    def _failed(self, item: Any) -> None:
        """A span or record the scrubber could not read: counted and logged; it is sent with
        its attributes, events (and a record's body) emptied and marked ``*``, as sending it
        whole could send a secret."""
        if self._errors is not None:
            self._errors.incr()
        log.warning("sfumato: could not scrub %r", type(item).__name__, exc_info=True)
