"""Shared by ``sfumato init`` and ``sfumato set``: read a file for editing, validate the new
text exactly as ``sfumato validate`` would, and replace the file atomically."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from .._environment import PREFIX
from .._errors import ConfigError
from .._loading import read_text, settings_from_text
from ..settings import Settings

__all__ = ["file_env", "read_for_edit", "validate_text", "write_atomically"]


def file_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment without SFUMATO_*/OTEL_* overrides: the file is judged on its own,
    while ``${VAR}`` references still see the variables they name."""
    env = os.environ if environ is None else environ
    return {k: v for k, v in env.items() if not k.startswith((PREFIX, "OTEL_"))}


def read_for_edit(path: Path) -> str | None:
    """The file's text; "" for an empty file; None when it does not exist."""
    if not path.exists() and not path.is_symlink():
        return None
    if path.is_file() and path.stat().st_size == 0:
        return ""
    try:
        return read_text(path)
    except ConfigError as exc:
        if exc.message.startswith("file is empty"):
            return ""  # whitespace only: nothing to keep but the bytes themselves
        raise


def validate_text(text: str, path: Path, *, resolve_plugins: bool = True) -> Settings:
    """Settings from ``text`` as if it were ``path``; ConfigError naming ``path`` if invalid."""
    return settings_from_text(text, path, env=file_env(), resolve_plugins=resolve_plugins)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` (the target of a symlink) with ``data``: a temporary file in the same
    directory, flushed to disk, then renamed over it; mode and owner are kept."""
    target = path.resolve() if path.is_symlink() else path
    existing = target.stat() if target.exists() else None
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if existing is not None:
            os.chmod(tmp, existing.st_mode & 0o7777)
            with contextlib.suppress(OSError):  # only root may give a file away
                os.chown(tmp, existing.st_uid, existing.st_gid)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
