"""Find the line and column of a dotted key in TOML text, for error messages.

tomlkit keeps no positions on parsed values, so this scans the text: it tracks the current
table header and looks for ``key =`` lines. It is a best effort; when unsure it returns None.
"""

from __future__ import annotations

import re

__all__ = ["locate"]

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
    target = _parse_path(key)
    array_counts: dict[tuple[str, ...], int] = {}
    table: list[str | int] = []
    best: tuple[int, int] | None = None
    best_len = -1
    for lineno, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            parts = _split(header.group(2))
            table = list(parts)
            if header.group(1) == "[[":
                k = tuple(parts)
                array_counts[k] = array_counts.get(k, -1) + 1
                table = [*parts, array_counts[k]]
            matched = _prefix_len(table, target)
            # ``[[x]]`` with target ``x``: the header defines the key itself.
            if matched in (len(table), len(target)) and matched > best_len:
                best, best_len = (lineno, line.index("[") + 1), matched
            continue
        m = _KEY.match(line)
        if not m:
            continue
        full = [*table, *_split(m.group(1))]
        matched = _prefix_len(full, target)
        if matched == len(full) and matched > best_len:
            best, best_len = (lineno, m.start(1) + 1), matched
    return best


def _prefix_len(have: list[str | int], want: list[str | int]) -> int:
    n = 0
    for a, b in zip(have, want, strict=False):
        if a != b:
            break
        n += 1
    return n
