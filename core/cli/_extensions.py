"""The command line's plugins: the ``sfumato.cli`` entry-point group.

Each is registered on a :class:`~sfumato._host.PluginHost` of its own, never by
``configure()``: a plugin there adds commands (``sfumato_cli_commands``), tells ``sfumato
alerts`` the instruments it records (``sfumato_metric_instruments``) and ``sfumato doctor``
how to probe its exporters (``sfumato_doctor_endpoint``). ``SFUMATO_DISABLE_PLUGINS`` applies
(``cli:NAME`` names one of them alone); the config's disable list does not, as the command
line is built before any config is read.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from typing import Any

from .._host import HookFailure, PluginHost
from ..alerts import Instrument

__all__ = ["answers", "cli_plugins", "instruments"]


def cli_plugins(disabled: list[str] | None = None) -> tuple[PluginHost, list[HookFailure]]:
    """A host holding every enabled command-line plugin, and the ones that failed to load."""
    if disabled is None:
        raw = os.environ.get("SFUMATO_DISABLE_PLUGINS", "")
        disabled = [item.strip() for item in raw.split(",") if item.strip()]
    host = PluginHost(disabled=disabled)
    return host, host.load_hook_plugins(kind="cli")


def warn(failures: list[HookFailure]) -> None:
    """One line on stderr per command-line plugin that could not be loaded."""
    for failure in failures:
        print(f"warning: {failure.message}", file=sys.stderr)


def answers(host: PluginHost, hook: str, **kwargs: Any) -> Iterator[Any]:
    """Each command-line plugin's answer to ``hook``, in the order pluggy would ask them
    (the last registered first), None answers left out. A plugin whose hook raises is said
    on stderr and skipped, so one broken plugin does not take a command down; a
    ``ConfigError`` (a problem with the config the plugin reports) goes to the caller."""
    from .._errors import ConfigError

    for impl in reversed(getattr(host.pm.hook, hook).get_hookimpls()):
        try:
            answer = impl.function(**{name: kwargs[name] for name in impl.argnames})
        except ConfigError:
            raise
        except Exception as exc:
            print(
                f"warning: plugin {impl.plugin_name!r} failed in {hook}: "
                f"{type(exc).__name__}: {exc}",
                file=sys.stderr,
            )
            continue
        if answer is not None:
            yield answer


def instruments(host: PluginHost | None = None) -> dict[str, Instrument]:
    """Every instrument the command-line plugins know, by metric name (the plugin asked
    first wins)."""
    if host is None:
        host, _ = cli_plugins()
    found: dict[str, Instrument] = {}
    answer: Mapping[str, Instrument]
    for answer in answers(host, "sfumato_metric_instruments"):
        for name, instrument in answer.items():
            found.setdefault(name, instrument)
    return found
