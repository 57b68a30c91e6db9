"""``configure()`` and the handle it returns."""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import logging
import multiprocessing.util
import os
import threading
import time
from types import TracebackType
from typing import Any

from opentelemetry import metrics as metrics_api
from opentelemetry import propagate
from opentelemetry import trace as trace_api
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    PeriodicExportingMetricReader,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from . import _instrumentations as instrumentations
from . import _otel
from ._guards import call_hook
from ._loading import load_config
from ._logging import OtelLogHandler, rate_limit_sdk_logs
from ._logging import install as install_log_handler
from ._pipeline import Pipelines, build_pipelines
from ._reload import Reloaded, Watcher, sampler_version
from ._reload import reload as reload_sampler
from ._resolve import Plan, resolve
from ._signals import install_sighup, install_sigterm, restore_sighup, restore_sigterm
from ._stats import Stats
from ._tracer import follow_global
from .plugin import TailControl
from .settings import Settings, Signal

__all__ = ["Telemetry", "active", "after_fork", "configure"]

log = logging.getLogger("sfumato")

_lock = threading.Lock()
_active: Telemetry | None = None
_PROPAGATORS: dict[str, type[TextMapPropagator]] = {
    "tracecontext": TraceContextTextMapPropagator,
    "baggage": W3CBaggagePropagator,
}


def _install_globals(pipes: Pipelines | None) -> None:
    """Install (or, with None, uninstall) the global providers.

    The OpenTelemetry API lets a provider be set once per process. sfumato owns that slot:
    after ``shutdown()`` a new ``configure()`` may install new providers, so the set-once
    guard is reset here rather than letting the API warn and keep the dead provider.
    """
    if pipes is None:
        _otel.install_global_providers(None, None, None)
        return
    _otel.install_global_providers(
        pipes.tracer_provider, pipes.meter_provider, pipes.logger_provider
    )
    follow_global(pipes.tracer_provider)  # tracers taken earlier follow the new pipeline


class Telemetry:
    """The running telemetry of a process: providers, counters and a bounded shutdown.

    Use it as a context manager; leaving the block flushes and shuts down.
    """

    def __init__(
        self, settings: Settings, plan: Plan | None, pipes: Pipelines | None, stats: Stats
    ) -> None:
        self.settings = settings
        self.plan = plan
        self.stats_registry = stats
        self._pipes = pipes
        self._handler: OtelLogHandler | None = None
        self._instrumented: instrumentations.Running | None = None
        self._closed = False
        self._pid = os.getpid()
        # Live changes (``reload``): the keyword arguments of configure(), which still win
        # over the file read again; the version of the sampler tree running.
        self._overrides: dict[str, Any] = {}
        self._reload_lock = threading.Lock()
        self._watcher: Watcher | None = None
        #: A digest of the sampler tree running (``[telemetry.sampler]``, ``sampling_rate``):
        #: the same as ``sfumato show`` and ``doctor`` print for the file.
        self.sampler_version = sampler_version(settings)
        #: True in a process forked from the one that called configure(): the pipelines were
        #: re-created here. Plugins serving a port leave it to the parent when it is set.
        self.forked = False

    # -- what is running ---------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return self._pipes is not None

    @property
    def tracer_provider(self) -> Any:
        return self._pipes.tracer_provider if self._pipes else trace_api.NoOpTracerProvider()

    @property
    def meter_provider(self) -> Any:
        return (
            self._pipes.meter_provider if self._pipes else None
        ) or metrics_api.NoOpMeterProvider()

    @property
    def logger_provider(self) -> Any:
        return self._pipes.logger_provider if self._pipes else None

    @property
    def sampler(self) -> Any:
        return self._pipes.sampler if self._pipes else None

    @property
    def instrumented(self) -> dict[str, str]:
        """The instrumentations asked for and what became of each: ``instrumented``,
        ``already instrumented`` (left as it was) or ``failed: <why>``."""
        running = self._instrumented
        if running is None:
            return {}
        out = dict.fromkeys(running.instrumented, "instrumented")
        out.update(dict.fromkeys(running.already, "already instrumented"))
        out.update({name: f"failed: {why}" for name, why in running.failed.items()})
        return out

    @property
    def notices(self) -> list[str]:
        return list(self.plan.notices) if self.plan else []

    def exporter(self, name: str, signal: Signal = "traces") -> Any:
        """The exporter object built for plugin ``name`` and ``signal`` (e.g. ``memory``)."""
        if self._pipes is None or (name, signal) not in self._pipes.exporters:
            raise KeyError(f"no {signal} exporter named {name!r} is running")
        return self._pipes.exporters[(name, signal)]

    def tracer(self, name: str = "sfumato") -> trace_api.Tracer:
        return self.tracer_provider.get_tracer(name)  # type: ignore[no-any-return]

    def reload(self, path: str | os.PathLike[str] | None = None) -> Reloaded:
        """Read the config file again (``path``, else the one configure() read) and apply
        its sampler tree without a restart: validated and built first, swapped atomically;
        an invalid file changes nothing, and the result says why. SIGHUP, ``sfumato
        reload`` and ``[telemetry.reload] watch`` call this. Never raises."""
        try:
            return reload_sampler(self, path)
        except Exception as exc:  # a bug, not the file: still nothing raised into the app
            log.warning("sfumato: reload failed", exc_info=True)
            return Reloaded(False, self.sampler_version, f"reload failed: {exc}")

    def stats(self) -> dict[str, int]:
        """Counters: spans and log records queued, exported and dropped by reason, ..."""
        if self._pipes is None:
            return self.stats_registry.snapshot()
        queues = self._pipes.queues
        # Each queue's worker moves a batch from in flight to exported or dropped under its
        # accounting lock: read with those held, the counters add up exactly.
        with contextlib.ExitStack() as held:
            for q in queues:
                held.enter_context(q._account)
            snapshot = self.stats_registry.snapshot()
            lengths = [(q.signal, q.name, len(q)) for q in queues]
        for signal, name, n in lengths:
            key = f"exporters.{name}.{signal}.in_queue"
            snapshot[key] = snapshot.get(key, 0) + n
        for signal in ("traces", "logs"):
            snapshot[f"{signal}.in_queue"] = sum(n for s, _, n in lengths if s == signal)
        if not _otel.FAST:
            snapshot["sdk_path"] = 1  # the SDK's own span and metric path is in use
        # The sampler tree running: its version (a 48-bit digest, the number whose 12 hex
        # digits sampler_version, `sfumato show` and doctor print) and reloads applied.
        snapshot["sampler.version"] = int(self.sampler_version, 16)
        snapshot.setdefault("sampler.reloads", 0)
        return snapshot

    # -- lifecycle ---------------------------------------------------------------------------

    def _start(self) -> None:
        pipes = self._pipes
        if pipes is None:
            return
        _install_globals(pipes)
        rate_limit_sdk_logs()
        propagate.set_global_textmap(
            CompositePropagator([_PROPAGATORS[name]() for name in self.settings.propagators])
        )
        if pipes.logger_provider is not None:
            logs = self.settings.logs
            self._handler = install_log_handler(
                pipes.logger_provider, logs.level, logs.stderr_fallback
            )
        if self.plan is not None and self.plan.instrumentations:
            # Once sfumato's providers exist: the instrumentors are given them.
            self._instrumented = instrumentations.start(
                self.plan.instrumentations, pipes.tracer_provider, self.meter_provider
            )
        if self.plan is not None:
            for notice in self.plan.notices:
                log.info("sfumato: %s", notice)
            call_hook(self.plan.host.pm, "sfumato_configured", self.stats_registry, telemetry=self)
        atexit.register(self._at_exit)
        install_sigterm(self)  # SIGTERM flushes first, when the application did not take it
        install_sighup(self)  # SIGHUP applies the file's sampler tree again
        self._watch()
        # A multiprocessing child made by fork ends with os._exit(): atexit does not run
        # there, multiprocessing's finalizers do.
        multiprocessing.util.register_after_fork(self, Telemetry._in_multiprocessing_child)

    def _watch(self) -> None:
        options = self.settings.reload
        if options.watch and self.settings.path is not None:
            self._watcher = Watcher(self, self.settings.path, options.interval_ms / 1000)

    def _at_exit(self) -> None:
        self.shutdown()

    def _in_multiprocessing_child(self) -> None:
        multiprocessing.util.Finalize(self, self.shutdown, exitpriority=100)

    def _after_fork(self) -> None:
        """Re-create the pipelines in a forked child (runs in the child's only thread).

        What the child inherited belongs to the parent: queued spans, open traces in a
        tail-sampling buffer, exporter connections (a gRPC channel or an HTTP keep-alive
        socket shared with the parent) and counters. None of it is flushed, shut down or
        reused here: the old queues and readers are silenced, and new providers, exporters,
        queues and counters are built from the same plan, so no span is sent twice and the
        child's spans go through connections of its own. Exporters that serve a port
        (Prometheus) stay with the parent.
        """
        old = self._pipes
        if old is None or self._closed:
            return
        self._pid = os.getpid()
        self.forked = True
        for q in old.queues:
            q._closed = True  # its own at-fork hook then starts no worker
            q._queue.clear()
        for reader in old.readers:
            if isinstance(reader, PeriodicExportingMetricReader):
                # Its at-fork hook restarts its thread; make that thread end at once, and
                # its last collection (the parent's data) go nowhere.
                _otel.silence_reader(reader, _DISCARD_METRICS)
        if self._handler is not None:
            self._handler.uninstall()
            self._handler = None
        self.stats_registry = Stats()
        plan = self.plan
        assert plan is not None
        local = [n for n in plan.exporters if not getattr(n.plugin, "serves_port", False)]
        self._pipes = build_pipelines(
            dataclasses.replace(plan, exporters=local), self.stats_registry
        )
        _install_globals(self._pipes)
        if self._pipes.logger_provider is not None:
            logs = self.settings.logs
            self._handler = install_log_handler(
                self._pipes.logger_provider, logs.level, logs.stderr_fallback
            )
        call_hook(plan.host.pm, "sfumato_configured", self.stats_registry, telemetry=self)

    def force_flush(self, timeout: float | None = None) -> bool:
        """Export everything queued; False when ``timeout`` seconds pass first, or when
        anything handed to a queue since the last flush was lost (a full queue, refused by
        the backend, failing past ``export_retry_ms``). A tail sampler first decides its
        units open past ``max_age_ms`` and lets go of what waited past its time."""
        if self._pipes is None or self._closed:
            return True
        deadline = time.monotonic() + (
            timeout if timeout is not None else self.settings.shutdown_timeout_ms / 1000
        )
        ok = True
        tail = self._pipes.tail
        if isinstance(tail, TailControl):
            ok = _bounded(tail.expire, deadline)
        for q in self._pipes.queues:
            ok = q.force_flush(max(0.0, deadline - time.monotonic())) and ok
        meter_provider = self._pipes.meter_provider
        if meter_provider is not None:
            remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
            ok = _bounded(lambda: meter_provider.force_flush(remaining_ms), deadline) and ok
        return ok

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush and stop everything; returns within ``timeout`` seconds (default:
        ``shutdown_timeout_ms``) even when the backend is unreachable. True when all of it
        finished in time and nothing accepted since the last ``force_flush()`` (or since
        ``configure()``) was lost; False otherwise, with one warning saying through which
        exporter. What could not be sent in time is counted as ``*.dropped.shutdown``.
        """
        global _active
        if self._closed:
            return True
        self._closed = True
        with _lock:
            if _active is self:
                _active = None
        atexit.unregister(self._at_exit)
        restore_sigterm(self)
        restore_sighup(self)
        if self._watcher is not None:
            self._watcher.stop()
        pipes = self._pipes
        if pipes is None:
            return True
        # The libraries stop making spans before the pipelines stop taking them.
        instrumentations.stop(self._instrumented)
        budget = timeout if timeout is not None else self.settings.shutdown_timeout_ms / 1000
        deadline = time.monotonic() + budget
        if self.plan is not None:
            hook = self.plan.host.pm.hook.sfumato_shutdown

            def plugin_shutdown() -> bool:
                try:
                    hook(telemetry=self)
                except Exception:
                    log.warning("sfumato: a plugin's shutdown hook raised", exc_info=True)
                return True

            # Bounded like every other step: a plugin's hook cannot hold shutdown past its
            # deadline.
            if not _bounded(plugin_shutdown, deadline):
                log.warning("sfumato: a plugin's shutdown hook did not finish in time")
        if self._handler is not None:
            self._handler.uninstall()
        clean = True
        # A tail-sampling stage decides the traces still open and hands what it keeps to
        # the queues first; the queues' own shutdown then sends everything. (Flushing the
        # provider instead would spend the budget waiting on an unreachable backend before
        # the exporters are told to stop.)
        tail = pipes.tail
        if isinstance(tail, TailControl):
            clean = _bounded(lambda: tail.decide_all("shutdown"), deadline) and clean
        clean = _shut_down_queues(pipes.queues, deadline) and clean
        if pipes.meter_provider is not None:
            mp = pipes.meter_provider
            remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
            clean = _bounded(lambda: mp.shutdown(timeout_millis=remaining_ms), deadline) and clean
        clean = _bounded(pipes.tracer_provider.shutdown, deadline) and clean
        if pipes.logger_provider is not None:
            clean = _bounded(pipes.logger_provider.shutdown, deadline) and clean
        _install_globals(None)
        if not clean:
            losses = [q.loss for q in pipes.queues if q.loss]
            if losses:
                log.warning(
                    "sfumato: at shutdown, lost since the last flush: %s; stats() counts them by "
                    "exporter and reason (dropped.<reason>)",
                    ", ".join(losses),
                )
            else:
                log.warning("sfumato: shutdown did not finish within its %.1fs deadline", budget)
        return clean

    def __enter__(self) -> Telemetry:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        state = "shut down" if self._closed else ("running" if self.enabled else "disabled")
        return (
            f"<Telemetry {self.settings.service_name!r} backend={self.settings.backend!r} {state}>"
        )


def _shut_down_queues(queues: list[Any], deadline: float) -> bool:
    """Shut every export queue down at once, each within the whole remaining budget: an
    exporter whose shutdown is slow does not eat the others' time."""
    if len(queues) == 1:
        return bool(queues[0].shutdown(max(0.0, deadline - time.monotonic())))
    results = [False] * len(queues)

    def shut(i: int) -> None:
        try:
            results[i] = bool(queues[i].shutdown(max(0.0, deadline - time.monotonic())))
        except Exception:
            log.debug("sfumato: an export queue's shutdown raised", exc_info=True)

    threads = [
        threading.Thread(target=shut, args=(i,), name="sfumato-shutdown", daemon=True)
        for i in range(len(queues))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return all(results) and not any(thread.is_alive() for thread in threads)


def _bounded(call: Any, deadline: float) -> bool:
    """Run ``call`` on a helper thread; give up waiting at ``deadline``."""
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(call())
        except Exception:
            log.debug("sfumato: shutdown step raised", exc_info=True)
            result.append(False)

    worker = threading.Thread(target=run, name="sfumato-shutdown", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()))
    return bool(result) and result[0] is not False


class _DiscardMetrics(MetricExporter):
    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> Any:
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass


_DISCARD_METRICS = _DiscardMetrics()


def after_fork() -> None:
    """Re-create the running telemetry's pipelines in this (forked) process.

    sfumato does this by itself in any child made by ``os.fork`` (``multiprocessing``'s fork
    start method, gunicorn and other pre-fork servers included), so this call is needed only
    where a process was forked by means that skip Python's at-fork hooks (a C extension
    calling fork(2) directly). It does nothing in the process that called ``configure()``,
    and nothing twice.
    """
    handle = _active
    if handle is None or handle._closed or handle._pid == os.getpid():
        return
    try:
        handle._after_fork()
    except Exception:
        # Never into the forking code: this child then runs without exporting.
        log.warning("sfumato: could not re-create telemetry after fork", exc_info=True)


def _new_lock_after_fork() -> None:
    global _lock
    _lock = threading.Lock()  # a parent thread may have held it at the fork


if hasattr(os, "register_at_fork"):
    # Registered at import, before any export queue or metric reader registers its own
    # hook, so it runs first in the child and can silence what it replaces.
    os.register_at_fork(after_in_child=_new_lock_after_fork)
    os.register_at_fork(after_in_child=after_fork)


def active() -> Telemetry | None:
    """The handle of the running ``configure()``, if any."""
    return _active


def configure(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Telemetry:
    """Read ``path``'s ``[telemetry]`` table, build the pipelines and install them globally.

    Keyword arguments override the file and the environment (``service_name="x"``).
    Raises ConfigError for bad configuration, and RuntimeError when sfumato is already
    configured in this process (call ``shutdown()`` on the running handle first).
    """
    global _active
    inherited = _active
    if inherited is not None and inherited.forked and inherited._pid == os.getpid():
        # A forked child configuring itself: its own call wins over the inherited setup.
        inherited.shutdown(timeout=1.0)
    with _lock:
        if _active is not None and not _active._closed and _active._pid == os.getpid():
            where = _active.settings.path or "keyword arguments"
            raise RuntimeError(
                f"sfumato is already configured in this process (from {where}); "
                "call shutdown() on that handle before configuring again"
            )
        loaded = load_config(path, **overrides)
        settings = loaded.settings
        stats = Stats()
        if not settings.enabled:
            handle = Telemetry(settings, None, None, stats)
        else:
            plan: Plan = loaded.plan if loaded.plan is not None else resolve(settings)
            pipes = build_pipelines(plan, stats)
            handle = Telemetry(settings, plan, pipes, stats)
            handle._overrides = dict(overrides)
            try:
                handle._start()
            except BaseException:
                # Strict mode refused a plugin's hook: leave nothing installed behind.
                handle.shutdown(timeout=1.0)
                raise
        _active = handle
        return handle
