"""SIGTERM: what is queued is sent before the process dies of it. SIGHUP: the config file's
sampler tree is applied again (see ``_reload``).

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

__all__ = ["install_sighup", "install_sigterm", "restore_sighup", "restore_sigterm"]

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


def _take(signum: int, handler: Any) -> bool:
    """Install ``handler`` for ``signum`` if the application left the signal at its default
    (only the main thread may); True when ``handler`` is the signal's handler now."""
    if threading.current_thread() is not threading.main_thread():
        return False
    current = signal.getsignal(signum)
    if current is handler:
        return True  # left by an earlier handle (a forked child's configure)
    if current is not signal.SIG_DFL:
        return False  # the application's own (or SIG_IGN, or one set outside Python)
    signal.signal(signum, handler)
    return True


def _give_back(signum: int, handler: Any) -> None:
    """The default disposition back, if ``handler`` is still the signal's handler."""
    if (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signum) is handler
    ):
        signal.signal(signum, signal.SIG_DFL)


def install_sigterm(handle: Any) -> None:
    """Install the SIGTERM handler for ``handle`` if the application has none of its own."""
    global _owner
    if not getattr(handle.settings, "handle_sigterm", True) or not hasattr(signal, "SIGTERM"):
        return
    try:
        if _take(signal.SIGTERM, _on_sigterm):
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
        _give_back(signal.SIGTERM, _on_sigterm)
    except Exception:
        log.debug("sfumato: could not restore SIGTERM's disposition", exc_info=True)


# -- SIGHUP: the config file's sampler tree applied again (see _reload) ---------------------------

_reloads: Any = None  # the handle SIGHUP reloads; None when the handler is not installed


def _on_sighup(signum: int, frame: Any) -> None:
    handle = _reloads
    if handle is None or handle._closed:
        return
    # Not in the handler: the main thread was interrupted at any point (maybe holding a
    # lock the reload needs).
    threading.Thread(target=handle.reload, name="sfumato-reload", daemon=True).start()


def install_sighup(handle: Any) -> None:
    """Reload on SIGHUP, when the application has no handler of its own for it."""
    global _reloads
    if not getattr(handle.settings.reload, "sighup", True) or not hasattr(signal, "SIGHUP"):
        return
    try:
        if _take(signal.SIGHUP, _on_sighup):
            _reloads = handle
    except Exception:
        log.debug("sfumato: could not install the SIGHUP handler", exc_info=True)


def restore_sighup(handle: Any) -> None:
    global _reloads
    if _reloads is not handle:
        return
    _reloads = None
    try:
        _give_back(signal.SIGHUP, _on_sighup)
    except Exception:
        log.debug("sfumato: could not restore SIGHUP's disposition", exc_info=True)
