"""Options of the ``local`` store, shared by the ``local`` backend and exporter."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from .files import SIGNAL_FILES

__all__ = ["ByteSize", "LocalOptions", "parse_size"]

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", re.IGNORECASE)


def parse_size(value: Any) -> Any:
    """``16777216``, ``"16MiB"``, ``"10 MB"`` -> bytes; anything else is left to pydantic."""
    if isinstance(value, str):
        match = _SIZE.match(value)
        if match is None or match.group(2).lower() not in _UNITS:
            raise ValueError(f"expected a size such as 16777216, '16MiB' or '10MB', got {value!r}")
        return int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    return value


ByteSize = Annotated[int, BeforeValidator(parse_size), Field(ge=1024)]


class LocalOptions(BaseModel):
    """Where the store lives and how large it may grow."""

    model_config = ConfigDict(extra="forbid")

    directory: str = Field(
        default=".sfumato",
        description="Store directory; a relative path is taken from the working directory.",
    )
    max_file_bytes: ByteSize = Field(
        default=4 * 1024**2, description="Size at which a signal's file is rotated."
    )
    max_total_bytes: ByteSize = Field(
        default=64 * 1024**2,
        description="Cap on the whole directory; the oldest rotated files are deleted first.",
    )
    max_line_bytes: ByteSize = Field(
        default=1024**2,
        description="Longest line written (at most max_file_bytes); bigger batches are split. "
        "A Collector's otlpjsonfile receiver reads lines up to its max_log_size (1MiB by default).",
    )

    @model_validator(mode="after")
    def _consistent(self) -> LocalOptions:
        # One active file per signal may be full at any time; the cap must leave room for them.
        floor = len(SIGNAL_FILES) * self.max_file_bytes
        if self.max_total_bytes < floor:
            raise ValueError(
                f"max_total_bytes ({self.max_total_bytes}) must be at least "
                f"{len(SIGNAL_FILES)} x max_file_bytes ({floor}): each signal keeps one "
                "active file"
            )
        return self
