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
from collections.abc import Mapping

from .._host import HookFailure, PluginHost
from ..alerts import Instrument

__all__ = ["cli_plugins", "instruments"]


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


def instruments(host: PluginHost | None = None) -> dict[str, Instrument]:
    """Every instrument the command-line plugins know, by metric name (the first plugin to
    name one wins)."""
    if host is None:
        host, _ = cli_plugins()
    found: dict[str, Instrument] = {}
    answers: list[Mapping[str, Instrument] | None] = host.pm.hook.sfumato_metric_instruments()
    for answer in reversed(answers):  # pluggy calls the last registered first
        for name, instrument in (answer or {}).items():
            found.setdefault(name, instrument)
    return found
