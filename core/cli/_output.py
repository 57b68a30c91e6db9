"""Shared by the commands that can answer in JSON (``--json``): one object on stdout."""

from __future__ import annotations

import json
from typing import Any

from .._errors import ConfigError
from ..settings import scrub_url_anywhere

__all__ = ["print_json", "problems_json"]


def problems_json(error: ConfigError) -> list[dict[str, Any]]:
    """Each problem of ``error`` as an object: its one-line text and where it is."""
    return [
        {
            "message": str(problem),
            "file": problem.path,
            "line": problem.line,
            "column": problem.column,
            "key": problem.key,
            "source": problem.source,
        }
        for problem in error.problems
    ]


def print_json(value: dict[str, Any]) -> None:
    """``value`` as indented JSON; an endpoint's user:password is never printed."""
    print(scrub_url_anywhere(json.dumps(value, indent=2, ensure_ascii=False)))
