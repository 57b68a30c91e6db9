"""Find the line and column of a dotted key in TOML text, for error messages.

tomlkit keeps no positions on parsed values, so this scans the text: it tracks the current
table header and looks for ``key =`` lines. It is a best effort; when unsure it returns None.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["locate", "locate_all"]

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?")
_KEY = re.compile(r"""^\s*("[^"]*"|'[^']*'|[A-Za-z0-9_.-]+)\s*=""")


def _split(dotted: str) -> list[str]:
    parts = []
    for raw in re.findall(r"""("[^"]*"|'[^']*'|[^.]+)""", dotted):
        parts.append(raw.strip().strip("\"'"))
    return parts


def _parse_path(key: str) -> list[str | int]:
    """``telemetry.exporters[1].type`` -> ['telemetry', 'exporters', 1, 'type']."""
    out: list[str | int] = []
    for part in key.split("."):
        m = re.fullmatch(r"(.*?)((?:\[\d+\])*)", part, re.DOTALL)
        assert m is not None
        if m.group(1):
            out.append(m.group(1))
        out.extend(int(i) for i in re.findall(r"\[(\d+)\]", m.group(2)))
    return out


def locate(text: str, key: str) -> tuple[int, int] | None:
    """(line, column), 1-based, of ``key`` (e.g. ``telemetry.sampler.type``) in ``text``."""
    return locate_all(text, [key]).get(key)


def locate_all(text: str, keys: Iterable[str]) -> dict[str, tuple[int, int]]:
    """:func:`locate` for several keys in one pass over the text (a file with many problems
    is read once, not once per problem); keys not found are left out."""
    targets = {key: _parse_path(key) for key in keys}
    # A ``key =`` line locates each target its full dotted path is a prefix of.
    by_prefix: dict[tuple[str | int, ...], list[str]] = {}
    exact: dict[tuple[str | int, ...], list[str]] = {}
    for key, target in targets.items():
        exact.setdefault(tuple(target), []).append(key)
        for end in range(1, len(target) + 1):
            by_prefix.setdefault(tuple(target[:end]), []).append(key)
    array_counts: dict[tuple[str, ...], int] = {}
    table: list[str | int] = []
    best: dict[str, tuple[int, int]] = {}
    best_len = dict.fromkeys(targets, -1)
    for lineno, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            parts = _split(header.group(2))
            table = list(parts)
            if header.group(1) == "[[":
                k = tuple(parts)
                array_counts[k] = array_counts.get(k, -1) + 1
                table = [*parts, array_counts[k]]
            # A header locates each target it is a prefix of, and each target that is a
            # prefix of it (``[[x]]`` with target ``x``: the header defines the key itself).
            here = tuple(table)
            found = [(key, len(here)) for key in by_prefix.get(here, ())]
            for end in range(1, len(here) + 1):
                found += [(key, end) for key in exact.get(here[:end], ())]
            for key, matched in found:
                if matched > best_len[key]:
                    best[key], best_len[key] = (lineno, line.index("[") + 1), matched
            continue
        m = _KEY.match(line)
        if not m:
            continue
        full = (*table, *_split(m.group(1)))
        for key in by_prefix.get(full, ()):
            if len(full) > best_len[key]:
                best[key], best_len[key] = (lineno, m.start(1) + 1), len(full)
    return best
