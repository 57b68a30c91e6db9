"""Fault injection for the reliability tests: a TCP proxy in front of a real receiver, an
application-side workload that times each instrumented call, and process memory readings.

The proxy forwards loopback connections to a target port and can be switched, at any moment,
between these modes:

- ``pass``: bytes flow both ways unchanged;
- ``slow``: each chunk is held ``latency`` seconds before it is forwarded;
- ``down``: the listening socket is closed and open connections are reset, so connecting is
  refused (a backend that crashed or is restarting);
- ``blackhole``: connections are accepted and what they send is read and thrown away, nothing
  ever comes back (a hung backend or a firewall dropping packets).
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["pass", "slow", "down", "blackhole"]

__all__ = [
    "FaultProxy",
    "Mode",
    "Timings",
    "p99",
    "rss_bytes",
    "run_workload",
]


class FaultProxy:
    """A TCP proxy on a fixed loopback port whose behaviour can be switched at run time."""

    def __init__(self, target_port: int, mode: Mode = "pass", latency: float = 0.0) -> None:
        self.target_port = target_port
        self.latency = latency
        self._mode: Mode = mode
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._closed = False
        self.connections = 0
        # Bind once to learn a free port; the same port is reused when the proxy comes back.
        probe = self._bind(0)
        self.port: int = probe.getsockname()[1]
        if mode == "down":
            probe.close()
        else:
            self._serve(probe)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mode(self) -> Mode:
        return self._mode

    def set_mode(self, mode: Mode) -> None:
        with self._lock:
            previous, self._mode = self._mode, mode
        if mode == "down" and previous != "down":
            self._close_all()
        elif mode != "down" and previous == "down":
            self._serve(self._bind(self.port))
        elif mode == "blackhole" or previous == "blackhole":
            # Connections opened under the old mode keep their pumps; reset them so every
            # connection from now on behaves as the new mode says.
            self._reset_connections()

    def close(self) -> None:
        self._closed = True
        self._close_all()

    # -- sockets -----------------------------------------------------------------------------

    @staticmethod
    def _bind(port: int) -> socket.socket:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        deadline = time.monotonic() + 5
        while True:
            try:
                listener.bind(("127.0.0.1", port))
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        listener.listen(128)
        return listener

    def _serve(self, listener: socket.socket) -> None:
        with self._lock:
            self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _close_all(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        self._reset_connections()

    def _reset_connections(self) -> None:
        with self._lock:
            sockets = list(self._sockets)
            self._sockets.clear()
        for s in sockets:
            with contextlib.suppress(OSError):
                # SO_LINGER 0: close with a RST, as a crashed peer's kernel would.
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            with contextlib.suppress(OSError):
                # close() alone would not wake a thread blocked in recv() on this socket.
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def _track(self, s: socket.socket) -> None:
        with self._lock:
            self._sockets.add(s)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            self.connections += 1
            self._track(client)
            if self._mode == "blackhole":
                threading.Thread(target=_swallow, args=(client,), daemon=True).start()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), 2)
            except OSError:
                client.close()
                continue
            self._track(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                mode = self._mode
                if mode == "slow" and self.latency:
                    time.sleep(self.latency)
                elif mode == "blackhole":
                    continue
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.close()


def _swallow(conn: socket.socket) -> None:
    try:
        while conn.recv(65536):
            pass
    except OSError:
        pass


# -- the application side --------------------------------------------------------------------


@dataclass
class Timings:
    """Per-call durations (ns) of the instrumented calls, and what the application saw."""

    durations: list[int] = field(default_factory=list)
    spans: int = 0
    errors: list[BaseException] = field(default_factory=list)

    def extend(self, other: Timings) -> None:
        self.durations.extend(other.durations)
        self.spans += other.spans
        self.errors.extend(other.errors)


def p99(durations: list[int]) -> float:
    """The 99th percentile in microseconds (nearest rank)."""
    ordered = sorted(durations)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] / 1000


def run_workload(
    tracer: object,
    seconds: float,
    rate: int = 2000,
    burst: int = 20,
    during: Callable[[float], None] | None = None,
) -> Timings:
    """Create ``rate`` spans a second for ``seconds``, in bursts of ``burst`` spans, timing
    each ``with start_as_current_span`` block: the cost the application pays per call.

    ``during(elapsed)`` is called between bursts (fault schedules). Any exception out of the
    instrumented call is recorded: the tests assert there is none.
    """
    out = Timings()
    start_span = tracer.start_as_current_span  # type: ignore[attr-defined]
    clock = time.perf_counter_ns
    start = time.monotonic()
    period = burst / rate
    next_burst = start
    n = 0
    while True:
        now = time.monotonic()
        elapsed = now - start
        if elapsed >= seconds:
            break
        if during is not None:
            during(elapsed)
        for _ in range(burst):
            t0 = clock()
            try:
                with start_span("app.call", attributes={"n": n}):
                    pass
            except BaseException as exc:  # the point is to see any of it
                out.errors.append(exc)
            out.durations.append(clock() - t0)
            n += 1
        next_burst += period
        delay = next_burst - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_burst = time.monotonic()  # behind schedule: do not try to catch up
    out.spans = n
    return out


def rss_bytes() -> int:
    """Resident set size of this process, from /proc (Linux)."""
    with open(f"/proc/{os.getpid()}/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


@contextlib.contextmanager
def proxy_to(port: int, mode: Mode = "pass", latency: float = 0.0) -> Iterator[FaultProxy]:
    proxy = FaultProxy(port, mode, latency)
    try:
        yield proxy
    finally:
        proxy.close()
