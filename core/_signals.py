"""SIGTERM: what is queued is sent before the process dies of it.

Containers and process managers stop a process with SIGTERM. Its default disposition ends
the process at once: no ``atexit``, so the spans still queued for export were lost. When the
application has no SIGTERM handler of its own (the disposition is the default when
``configure()`` runs, in the main thread), sfumato installs one that shuts telemetry down
within ``shutdown_timeout_ms`` and then dies of the signal as the default disposition would:
the same exit status (-15 / 143) as without sfumato. ``handle_sigterm = false`` leaves the
signal alone; ``shutdown()`` puts the default back if the handler is still sfumato's.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from typing import Any

__all__ = ["install_sigterm", "restore_sigterm"]

log = logging.getLogger("sfumato")

# The handle whose telemetry the handler shuts down; None when the handler is not installed.
_owner: Any = None
# Beyond the shutdown budget: thread scheduling only. A shutdown stuck past it (a lock the
# interrupted main thread holds) does not keep the process alive.
_MARGIN_S = 1.0


def _on_sigterm(signum: int, frame: Any) -> None:
    handle = _owner
    try:
        if handle is not None and not handle._closed:
            # On a helper thread, bounded: the main thread was interrupted at any point, maybe
            # holding a lock the shutdown would wait for.
            budget = handle.settings.shutdown_timeout_ms / 1000
            worker = threading.Thread(target=handle.shutdown, name="sfumato-sigterm", daemon=True)
            worker.start()
            worker.join(budget + _MARGIN_S)
    except Exception:
        log.debug("sfumato: shutdown on SIGTERM failed", exc_info=True)
    finally:
        _die_of(signum)


def _die_of(signum: int) -> None:
    """End the process as the signal's default disposition does."""
    try:
        signal.signal(signum, signal.SIG_DFL)
        if hasattr(signal, "pthread_sigmask"):
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signum})
        os.kill(os.getpid(), signum)
    except Exception:
        pass
    os._exit(128 + signum)  # pragma: no cover - only if the signal could not end the process


def install_sigterm(handle: Any) -> None:
    """Install the SIGTERM handler for ``handle`` if the application has none of its own."""
    global _owner
    if not getattr(handle.settings, "handle_sigterm", True) or not hasattr(signal, "SIGTERM"):
        return
    try:
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may set a handler
        current = signal.getsignal(signal.SIGTERM)
        if current is _on_sigterm:
            _owner = handle  # left by an earlier handle (a forked child's configure)
            return
        if current is not signal.SIG_DFL:
            return  # the application's own (or SIG_IGN, or one set outside Python)
        signal.signal(signal.SIGTERM, _on_sigterm)
        _owner = handle
    except Exception:
        log.debug("sfumato: could not install the SIGTERM handler", exc_info=True)


def restore_sigterm(handle: Any) -> None:
    """At ``handle``'s shutdown: the default disposition back, if the handler is still ours."""
    global _owner
    if _owner is not handle:
        return
    _owner = None
    try:
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) is _on_sigterm
        ):
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except Exception:
        log.debug("sfumato: could not restore SIGTERM's disposition", exc_info=True)
