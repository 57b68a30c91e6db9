"""``sfumato reload PID``: validate the config file as the service would read it again, build
its sampler tree, and only then send the service SIGHUP, which has it apply the tree (see
``Telemetry.reload``). An invalid file sends nothing."""

from __future__ import annotations

import argparse
import os
import signal

from .._loading import load_config
from .._pipeline import build_sampler
from .._reload import sampler_version
from .._stats import Stats
from ._files import CommandError
from ._help import add_command
from .validate import CONFIG_HELP, describe_source

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(
        sub,
        "reload",
        "validate the config, then have a running service apply its sampler tree",
        details="Validates the file and builds its sampler tree as the service will, then "
        "sends the process SIGHUP. The service reads the file again and swaps the tree in "
        "without a restart (when the application left SIGHUP to sfumato). An invalid file "
        "sends nothing.",
        exits={
            0: "the config is valid and the signal was sent",
            1: "the process could not be signalled",
            2: "the config is invalid: nothing was sent",
        },
    )
    p.add_argument("pid", type=int, help="the service's process id")
    p.add_argument("-c", "--config", default=None, help=CONFIG_HELP)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    where = describe_source(args.config)
    loaded = load_config(args.config)  # a ConfigError: one line per problem, exit 2
    settings, plan = loaded.settings, loaded.plan
    if not settings.enabled or plan is None:
        raise CommandError(f"{where}: telemetry is disabled there: nothing to reload")
    build_sampler(plan.sampler, settings, Stats(), plan.host)
    if not hasattr(signal, "SIGHUP"):
        raise CommandError("this platform has no SIGHUP", code=1)
    try:
        os.kill(args.pid, signal.SIGHUP)
    except OSError as exc:
        raise CommandError(
            f"cannot signal process {args.pid}: {exc.strerror or exc}", code=1
        ) from None
    print(f"{where}: valid; sampler {sampler_version(settings)}; SIGHUP sent to {args.pid}")
    return 0
