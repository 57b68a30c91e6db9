"""The one error type for bad configuration."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from difflib import get_close_matches
from pathlib import Path

__all__ = ["ConfigError", "did_you_mean"]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ``did you mean 'x'?`` suffix, or an empty string when nothing is close."""
    close = get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


class ConfigError(ValueError):
    """Bad configuration: names where (file, line:column, dotted key), what was expected,
    and what is allowed.

    ``str(error)`` is one line a user can act on, e.g.::

        app.toml:7:1: telemetry.batch_size: expected an integer >= 1, got 0

    A config with several problems raises one error whose ``problems`` holds each of them (the
    error itself is the first); ``str(error)`` is then one such line per problem.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        column: int | None = None,
        key: str | None = None,
        source: str | None = None,
        more: Sequence[ConfigError] = (),
    ) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.column = column
        self.key = key
        # Where the value came from when it is not the file: "environment variable X", ...
        self.source = source
        self.more = tuple(more)  # the problems after this one
        super().__init__("\n".join([self._render(), *(str(p) for p in self.more)]))

    @property
    def problems(self) -> list[ConfigError]:
        """Every problem, this one first, each a ConfigError of one line."""
        return [self.one(), *self.more]

    def one(self) -> ConfigError:
        """This problem alone, without the ones after it."""
        return self._followed_by(())

    @classmethod
    def of(cls, problems: Sequence[ConfigError]) -> ConfigError:
        """One error reporting each of ``problems`` (at least one)."""
        first, *rest = problems
        return first._followed_by(rest)

    def _followed_by(self, more: Sequence[ConfigError]) -> ConfigError:
        return ConfigError(
            self.message,
            path=self.path,
            line=self.line,
            column=self.column,
            key=self.key,
            source=self.source,
            more=more,
        )

    def _render(self) -> str:
        where = ""
        if self.source:
            where = self.source
        elif self.path:
            where = self.path
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
        parts = [p for p in (where, self.key) if p]
        return _one_line(_URL_USERINFO.sub(r"\g<1>***@", ": ".join([*parts, self.message])))

    def located(
        self,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        column: int | None = None,
        key: str | None = None,
    ) -> ConfigError:
        """The same error with location fields filled in where they were unknown."""
        return ConfigError(
            self.message,
            path=self.path or path,
            line=self.line if self.line is not None else line,
            column=self.column if self.column is not None else column,
            key=self.key or key,
            source=self.source,
            more=[p.located(path=path, key=key) for p in self.more],
        )


# A URL's user and password, wherever one is quoted in a message (a bad endpoint).
_URL_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]{0,31}://)[^/@\s'\"]+@")


def _one_line(text: str) -> str:
    """``text`` with control and other invisible characters escaped (a key or value from a
    hostile file may hold newlines): an error stays one line, and shows what is there."""
    if text.isprintable():
        return text
    return "".join(
        c if c == " " or not unicodedata.category(c).startswith(("C", "Z")) else ascii(c)[1:-1]
        for c in text
    )
