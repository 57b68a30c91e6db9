"""Files a command writes or reads at the user's request, and the one-line error when it
cannot.

:class:`CommandError` is how a command stops with one line on stderr and an exit code
(default 2: the user has to change what they asked for), without a traceback; ``main()``
prints it as ``error: <message>``.
"""

from __future__ import annotations

from pathlib import Path

from ._edit import write_atomically

__all__ = ["CommandError", "read_input", "write_output"]


class CommandError(Exception):
    """Stop the command: ``main()`` prints ``error: <message>`` and returns ``code``."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def write_output(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a reader never sees half a file; the mode of a
    file already there is kept). CommandError, exit 2, when it cannot be written."""
    target = Path(path)
    try:
        write_atomically(target, text.encode("utf-8"))
    except OSError as exc:
        raise CommandError(f"cannot write {target}: {_reason(exc)}") from None


def read_input(path: str | Path) -> str | None:
    """The text of ``path``; None when it does not exist. CommandError, exit 2, when it
    exists and cannot be read (a directory, no permission, not UTF-8)."""
    source = Path(path)
    if not source.exists():
        return None
    try:
        return source.read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"cannot read {source}: {_reason(exc)}") from None
    except UnicodeDecodeError:
        raise CommandError(f"cannot read {source}: not UTF-8 text") from None
