"""Live changes of the sampler tree: the configuration file read again, validated whole, and
its sampler tree swapped in, or nothing changed and the reason said.

Triggers: ``Telemetry.reload()``, SIGHUP (when the application has no handler of its own;
``sfumato reload PID`` validates the file and sends it), and, with ``[telemetry.reload]
watch = true``, a change of the file's contents (checked every ``interval_ms``).

What a reload applies: the sampler tree (``[telemetry.sampler]``, ``sampling_rate``). The
new tree is built before anything changes; a file that does not validate, or whose tree
cannot be built, changes nothing. Each span asks one tree, the old or the new: the tracers'
bound decision method is replaced in one assignment. A tail stage (error-always, tail)
takes its new policy under the lock its decisions are taken under, so each local unit is
decided by one policy. Changing whether the root decides at the tail (error-always or tail
to a head sampler, or back) changes the pipeline itself and needs a restart: refused, said.
Other keys that changed are named as needing a restart; the sampler is applied anyway.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from . import _otel
from ._errors import ConfigError
from ._loading import load_config
from ._pipeline import build_sampler
from .plugin import TailStage

__all__ = ["Reloaded", "Watcher", "reload", "sampler_version"]

log = logging.getLogger("sfumato")

# The keys a reload applies; any other key that changed needs a restart.
APPLIED = frozenset({"sampler", "sampling_rate"})


@dataclass(frozen=True)
class Reloaded:
    """What a reload did: ``applied`` (the new tree is running), the ``version`` running
    now, and why it was refused or what needs a restart (``message``)."""

    applied: bool
    version: str
    message: str = ""
    restart_needed: list[str] = field(default_factory=list)


def sampler_version(settings: Any) -> str:
    """A short digest of the sampler tree a configuration asks for (what ``stats()``,
    ``sfumato show`` and ``doctor`` print as the version)."""
    tree = {"sampler": settings.sampler, "sampling_rate": settings.sampling_rate}
    text = json.dumps(tree, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _changed(old: Any, new: Any) -> list[str]:
    """The top-level keys whose values differ, besides those a reload applies."""
    before, after = old.model_dump(mode="json"), new.model_dump(mode="json")
    return sorted(k for k in after if k not in APPLIED and before.get(k) != after.get(k))


def reload(handle: Any, path: str | os.PathLike[str] | None = None) -> Reloaded:
    """Read the configuration again (``path``, else the file ``configure()`` read, with its
    keyword arguments still winning) and apply its sampler tree; see the module's doc."""
    with handle._reload_lock:
        current = handle.sampler_version
        pipes = handle._pipes
        if pipes is None or handle._closed:
            return _refused(handle, current, "telemetry is not running")
        source = path if path is not None else handle.settings.path
        if source is None:
            return _refused(
                handle, current, "configure() read no file: there is nothing to read again"
            )
        try:
            loaded = load_config(source, **handle._overrides)
            settings, plan = loaded.settings, loaded.plan
            if not settings.enabled or plan is None:
                raise ConfigError("the file turns telemetry off: that needs a restart")
            sampler = build_sampler(plan.sampler, settings, handle.stats_registry, plan.host)
        except Exception as exc:  # ConfigError above all; a plugin's build raising too
            return _refused(handle, current, f"{source}: {exc}")
        old = pipes.sampler
        if isinstance(old, TailStage) != isinstance(sampler, TailStage):
            kind = "decides at the tail" if isinstance(old, TailStage) else "decides at the head"
            return _refused(
                handle,
                current,
                f"the running sampler {kind} and the new one does not: that changes the "
                "pipeline, so it needs a restart",
            )
        version = sampler_version(settings)
        tail = pipes.tail
        if tail is not None:
            replace = getattr(sampler, "replace_policy_of", None)
            if replace is None:
                return _refused(
                    handle, current, "the new tail sampler cannot take over the running buffer"
                )
            try:
                replace(tail)
            except ValueError as exc:
                return _refused(
                    handle, current, f"{exc}, and the new sampler needs another: needs a restart"
                )
        _otel.swap_sampler(pipes.tracer_provider, sampler)
        pipes.sampler = sampler
        if handle.plan is not None:  # a forked child builds this tree, not the first one
            handle.plan = dataclasses.replace(handle.plan, sampler=plan.sampler)
        restart = _changed(handle.settings, settings)
        handle.sampler_version = version
        handle.stats_registry.counter("sampler.reloads").incr()
        message = f"sampler {version} running"
        if restart:
            message += f"; changed, needing a restart to apply: {', '.join(restart)}"
        log.info("sfumato: reloaded %s: %s", source, message)
        return Reloaded(True, version, message, restart)


def _refused(handle: Any, version: str, why: str) -> Reloaded:
    handle.stats_registry.counter("sampler.reload_errors").incr()
    log.warning("sfumato: reload refused, nothing changed: %s", why)
    return Reloaded(False, version, why)


# -- watching the file ---------------------------------------------------------------------------


class Watcher:
    """Reloads when the file's contents change (checked every ``interval_s``)."""

    def __init__(self, handle: Any, path: str, interval_s: float) -> None:
        self.handle = handle
        self.path = path
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._seen = self._digest()
        self._thread = threading.Thread(target=self._run, name="sfumato-watch", daemon=True)
        self._thread.start()

    def _digest(self) -> str | None:
        try:
            with open(self.path, "rb") as f:
                return hashlib.sha256(f.read()).hexdigest()
        except OSError:
            return None

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            digest = self._digest()
            if digest is None or digest == self._seen:
                continue  # a file being replaced is read at the next check
            self._seen = digest
            try:
                self.handle.reload()
            except Exception:
                log.warning("sfumato: reloading %s raised", self.path, exc_info=True)

    def stop(self) -> None:
        self._stop.set()
