"""The optional HTTP endpoints of ``[telemetry.http]``: ``/metrics`` and ``/healthz``.

A hook-only plugin (entry point ``http`` in ``sfumato.plugins``). When ``http.enabled`` is
true and metrics are on, it adds two metric readers to sfumato's MeterProvider: a
``PrometheusMetricReader`` on a registry of its own (served as ``/metrics``; needs the
``prometheus`` extra) and the :class:`~sfumato.plugins.health.HealthMonitor`'s delta reader.
The server starts once the providers are installed and stops when shutdown starts.

``/healthz`` answers 200 with every rule's value as JSON, or 503 naming the failing rules.
The server binds 127.0.0.1 unless told otherwise, and warns when bound to every interface.
Nothing here raises into ``configure()``: a port in use is logged and the endpoints are off.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from sfumato.hookspecs import hookimpl
from sfumato.plugins.health import HealthMonitor
from sfumato.plugins.prometheus import is_unspecified

if TYPE_CHECKING:
    from sfumato._telemetry import Telemetry
    from sfumato.settings import Settings

__all__ = ["HttpEndpoints", "endpoints"]

log = logging.getLogger("sfumato")


class HttpEndpoints:
    """Per configure(): the readers it adds, and the server serving them."""

    def __init__(self) -> None:
        self.monitor: HealthMonitor | None = None
        self.registry: Any = None
        self.server: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._interval = 5.0

    # -- hooks -----------------------------------------------------------------------------------

    @hookimpl
    def sfumato_metric_readers(self, settings: Settings) -> list[Any] | None:
        if not settings.http.enabled:
            return None
        readers: list[Any] = []
        self.monitor = HealthMonitor(settings.http.health)
        self._interval = settings.http.collect_interval_ms / 1000
        readers.append(self.monitor.reader)
        try:
            from opentelemetry.exporter.prometheus import PrometheusMetricReader
            from prometheus_client import CollectorRegistry
        except ImportError:
            log.warning(
                "sfumato: /metrics needs the prometheus extra: pip install sfumato[prometheus]"
            )
        else:
            self.registry = CollectorRegistry(auto_describe=True)
            readers.append(PrometheusMetricReader(registry=self.registry))
        return readers

    @hookimpl
    def sfumato_configured(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry  # /healthz reports the sampler version it runs
        http = telemetry.settings.http
        if not http.enabled:
            return
        if getattr(telemetry, "forked", False):
            # A forked child: the listening socket and its threads belong to the parent (the
            # serve loop does not run here, so shutting it down would wait forever). The
            # endpoints stay with the parent, as the Prometheus exporter's do.
            self.server = None
            self._threads = []
            self._stop = threading.Event()
            return
        if is_unspecified(http.host):
            log.warning(
                "sfumato: HTTP endpoints bound to %s:%d: /metrics and /healthz are reachable "
                "from other hosts",
                http.host or "every interface",
                http.port,
            )
        try:
            self.server = _Server((http.host.strip("[]") or "0.0.0.0", http.port), _handler(self))
        except OSError as exc:
            log.warning(
                "sfumato: cannot serve /metrics and /healthz on %s:%d: %s",
                http.host,
                http.port,
                exc.strerror or exc,
            )
            return
        serve = threading.Thread(target=self.server.serve_forever, name="sfumato-http", daemon=True)
        serve.start()
        self._threads.append(serve)
        if self.monitor is not None:
            sampler = threading.Thread(target=self._collect, name="sfumato-health", daemon=True)
            sampler.start()
            self._threads.append(sampler)

    @hookimpl
    def sfumato_shutdown(self, telemetry: Telemetry) -> None:
        self.close()

    # -- the server ------------------------------------------------------------------------------

    @property
    def port(self) -> int | None:
        return self.server.server_address[1] if self.server is not None else None

    @property
    def url(self) -> str | None:
        if self.server is None:
            return None
        host = str(self.server.server_address[0])
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def _collect(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                if self.monitor is not None:
                    self.monitor.collect()
            except Exception:
                log.debug("sfumato: health sampling failed", exc_info=True)

    def close(self) -> None:
        self._stop.set()
        server, self.server = self.server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=1.0)
        self._threads.clear()

    def health(self) -> tuple[int, dict[str, Any]]:
        """The status code and JSON body of ``/healthz`` (with the sampler version running)."""
        telemetry = getattr(self, "telemetry", None)
        sampler = {"sampler_version": telemetry.sampler_version} if telemetry is not None else {}
        if self.monitor is None:
            return 200, {"status": "ok", "rules": [], "detail": "metrics are off", **sampler}
        states = self.monitor.evaluate()
        failing = [s.rule.name for s in states if not s.ok]
        body = {
            "status": "failing" if failing else "ok",
            "failing": failing,
            "rules": [s.to_dict() for s in states],
            **sampler,
        }
        return (503 if failing else 200), body

    def metrics(self) -> tuple[int, bytes, str]:
        if self.registry is None:
            return 404, b"metrics are off, or the prometheus extra is not installed\n", "text/plain"
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return 200, generate_latest(self.registry), CONTENT_TYPE_LATEST


class _Server(ThreadingHTTPServer):
    """A server for scrapes and probes that a client cannot make noisy or heavy: a reset or
    broken connection is logged at debug level, not as a traceback on stderr; an idle
    connection is closed after ``idle_timeout_s``; past ``max_connections`` at once, a new
    one is closed at once instead of taking a thread."""

    daemon_threads = True
    idle_timeout_s = 10.0
    max_connections = 16

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(self.max_connections)
        self._count_lock = threading.Lock()
        self._active = 0
        self.most_connections = 0  # the peak, for tests and debugging

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        with self._count_lock:
            self._active += 1
            self.most_connections = max(self.most_connections, self._active)
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            request.settimeout(self.idle_timeout_s)
            super().process_request_thread(request, client_address)
        finally:
            self._release()

    def _release(self) -> None:
        with self._count_lock:
            self._active -= 1
        self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("sfumato: HTTP endpoint connection from %s failed", client_address, exc_info=True)


def _handler(owner: HttpEndpoints) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "sfumato"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                if path == "/healthz":
                    code, body = owner.health()
                    self._send(code, json.dumps(body).encode(), "application/json")
                elif path == "/metrics":
                    self._send(*owner.metrics())
                else:
                    self._send(404, b"not found: try /metrics or /healthz\n", "text/plain")
            except Exception:
                log.debug("sfumato: HTTP endpoint failed", exc_info=True)
                self._send(500, b"internal error\n", "text/plain")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            # Scrapes every few seconds would flood stderr; http.server logs there by default.
            pass

    return Handler


def endpoints(telemetry: Telemetry) -> HttpEndpoints | None:
    """The running endpoints of a ``configure()`` handle (None when not enabled)."""
    if telemetry.plan is None:
        return None
    plugin = telemetry.plan.host.pm.get_plugin("http")
    return plugin if isinstance(plugin, HttpEndpoints) and plugin.server is not None else None
