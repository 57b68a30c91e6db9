"""``sfumato demo [--config FILE] [--narratives N] [--seed S]``: the simulated Botticelli bot
server under a sfumato config, then a report of what the telemetry kept against what really
happened.

Without ``--config`` it runs the bundled ``demo.toml``: backend ``local`` writing to
``.sfumato/demo`` (emptied first: it belongs to the demo), sampler ``error-always`` over
``per-narrative-type``. The file's ``[demo]`` table sets the simulation (seed, narratives,
rates); ``--narratives`` and ``--seed`` override it. ``narratives`` counts bot runs: each
is a content_generation or research narrative, and the curation and posting narratives they
lead to come on top (the report counts them all). Before it starts the demo says how long it
should take. With the ``local`` backend the report reads back the store the run wrote; with
any other backend a ``memory`` exporter is added beside it. Exit 0 when every failure was
kept and the estimates are within tolerance, 1 when not, 2 on a bad file or argument.

The command belongs to Botticelli's plugin of the command line (:mod:`.cli`): Botticelli owns
the simulator and the verdict; the demo writes to and reads back the local store
(:mod:`sfumato.plugins.local`), which ships beside it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from sfumato._errors import ConfigError
from sfumato.cli import add_command, plural

if TYPE_CHECKING:
    from .simulator import SimulationConfig

__all__ = ["ProgressBar", "bundled_config", "estimate_seconds", "register", "run"]

# What one bot run costs on average with the default mix, measured: its acts (each
# ``act_cpu_ms`` of CPU), its LLM calls (each ``latency_ms`` of waiting) and the rest
# (the simulator's own code and the telemetry), in milliseconds.
_ACTS_PER_RUN = 4.5
_LLM_CALLS_PER_RUN = 3.5
_OVERHEAD_MS_PER_RUN = 2.5


def bundled_config() -> Path:
    return Path(str(resources.files("sfumato") / "examples" / "demo.toml"))


class ProgressBar:
    """A one-line text bar on a terminal; on anything else, a single line at the end."""

    def __init__(self, stream: TextIO, width: int = 30, label: str = "bot runs") -> None:
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


def estimate_seconds(simulation: SimulationConfig) -> float:
    """About how long the simulation takes, from its size and its per-act costs."""
    per_run_ms = (
        _ACTS_PER_RUN * simulation.act_cpu_ms
        + _LLM_CALLS_PER_RUN * simulation.latency_ms
        + _OVERHEAD_MS_PER_RUN
    )
    return simulation.narratives * per_run_ms / 1000


def _whole(value: str | None, option: str, minimum: int | None = None) -> int | None:
    """A command-line integer, or a ConfigError naming the option (one line, exit 2)."""
    if value is None:
        return None
    try:
        number = int(value.replace("_", ""))
    except ValueError:
        number = None
    if number is None or (minimum is not None and number < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise ConfigError(f"expected a whole number{bound}, got {value!r}", key=option)
    return number


def _demo_table(path: Path) -> dict[str, Any]:
    """The ``[demo]`` table of ``path`` as plain data; a ConfigError naming the file when it
    cannot be read or parsed, or when ``demo`` is not a table."""
    from sfumato._loading import read_document
    from sfumato._locate import locate
    from sfumato._validation import a_type

    document, text = read_document(path)
    table = document.unwrap().get("demo", {})
    if not isinstance(table, dict):
        where = locate(text, "demo")
        raise ConfigError(
            f"expected a table, got {a_type(table)}",
            path=path,
            line=where[0] if where else None,
            column=where[1] if where else None,
            key="demo",
        )
    return dict(table)


def _simulation(path: Path, narratives: int | None, seed: int | None) -> SimulationConfig:
    """The ``[demo]`` table of ``path`` validated, with the command line's overrides; a
    ConfigError naming the file, line and key when the file or the table is bad."""
    from sfumato._loading import read_text
    from sfumato._locate import locate
    from sfumato._validation import validate_model

    from .simulator import SimulationConfig

    options = _demo_table(path)
    if narratives is not None:
        options["narratives"] = narratives
    if seed is not None:
        options["seed"] = seed
    try:
        return validate_model(SimulationConfig, options, "demo")
    except ConfigError as exc:
        text = read_text(path)
        problems = []
        for problem in exc.problems:
            where = locate(text, problem.key) if problem.key else None
            problems.append(
                problem.located(
                    path=path,
                    line=where[0] if where else None,
                    column=where[1] if where else None,
                )
            )
        raise ConfigError.of(problems) from None


def _clear_store(directory: Path) -> None:
    from sfumato.plugins.local.files import list_files

    for store_file in list_files(directory):
        store_file.path.unlink(missing_ok=True)


def _from_store(directory: Path, since_ns: int, service: str) -> Iterable[Any]:
    from sfumato.plugins.local.store import Store

    from .verdict import KeptSpan

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

    from .verdict import KeptSpan

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
    from sfumato.plugins.local.options import LocalOptions

    from .simulator import run as simulate
    from .verdict import compare, configured_rates, render

    bundled = args.config is None
    path = bundled_config() if bundled else Path(args.config)
    narratives = _whole(args.narratives, "--narratives", minimum=0)
    seed = _whole(args.seed, "--seed")
    simulation = _simulation(path, narratives, seed)

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

    seconds = estimate_seconds(simulation)
    print(
        f"sfumato demo: {plural(simulation.narratives, 'bot run')} (seed {simulation.seed}) "
        f"under {'the bundled ' if bundled else ''}{path.name}, backend {settings.backend}: "
        f"about {max(1, round(seconds))} s",
        file=sys.stderr,
    )
    print(
        "(a bot run is one content_generation or research narrative; the report counts "
        "the curation and posting narratives they lead to as well)",
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
    p = add_command(
        sub,
        "demo",
        "run the simulated Botticelli bot server and report what the telemetry kept",
        details="Runs the simulated bot server under a config (default: the bundled "
        "demo.toml, local store in .sfumato/demo, emptied first) and compares what the "
        "telemetry kept with what happened: failures kept, rates and estimated counts per "
        "narrative type, latency per act. It says before it starts about how long it takes "
        "(about 15 s for the bundled config).",
        exits={
            0: "every failure was kept and every estimate is within its tolerance",
            1: "a failure was lost or an estimate is off",
            2: "a bad config file, [demo] table or option",
        },
    )
    p.add_argument("--config", metavar="FILE", help="a TOML file with [telemetry] and [demo]")
    p.add_argument(
        "--narratives", metavar="N", help="bot runs to simulate (default: the [demo] table's)"
    )
    p.add_argument("--seed", metavar="S", help="simulation seed (default: the [demo] table's)")
    p.set_defaults(func=run)
