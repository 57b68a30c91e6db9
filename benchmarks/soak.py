"""Soak: a fixed span rate for a given duration against Rotel while Rotel flaps.

    python benchmarks/soak.py --duration 600 --rate 1000 --up 8 --down 4 --out soak.json

The application thread creates ``--rate`` spans a second (bursts every 10 ms) through sfumato
configured with its defaults and the ``otlp`` backend (gRPC) pointed at a local Rotel. Rotel
forwards to a sink in a separate process, which records what arrives. Every ``--up`` seconds
Rotel is killed (SIGKILL) and restarted on the same ports ``--down`` seconds later.

Reported every ``--every`` seconds and at the end: RSS, spans queued / exported / dropped by
reason / still queued, export call latency (each ``exporter.export`` call, retries inside the
exporter included), delivery latency (span end to arrival at the sink) and the application's
per-call cost. A final JSON document goes to ``--out``. This is a script, not a test: it is
run by hand, and its figures are written up in docs/reliability.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def rss_mib() -> float:
    with open(f"/proc/{os.getpid()}/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def percentiles(values: Sequence[float], points: Sequence[float] = (50, 99, 100)) -> list[float]:
    if not values:
        return [float("nan")] * len(points)
    ordered = sorted(values)
    return [ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] for p in points]


# -- the sink, in its own process ------------------------------------------------------------


def sink_main(port: int, conn: Connection) -> None:
    """An OTLP/gRPC trace sink: counts spans, distinct spans and delivery latency."""
    from concurrent import futures

    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as tp
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as tg

    lock = threading.Lock()
    seen: set[bytes] = set()
    totals = {"spans": 0}
    latencies_ms: list[float] = []  # this reporting window
    all_ms: list[float] = []  # the whole run

    class Traces(tg.TraceServiceServicer):  # type: ignore[misc]
        def Export(self, request: Any, context: Any) -> Any:
            now = time.time_ns()
            with lock:
                for rs in request.resource_spans:
                    for ss in rs.scope_spans:
                        for span in ss.spans:
                            totals["spans"] += 1
                            seen.add(span.span_id)
                            latency = (now - span.end_time_unix_nano) / 1e6
                            latencies_ms.append(latency)
                            all_ms.append(latency)
            return tp.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    tg.add_TraceServiceServicer_to_server(Traces(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    conn.send("ready")
    while True:
        message = conn.recv()
        with lock:
            p50, p99, top = percentiles(all_ms if message == "stop" else latencies_ms)
            summary = {
                "spans": totals["spans"],
                "distinct": len(seen),
                "delivery_ms": {"p50": p50, "p99": p99, "max": top},
            }
            if message == "window":
                latencies_ms.clear()
        conn.send(summary)
        if message == "stop":
            server.stop(grace=None)
            return


# -- Rotel -----------------------------------------------------------------------------------


class Rotel:
    def __init__(self, binary: str, grpc_port: int, sink_port: int, workdir: Path) -> None:
        self.command = [
            binary, "start",
            "--otlp-grpc-endpoint", f"127.0.0.1:{grpc_port}",
            "--otlp-http-endpoint", f"127.0.0.1:{free_port()}",
            "--exporter", "otlp",
            "--otlp-exporter-endpoint", f"http://127.0.0.1:{sink_port}",
            "--otlp-exporter-protocol", "grpc",
            "--otlp-exporter-compression", "none",
            "--batch-timeout", "50ms",
            "--pid-file", str(workdir / "rotel.pid"),
            "--log-file", str(workdir / "rotel.log"),
        ]  # fmt: skip
        self.grpc_port = grpc_port
        self.process: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.grpc_port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("rotel did not start listening")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.process = None

    @property
    def up(self) -> bool:
        return self.process is not None


def rotel_binary() -> str:
    if os.environ.get("ROTEL_AGENT"):
        return os.environ["ROTEL_AGENT"]
    import rotel

    return str(Path(rotel.__file__).parent / "rotel-agent")


# -- the run ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds (600)")
    parser.add_argument("--rate", type=int, default=1000, help="spans a second (1000)")
    parser.add_argument("--up", type=float, default=8.0, help="seconds Rotel stays up (8)")
    parser.add_argument("--down", type=float, default=4.0, help="seconds Rotel stays down (4)")
    parser.add_argument("--every", type=float, default=30.0, help="report interval (30)")
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    args = parser.parse_args(argv)

    import sfumato

    workdir = Path(tempfile.mkdtemp(prefix="sfumato-soak-"))
    sink_port, grpc_port = free_port(), free_port()
    context = multiprocessing.get_context("spawn")
    parent_end, child_end = context.Pipe()
    sink = context.Process(target=sink_main, args=(sink_port, child_end), daemon=True)
    sink.start()
    assert parent_end.recv() == "ready"
    rotel = Rotel(rotel_binary(), grpc_port, sink_port, workdir)
    rotel.start()

    telemetry = sfumato.configure(
        service_name="soak",
        backend="otlp",
        protocol="grpc",
        otlp_endpoint=f"http://127.0.0.1:{grpc_port}",
        metrics={"enabled": False},
        logs={"enabled": False},
    )
    settings = telemetry.settings
    exporter = telemetry.exporter("otlp-grpc", "traces")
    export_ms: list[float] = []
    export_lock = threading.Lock()
    original_export = exporter.export

    def timed_export(batch: Any) -> Any:
        start = time.perf_counter()
        try:
            return original_export(batch)
        finally:
            with export_lock:
                export_ms.append((time.perf_counter() - start) * 1000)

    exporter.export = timed_export

    tracer = telemetry.tracer("soak")
    burst = max(1, args.rate // 100)
    period = burst / args.rate
    call_us: list[float] = []
    samples: list[dict[str, Any]] = []
    created = 0
    start = time.monotonic()
    next_burst = start
    next_report = start + args.every
    cycle = args.up + args.down
    clock = time.perf_counter_ns
    print(
        f"soak: {args.rate} spans/s for {args.duration:.0f}s, Rotel up {args.up:g}s / down "
        f"{args.down:g}s; batch_size={settings.batch_size} max_queue_size="
        f"{settings.max_queue_size} export_timeout_ms={settings.export_timeout_ms} "
        f"export_retry_ms={settings.export_retry_ms}",
        flush=True,
    )
    header = (
        f"{'t/s':>6} {'rss MiB':>8} {'queued':>9} {'exported':>9} {'queue_full':>10} "
        f"{'failed':>7} {'in_queue':>8} {'export p50/p99 ms':>18} {'delivery p50/p99 ms':>20} "
        f"{'call p99 us':>11}"
    )
    print(header, flush=True)
    rss_start = rss_mib()
    while True:
        now = time.monotonic()
        elapsed = now - start
        if elapsed >= args.duration:
            break
        want_up = (elapsed % cycle) < args.up
        if want_up and not rotel.up:
            rotel.start()
            rotel.restarts += 1
        elif not want_up and rotel.up:
            rotel.kill()
        for _ in range(burst):
            t0 = clock()
            with tracer.start_as_current_span("soak.call", attributes={"n": created}):
                pass
            call_us.append((clock() - t0) / 1000)
            created += 1
        if now >= next_report:
            next_report += args.every
            parent_end.send("window")
            delivered = parent_end.recv()
            with export_lock:
                e50, e99, _ = percentiles(export_ms)
                export_ms.clear()
            stats = telemetry.stats()
            sample = {
                "t": round(elapsed, 1),
                "rss_mib": round(rss_mib(), 1),
                "created": created,
                "stats": stats,
                "export_ms": {"p50": e50, "p99": e99},
                "delivery_ms": delivered["delivery_ms"],
                "call_us_p99": percentiles(call_us, (99,))[0],
            }
            call_us.clear()
            samples.append(sample)
            print(
                f"{elapsed:6.0f} {sample['rss_mib']:8.1f} {stats['traces.queued']:9d} "
                f"{stats['traces.exported']:9d} {stats['traces.dropped.queue_full']:10d} "
                f"{stats['traces.dropped.export_failed']:7d} {stats['traces.in_queue']:8d} "
                f"{e50:8.1f}/{e99:9.1f} {delivered['delivery_ms']['p50']:9.0f}/"
                f"{delivered['delivery_ms']['p99']:10.0f} {sample['call_us_p99']:11.1f}",
                flush=True,
            )
        next_burst += period
        delay = next_burst - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_burst = time.monotonic()

    if not rotel.up:
        rotel.start()
    flushed_start = time.monotonic()
    flushed = telemetry.force_flush(30.0)
    flush_s = time.monotonic() - flushed_start
    shutdown_start = time.monotonic()
    clean = telemetry.shutdown()
    shutdown_s = time.monotonic() - shutdown_start
    time.sleep(1.0)  # Rotel's own batch (50 ms) reaches the sink
    parent_end.send("stop")
    delivered = parent_end.recv()
    rotel.kill()
    stats = telemetry.stats()
    dropped = {k: v for k, v in stats.items() if k.startswith("traces.dropped.")}
    rss = [s["rss_mib"] for s in samples]
    report = {
        "settings": {
            "rate": args.rate,
            "duration_s": args.duration,
            "up_s": args.up,
            "down_s": args.down,
            "batch_size": settings.batch_size,
            "max_queue_size": settings.max_queue_size,
            "export_timeout_ms": settings.export_timeout_ms,
            "export_retry_ms": settings.export_retry_ms,
        },
        "rotel_restarts": rotel.restarts,
        "created": created,
        "stats": stats,
        "accounted": created
        == stats["traces.exported"] + sum(dropped.values()) + stats["traces.in_queue"],
        "sink": delivered,
        "rss_mib": {
            "at_start": round(rss_start, 1),
            "first_sample": rss[0] if rss else None,
            "max": max(rss) if rss else None,
            "last": rss[-1] if rss else None,
        },
        "final_flush": {"ok": flushed, "seconds": round(flush_s, 3)},
        "shutdown": {"clean": clean, "seconds": round(shutdown_s, 3)},
        "samples": samples,
    }
    print(json.dumps({k: v for k, v in report.items() if k != "samples"}, indent=2), flush=True)
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    sink.join(5)
    return 0 if report["accounted"] else 1


if __name__ == "__main__":
    sys.exit(main())
