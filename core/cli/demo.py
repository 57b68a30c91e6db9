"""``sfumato demo [--config FILE] [--narratives N] [--seed S]``: the simulated Botticelli bot
server under a sfumato config, then a report of what the telemetry kept against what really
happened.

Without ``--config`` it runs the bundled ``demo.toml``: backend ``local`` writing to
``.sfumato/demo`` (emptied first: it belongs to the demo), sampler ``error-always`` over
``per-narrative-type``. The file's ``[demo]`` table sets the simulation (seed, narratives,
rates); ``--narratives`` and ``--seed`` override it. With the ``local`` backend the report
reads back the store the run wrote; with any other backend a ``memory`` exporter is added
beside it. Exit 0 when every failure was kept and the estimates are within tolerance.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

__all__ = ["ProgressBar", "bundled_config", "register", "run"]


def bundled_config() -> Path:
    return Path(str(resources.files("sfumato") / "examples" / "demo.toml"))


class ProgressBar:
    """A one-line text bar on a terminal; on anything else, a single line at the end."""

    def __init__(self, stream: TextIO, width: int = 30, label: str = "narratives") -> None:
        self.stream = stream
        self.width = width
        self.label = label
        self.tty = stream.isatty()
        self._last = 0.0
        self._started = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._last < 0.1:
            return
        self._last = now
        if not self.tty and done < total:
            return
        filled = self.width * done // total if total else self.width
        bar = "#" * filled + "-" * (self.width - filled)
        line = f"[{bar}] {done:,}/{total:,} {self.label} {now - self._started:.1f}s"
        self.stream.write(("\r" + line) if self.tty else line)
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def _demo_table(path: Path) -> dict[str, Any]:
    import tomlkit

    document = tomlkit.parse(path.read_text(encoding="utf-8")).unwrap()
    table = document.get("demo", {})
    return dict(table) if isinstance(table, dict) else {}


def _clear_store(directory: Path) -> None:
    from sfumato.plugins.local.files import list_files

    for store_file in list_files(directory):
        store_file.path.unlink(missing_ok=True)


def _from_store(directory: Path, since_ns: int, service: str) -> Iterable[Any]:
    from sfumato.plugins.botticelli.verdict import KeptSpan
    from sfumato.plugins.local.store import Store

    for span in Store(directory).spans():
        if span.start_ns >= since_ns and span.service == service:
            yield KeptSpan(
                span.trace_id,
                span.name,
                span.attributes,
                span.is_error,
                span.duration_ns,
                span.adjusted_count,
            )


def _from_memory(spans: Iterable[Any]) -> Iterable[Any]:
    from opentelemetry.trace import StatusCode
    from sfumato.plugins.botticelli.verdict import KeptSpan

    for span in spans:
        attributes = dict(span.attributes or {})
        try:
            weight = float(attributes.get("sampling.adjusted_count", 1.0))
        except (TypeError, ValueError):
            weight = 1.0
        yield KeptSpan(
            format(span.context.trace_id, "032x"),
            span.name,
            attributes,
            span.status.status_code is StatusCode.ERROR,
            max(0, (span.end_time or 0) - (span.start_time or 0)),
            weight,
        )


def run(args: argparse.Namespace) -> int:
    import sfumato
    from sfumato.plugins.botticelli.simulator import SimulationConfig
    from sfumato.plugins.botticelli.simulator import run as simulate
    from sfumato.plugins.botticelli.verdict import compare, configured_rates, render
    from sfumato.plugins.local.options import LocalOptions

    bundled = args.config is None
    path = bundled_config() if bundled else Path(args.config)
    options = _demo_table(path)
    if args.narratives is not None:
        options["narratives"] = args.narratives
    if args.seed is not None:
        options["seed"] = args.seed
    simulation = SimulationConfig.model_validate(options)

    settings = sfumato.load_settings(path)
    overrides: dict[str, Any] = {}
    directory: Path | None = None
    if settings.backend == "local":
        directory = Path(LocalOptions.model_validate(settings.backend_options).directory)
        if bundled:
            _clear_store(directory)
    else:
        overrides["exporters"] = [
            *(e.model_dump(exclude_none=True) for e in settings.exporters),
            {"type": "memory", "signals": ["traces"]},
        ]
    rates, default_rate = configured_rates(settings.sampler)
    if settings.sampler is None and settings.sampling_rate is not None:
        default_rate = settings.sampling_rate

    print(
        f"sfumato demo: {simulation.narratives:,} bot runs (seed {simulation.seed}) under "
        f"{'the bundled ' if bundled else ''}{path.name}, backend {settings.backend}",
        file=sys.stderr,
    )
    since_ns = time.time_ns()
    handle = sfumato.configure(path, **overrides)
    try:
        result = simulate(simulation, progress=ProgressBar(sys.stderr))
        memory = None if directory is not None else handle.exporter("memory", "traces")
    finally:
        handle.shutdown()
    kept: list[Any] = []
    if directory is not None:
        kept = list(_from_store(directory, since_ns, settings.service_name))
    elif memory is not None:
        kept = list(_from_memory(memory.get_finished_spans()))
    comparison = compare(result, kept, rates, default_rate)
    sys.stdout.write(render(comparison, result))
    if directory is not None:
        print(f"\nthe spans are in {directory}: sfumato report {directory}")
    return 0 if comparison.ok else 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo",
        help="run the simulated Botticelli bot server and report what the telemetry kept",
        description="Run the simulated Botticelli bot server under a config (default: the "
        "bundled demo.toml, local store in .sfumato/demo) and compare what was kept with "
        "what happened. Exit 1 when a failure was lost or an estimate is off.",
    )
    p.add_argument("--config", metavar="FILE", help="a TOML file with [telemetry] and [demo]")
    p.add_argument("--narratives", type=int, metavar="N", help="bot runs to simulate")
    p.add_argument("--seed", type=int, metavar="S", help="simulation seed")
    p.set_defaults(func=run)
