"""Bridge Python ``logging`` records to OpenTelemetry logs, with trace and span ids; and keep
sfumato's own log lines readable wherever they end up.

sfumato's messages start with ``sfumato: `` so that a line printed by Python's last-resort
handler (the application set up no logging) says where it comes from. Where every handler
that will print a record of the ``sfumato`` logger shows the logger's name already
(``logging.basicConfig()``'s ``WARNING:sfumato:...``, ``%(name)s: %(message)s``), the prefix
is dropped, so the line does not read ``sfumato: sfumato: ...``.

A handler on the root logger, sfumato's included, stops Python's last-resort handler: logging
uses it only when it finds no handler at all for a record. So that no record is lost by
installing the bridge, the bridge's handler stands in for it: at each record it looks for
the handlers Python would find, its own left out, and when there are none it hands WARNING
and above to ``logging.lastResort``, which prints them as it always would (the message
alone, on stderr). An application that sets up its logging later, or never, is printed for
exactly once.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Sequence
from typing import Any

from opentelemetry.context import get_current

from ._otel import LoggerProvider, SeverityNumber

__all__ = [
    "OtelLogHandler",
    "RateLimitFilter",
    "install",
    "rate_limit_sdk_logs",
    "strip_own_prefix",
]

# Attributes every LogRecord has; anything else was passed through ``extra=``.
_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_SEVERITY = {
    logging.DEBUG: (SeverityNumber.DEBUG, "DEBUG"),
    logging.INFO: (SeverityNumber.INFO, "INFO"),
    logging.WARNING: (SeverityNumber.WARN, "WARN"),
    logging.ERROR: (SeverityNumber.ERROR, "ERROR"),
    logging.CRITICAL: (SeverityNumber.FATAL, "FATAL"),
}
# Loggers whose records would loop back into the export path.
_IGNORED_PREFIXES = ("sfumato", "opentelemetry", "grpc", "urllib3")


def _severity(levelno: int) -> tuple[SeverityNumber, str]:
    for level in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO):
        if levelno >= level:
            return _SEVERITY[level]
    return _SEVERITY[logging.DEBUG]


class OtelLogHandler(logging.Handler):
    """A ``logging.Handler`` that emits each record of ``export_level`` and above through a
    LoggerProvider, and stands in for Python's last-resort handler (see the module's
    docstring): for every record when ``stderr_fallback``, else for those it never exports
    (sfumato's own and the OpenTelemetry SDK's), which would be lost otherwise."""

    _emit_failed = False

    def __init__(
        self,
        provider: LoggerProvider,
        level: int = logging.NOTSET,
        stderr_fallback: bool = True,
    ) -> None:
        # The handler's own level lets through what the last-resort handler would print too.
        super().__init__(min(level, logging.WARNING))
        self.provider = provider
        self.export_level = level
        self.stderr_fallback = stderr_fallback
        self._root_level: int | None = None

    def uninstall(self) -> None:
        """Remove the handler from the root logger; restore the level ``install`` lowered."""
        root = logging.getLogger()
        root.removeHandler(self)
        if self._root_level is not None and root.level == self.export_level:
            root.setLevel(self._root_level)
        self._root_level = None

    def handle(self, record: logging.LogRecord) -> Any:
        exported = False
        if record.levelno >= self.export_level:
            exported = bool(super().handle(record))  # filters, then emit under the lock
        self._fall_back(record)
        return exported

    def _fall_back(self, record: logging.LogRecord) -> None:
        """Pass ``record`` to ``logging.lastResort`` if Python would have, had sfumato
        installed no handler."""
        try:
            last = logging.lastResort
            if last is None or record.levelno < last.level:
                return
            if not (self.stderr_fallback or record.name.startswith(_IGNORED_PREFIXES)):
                return
            if _others_found(record):
                return
            last.handle(record)
        except Exception:
            pass  # telemetry never raises into the application

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(_IGNORED_PREFIXES):
            return
        try:
            attributes: dict[str, Any] = {
                k: v if isinstance(v, (str, bool, int, float)) else repr(v)
                for k, v in vars(record).items()
                if k not in _RESERVED and not k.startswith("_")
            }
            attributes["code.file.path"] = record.pathname
            attributes["code.function.name"] = record.funcName
            attributes["code.line.number"] = record.lineno
            number, text = _severity(record.levelno)
            exc = record.exc_info[1] if record.exc_info else None
            self.provider.get_logger(record.name).emit(
                timestamp=int(record.created * 1e9),
                context=get_current(),
                severity_number=number,
                severity_text=text,
                body=record.getMessage(),
                attributes=attributes,
                exception=exc,
            )
        except Exception as exc:
            # Telemetry never raises into the application; logging's own error hook is noisy.
            # A record that cannot be handed over is said once, on stderr (not through
            # logging, which would come back here).
            if not self._emit_failed:
                self._emit_failed = True
                with contextlib.suppress(Exception):
                    sys.stderr.write(
                        f"sfumato: a log record could not be exported ({type(exc).__name__}: "
                        f"{exc}); later failures are not reported\n"
                    )


def install(
    provider: LoggerProvider, level: str | int, stderr_fallback: bool = True
) -> OtelLogHandler:
    """Attach a handler for ``level`` and above to the root logger.

    The root logger's own level filters records before any handler sees them (WARNING when
    nothing configured logging), so it is lowered to ``level`` when higher, else
    ``[telemetry.logs] level = "INFO"`` would export nothing below WARNING. It is never
    raised, and ``uninstall`` puts it back.
    """
    number = level if isinstance(level, int) else logging.getLevelName(level)
    handler = OtelLogHandler(provider, number, stderr_fallback)
    root = logging.getLogger()
    if root.level > number:
        handler._root_level = root.level
        root.setLevel(number)
    root.addHandler(handler)
    return handler


def _logger_of(record: logging.LogRecord) -> logging.Logger:
    """The logger ``record`` came from, without creating one for a name never used."""
    found = logging.Logger.manager.loggerDict.get(record.name)
    return found if isinstance(found, logging.Logger) else logging.getLogger()


def _others_found(record: logging.LogRecord) -> bool:
    """Whether ``logging.Logger.callHandlers`` finds a handler for ``record`` that is not
    sfumato's: any handler, whatever its level, on the record's logger and its ancestors up
    to the first that does not propagate."""
    logger: logging.Logger | None = _logger_of(record)
    while logger is not None:
        if any(not isinstance(h, OtelLogHandler) for h in list(logger.handlers)):
            return True
        logger = logger.parent if logger.propagate else None
    return False


class RateLimitFilter(logging.Filter):
    """Lets the first record of each message template through, then one per ``interval``
    seconds, noting how many were held back in between.

    The OpenTelemetry exporters log a warning per failed attempt and the encoders a traceback
    per bad attribute value (a value a user may control); during an outage that is a log
    line every few hundred milliseconds, forever.
    """

    def __init__(self, interval: float = 60.0) -> None:
        super().__init__()
        self.interval = interval
        self._last: dict[tuple[str, object], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.msg)
        now = record.created
        last = self._last.get(key)
        if last is not None and now - last[0] < self.interval:
            self._last[key] = (last[0], last[1] + 1)
            return False
        if len(self._last) > 1000:  # many distinct templates: forget, stay bounded
            self._last.clear()
        held = last[1] if last is not None else 0
        self._last[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} ({held} similar messages in the last {self.interval:.0f}s)"
        return True


_SDK_FILTER = RateLimitFilter()


def rate_limit_sdk_logs() -> None:
    """Put the rate limit on every ``opentelemetry.*`` logger that exists now (configure()
    runs after the exporters are imported, so theirs are among them). Idempotent."""
    names = [n for n in logging.Logger.manager.loggerDict if n.startswith("opentelemetry")]
    for name in names:
        logger = logging.getLogger(name)
        if _SDK_FILTER not in logger.filters:
            logger.addFilter(_SDK_FILTER)


# -- sfumato's own log lines ---------------------------------------------------------------------

OWN_LOGGER = "sfumato"
_OWN_PREFIX = f"{OWN_LOGGER}: "
_PROBE = "\x00sfumato-probe\x00"


def _shows_logger_name(handler: logging.Handler) -> bool:
    """Whether ``handler``'s formatter prints a record's logger name, found by formatting a
    probe record (public API only; a formatter that fails on it counts as not showing it)."""
    formatter = handler.formatter
    if formatter is None:  # logging's default formatter: the message alone
        return False
    probe = logging.LogRecord(_PROBE, logging.WARNING, "", 0, "", (), None)
    try:
        return _PROBE in formatter.format(probe)
    except Exception:
        return False


def _handlers_for(record: logging.LogRecord) -> list[logging.Handler]:
    """The handlers ``logging`` will hand ``record`` to (none: the last-resort handler)."""
    handlers: list[logging.Handler] = []
    logger: logging.Logger | None = logging.getLogger(record.name)
    while logger is not None:
        # The bridge prints nothing itself: it hands records to the last-resort handler,
        # which an empty list stands for.
        handlers += [
            h
            for h in logger.handlers
            if record.levelno >= h.level and not isinstance(h, OtelLogHandler)
        ]
        if not logger.propagate:
            break
        logger = logger.parent
    return handlers


def strip_own_prefix(record: logging.LogRecord, handlers: Sequence[logging.Handler]) -> Any:
    """The message ``record`` should carry: without the leading ``sfumato: `` when there are
    handlers and each of them shows the logger's name, else unchanged."""
    message = record.msg
    if not (isinstance(message, str) and message.startswith(_OWN_PREFIX)):
        return message
    if handlers and all(_shows_logger_name(h) for h in handlers):
        return message[len(_OWN_PREFIX) :]
    return message


class _OwnPrefixFilter(logging.Filter):
    """On the ``sfumato`` logger: :func:`strip_own_prefix` applied to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        with contextlib.suppress(Exception):  # a line keeps its prefix rather than being lost
            record.msg = strip_own_prefix(record, _handlers_for(record))
        return True


def _install_own_prefix_filter() -> None:
    logger = logging.getLogger(OWN_LOGGER)
    if not any(isinstance(f, _OwnPrefixFilter) for f in logger.filters):
        logger.addFilter(_OwnPrefixFilter())


_install_own_prefix_filter()
