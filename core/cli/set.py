"""``sfumato set FILE KEY VALUE``: change one key of ``[telemetry]``, keeping the rest.

A tomlkit round trip keeps comments, order and formatting; the new document is validated
as ``sfumato validate`` would, and nothing is written when it is invalid.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import AoT, Array, InlineTable, Item, Table

from .._errors import ConfigError
from .._loading import TABLE, parse_document
from .._validation import a_type, is_secret_key
from ._edit import read_for_edit, validate_text, write_atomically
from ._help import add_command

__all__ = ["parse_key", "parse_value", "register"]

_PART = re.compile(r"""\s*(?:([A-Za-z0-9_-]+)|"((?:[^"\\]|\\.)*)"|'([^']*)')\s*((?:\[\d+\])*)\s*""")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(
        sub,
        "set",
        "set one [telemetry] key in a TOML file, keeping comments and order",
        details="The new file is validated as `validate` would; nothing is written when it is "
        "invalid. A new key goes after the table's last key.",
        exits={0: "written", 2: "the key, the value or the resulting config is invalid"},
    )
    p.add_argument("file", help="TOML file to edit")
    p.add_argument(
        "key", help='dotted key under telemetry: batch_size, sampler.type, resource."a.b"'
    )
    p.add_argument("value", help="a TOML value (1, true, [..], {..}); anything else is a string")
    p.set_defaults(func=run)


def parse_key(key: str) -> list[str | int]:
    """``exporters[0].type`` -> ['exporters', 0, 'type']; a ``telemetry.`` prefix is dropped."""
    parts: list[str | int] = []
    rest = key
    while True:
        match = _PART.match(rest)
        if match is None or not match.group(0).strip():
            raise ConfigError(
                f"cannot read key {key!r}: expected dotted names like sampler.type, "
                'exporters[0].type or resource."service.namespace"',
                key=key,
            )
        name = match.group(1) or match.group(3) or ""
        if match.group(2) is not None:
            name = match.group(2).encode().decode("unicode_escape")
        parts.append(name)
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", match.group(4)))
        rest = rest[match.end() :]
        if not rest:
            break
        if not rest.startswith("."):
            raise ConfigError(f"cannot read key {key!r} at {rest!r}", key=key)
        rest = rest[1:]
    if parts[:1] == [TABLE]:
        parts = parts[1:]
    if not parts or isinstance(parts[0], int):
        raise ConfigError(f"key {key!r} names no key under [{TABLE}]", key=key)
    return parts


def parse_value(raw: str) -> Any:
    """``raw`` as a TOML value when it is exactly one (``512``, ``true``, ``[1, 2]``,
    ``{a = 1}``, ``"text"``), else the string itself."""
    try:
        doc = tomlkit.parse(f"v = {raw}\n")
    except Exception:
        return raw
    if list(doc.keys()) != ["v"]:
        return raw  # e.g. '1\n[x]': more than one value is text, not structure
    value = doc.item("v")
    # Keep the value's own TOML form (an inline table stays inline), without its comment.
    return value if isinstance(value, InlineTable) else tomlkit.item(value.unwrap())


def _dotted(parts: list[str | int]) -> str:
    out = TABLE
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if re.fullmatch(r"[A-Za-z0-9_-]+", part) else f'."{part}"'
    return out


def _descend(container: Any, part: str | int, create: bool, where: str) -> Any:
    if isinstance(part, int):
        if not isinstance(container, (list, AoT, Array)):
            raise ConfigError(f"is {_kind(container)}, not an array", key=where)
        if part >= len(container):
            raise ConfigError(f"index {part} is past the end ({len(container)} items)", key=where)
        return container[part]
    if not isinstance(container, dict):
        raise ConfigError(f"is {_kind(container)}, not a table", key=where)
    if part not in container:
        if not create:
            raise ConfigError("no such table", key=where)
        container[part] = (
            tomlkit.inline_table() if isinstance(container, InlineTable) else (tomlkit.table())
        )
    return container[part]


def _assign(parent: Any, name: str | None, table: Any, key: str, value: Any) -> None:
    """Set ``key`` in ``table`` (``parent[name]``); a new key goes after the table's last
    key/value pair, not after the comments and blank lines that may trail it (commented
    examples, other sections' notes).

    tomlkit appends at the end of a table and has no public insert, so a table with such a
    trailing part is rebuilt item by item, in order, with the new pair in its place.
    """
    body = table.value.body if isinstance(table, Table) and not table.is_super_table() else []
    pairs = [i for i, (k, item) in enumerate(body) if k is not None and not _is_table(item)]
    if key in table or name is None or _is_table(value) or not pairs or pairs[-1] == len(body) - 1:
        table[key] = value
        return
    rebuilt = tomlkit.table()
    for field in ("indent", "comment_ws", "comment", "trail"):
        setattr(rebuilt.trivia, field, getattr(table.trivia, field))
    for i, (k, item) in enumerate(body):
        rebuilt.append(k, item)
        if i == pairs[-1]:
            rebuilt.append(key, value)
    parent[name] = rebuilt


def _is_table(item: Any) -> bool:
    return isinstance(item, (Table, AoT))


def _kind(value: Any) -> str:
    return a_type(value.unwrap() if isinstance(value, Item) else value)


def _edit(doc: Any, parts: list[str | int], value: Any) -> None:
    parent, container = doc, doc[TABLE]
    name: str | None = TABLE
    where = TABLE
    for i, part in enumerate(parts[:-1]):
        parent, name = container, part if isinstance(part, str) else None
        container = _descend(container, part, True, where)
        where = _dotted(parts[: i + 1])
    last = parts[-1]
    if isinstance(last, int):
        _descend(container, last, False, where)  # checks the item exists
        container[last] = value
    elif isinstance(container, dict):
        _assign(parent, name, container, last, value)
    else:
        raise ConfigError(f"is {_kind(container)}, not a table", key=where)


def run(args: argparse.Namespace) -> int:
    path = Path(args.file)
    parts = parse_key(args.key)
    text = read_for_edit(path)
    if text is None:
        raise ConfigError("file not found (create it with `sfumato init`)", path=path)
    doc = parse_document(text, path) if text.strip() else tomlkit.document()
    if TABLE not in doc:
        doc[TABLE] = tomlkit.table()
    try:
        _edit(doc, parts, parse_value(args.value))
    except ConfigError as exc:
        raise exc.located(path=path) from None
    new = doc.as_string()
    if text.endswith("\n") and not new.endswith("\n"):
        new += "\r\n" if text.endswith("\r\n") else "\n"  # tomlkit drops it after a new key
    validate_text(new, path)
    write_atomically(path, new.encode("utf-8"))
    key = _dotted(parts)
    secret = any(isinstance(p, str) and is_secret_key(p) for p in parts)
    value = parse_value(args.value)
    plain = value.unwrap() if isinstance(value, Item) else value
    shown = "***" if secret else json.dumps(plain, default=str, ensure_ascii=False)
    print(f"{path}: {key} = {shown}")
    return 0
