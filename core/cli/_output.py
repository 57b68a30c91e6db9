"""Shared by the commands that can answer in JSON (``--json``): one object on stdout."""

from __future__ import annotations

import json
from typing import Any

from .._errors import ConfigError
from .._loading import LoadedConfig, load_config
from ..settings import scrub_url_anywhere

__all__ = ["load_or_report", "print_json", "problems_json"]


def load_or_report(file: str | None, source: str, as_json: bool) -> LoadedConfig | None:
    """The loaded config of ``file`` (settings and plan); when it is invalid and ``as_json``,
    None after printing the problems as one JSON object (without ``as_json`` the ConfigError
    goes to main())."""
    try:
        return load_config(file)
    except ConfigError as exc:
        if not as_json:
            raise
        print_json({"source": source, "valid": False, "problems": problems_json(exc)})
        return None


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
