"""Instrumentations by name: ``[telemetry.instrumentations]``.

Each key is an instrumentor's entry-point name in the ``opentelemetry_instrumentor`` group
(what ``opentelemetry-instrument`` loads): ``requests = true``, ``flask = {excluded_urls =
"/health"}`` (a table is passed to ``instrument()`` as keyword arguments), ``sqlite3 =
false``; ``"*" = true`` enables every installed one but those set to false.

Checked when the configuration is read (``sfumato validate`` too): an unknown name gets a
did-you-mean against the installed ones and the package that provides it; an instrumentation
whose library is missing or at a version it does not instrument is one clear error (with
``"*"`` it is skipped with a notice instead). Instrumentors run once sfumato's providers exist
and are given them, are uninstrumented on shutdown, and are never instrumented twice: one
already instrumented (by ``opentelemetry-instrument``, or by the application) is left as it
is and said so.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import Distribution, EntryPoint, entry_points, version
from typing import Any

from ._errors import ConfigError

__all__ = [
    "GROUP",
    "Instrumentation",
    "Running",
    "auto_instrumented",
    "installed",
    "mismatched",
    "plan_instrumentations",
    "start",
    "stop",
]

log = logging.getLogger("sfumato")

GROUP = "opentelemetry_instrumentor"
ALL = "*"
KEY = "telemetry.instrumentations"


@dataclass(frozen=True)
class Instrumentation:
    """One instrumentation the configuration asks for."""

    name: str
    entry_point: EntryPoint = field(repr=False)
    options: Mapping[str, Any]
    package: str  # the distribution that provides it
    version: str

    def describe(self) -> str:
        opts = f" {dict(self.options)}" if self.options else ""
        return f"{self.name} ({self.package} {self.version}){opts}"


@dataclass
class Running:
    """What ``start`` did: the instrumentors sfumato instrumented (and must uninstrument),
    those found already instrumented, and those that failed."""

    instrumented: dict[str, Any] = field(default_factory=dict)
    already: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def installed() -> dict[str, EntryPoint]:
    """The installed instrumentors by entry-point name."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=GROUP):
        found.setdefault(ep.name, ep)
    return found


def package_for(name: str) -> str:
    """The contrib package that provides instrumentation ``name``."""
    return f"opentelemetry-instrumentation-{name.replace('_', '-')}"


def _dist(ep: EntryPoint) -> Distribution | None:
    return getattr(ep, "dist", None)


def conflict_of(ep: EntryPoint) -> str | None:
    """Why the library this instrumentation instruments cannot be (missing, or at a version
    it does not instrument), or None when it can."""
    dist = _dist(ep)
    if dist is None:
        return None
    try:
        from opentelemetry.instrumentation.dependencies import get_dist_dependency_conflicts
    except ImportError:
        return None
    conflict = get_dist_dependency_conflicts(dist)
    return None if conflict is None else str(conflict)


def plan_instrumentations(
    wanted: Mapping[str, Any], notices: list[str] | None = None
) -> list[Instrumentation]:
    """The instrumentations ``[telemetry.instrumentations]`` asks for, checked; raises
    ConfigError for an unknown name or one whose library cannot be instrumented."""
    if not wanted:
        return []
    available = installed()
    everything = wanted.get(ALL, False)
    if not isinstance(everything, bool):
        raise ConfigError(f'"*" takes true or false, not {everything!r}', key=f'{KEY}."*"')
    chosen: dict[str, Mapping[str, Any]] = {}
    for name, value in wanted.items():
        if name == ALL:
            continue
        key = f"{KEY}.{name}"
        if value is False:
            continue
        if value is True:
            options: Mapping[str, Any] = {}
        elif isinstance(value, Mapping):
            options = dict(value)
        else:
            raise ConfigError(
                f"expected true, false or a table of {name}'s options, not {value!r}", key=key
            )
        if name not in available:
            raise ConfigError(_unknown(name, available), key=key)
        chosen[name] = options
    if everything:
        for name in sorted(available):
            if name not in wanted:
                chosen[name] = {}
    plans: list[Instrumentation] = []
    for name, options in chosen.items():
        ep = available[name]
        problem = conflict_of(ep)
        if problem is not None:
            if name not in wanted:  # from "*": skipped, as opentelemetry-instrument does
                if notices is not None:
                    notices.append(f"instrumentation '{name}' skipped: {problem}")
                continue
            raise ConfigError(
                f"instrumentation '{name}' ({_package(ep)}) cannot run here: {problem} "
                f"Install the library it instruments, or set {name} = false.",
                key=f"{KEY}.{name}",
            )
        dist = _dist(ep)
        plans.append(
            Instrumentation(
                name,
                ep,
                options,
                dist.metadata["Name"] if dist is not None else package_for(name),
                dist.version if dist is not None else "?",
            )
        )
    return plans


def _package(ep: EntryPoint) -> str:
    dist = _dist(ep)
    return f"{dist.metadata['Name']} {dist.version}" if dist is not None else ep.value


def _unknown(name: str, available: Iterable[str]) -> str:
    import difflib  # only for an error: not at import

    names = sorted(available)
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    have = f" Installed: {', '.join(names)}." if names else " None is installed."
    return (
        f"no instrumentation named '{name}' is installed{hint}{have} "
        f"If it exists, install it: pip install {package_for(name)}"
    )


def start(plans: Iterable[Instrumentation], tracer_provider: Any, meter_provider: Any) -> Running:
    """Instrument each planned library with sfumato's providers; never raises."""
    running = Running()
    for plan in plans:
        try:
            instrumentor = plan.entry_point.load()()
            if instrumentor.is_instrumented_by_opentelemetry:
                running.already.append(plan.name)
                log.info(
                    "sfumato: %s is already instrumented (%s); left as it is",
                    plan.name,
                    "by opentelemetry-instrument" if auto_instrumented() else "elsewhere",
                )
                continue
            instrumentor.instrument(
                tracer_provider=tracer_provider,
                meter_provider=meter_provider,
                skip_dep_check=True,  # checked when the configuration was read
                **plan.options,
            )
            running.instrumented[plan.name] = instrumentor
        except Exception as exc:
            running.failed[plan.name] = f"{type(exc).__name__}: {exc}"
            log.warning(
                "sfumato: instrumentation '%s' failed to start: %s: %s; the rest of telemetry "
                "runs without it",
                plan.name,
                type(exc).__name__,
                exc,
            )
    return running


def stop(running: Running | None) -> None:
    """Uninstrument what ``start`` instrumented; never raises."""
    if running is None:
        return
    for name, instrumentor in list(running.instrumented.items()):
        try:
            instrumentor.uninstrument()
        except Exception:
            log.debug("sfumato: uninstrumenting %s raised", name, exc_info=True)
    running.instrumented.clear()


def auto_instrumented() -> bool:
    """Whether ``opentelemetry-instrument`` set this process up (its sitecustomize imports
    the auto-instrumentation package before the application starts)."""
    return "opentelemetry.instrumentation.auto_instrumentation" in sys.modules


def mismatched() -> list[tuple[str, str, str]]:
    """Installed instrumentation packages pinned to OpenTelemetry versions other than the
    installed ones: (package, what it requires, the command that fixes it)."""
    try:
        from packaging.requirements import Requirement
    except ImportError:
        return []
    out: list[tuple[str, str, str]] = []
    contrib = _installed_version("opentelemetry-semantic-conventions")
    seen: set[str] = set()
    for ep in installed().values():
        dist = _dist(ep)
        if dist is None:
            continue
        name = dist.metadata["Name"]
        if name in seen:
            continue
        seen.add(name)
        for text in dist.requires or ():
            req = Requirement(text)
            if not req.name.startswith("opentelemetry-") or req.marker is not None:
                continue
            have = _installed_version(req.name)
            if have is None or req.specifier.contains(have, prereleases=True):
                continue
            fix = f'pip install "{name}=={contrib}"' if contrib else f"pip install -U {name}"
            out.append((f"{name} {dist.version}", f"{req} (installed: {have})", fix))
            break
    return out


def _installed_version(name: str) -> str | None:
    try:
        return version(name)
    except Exception:
        return None
