"""The ``sfumato`` command line.

Each command lives in its own module exposing ``register(subparsers)``, which adds its parser
(through :func:`._help.add_command`: a one-line description and the command's exit codes)
and sets ``func`` (taking the parsed arguments, returning an exit code). Plugins of the
``sfumato.cli`` entry-point group add their commands the same way, through the
``sfumato_cli_commands(subparsers)`` hook: ``report`` comes from the local store's plugin,
``demo`` from Botticelli's. What such a command needs is importable from here:
:func:`add_command`, :func:`exit_status`, :func:`plural`, :class:`CommandError`,
:func:`write_output`, :func:`read_input`, :func:`load_or_report`, :func:`print_json`, and for
``sfumato_doctor_endpoint``, :class:`DoctorEndpoint` and :class:`ProbeTarget`. A bad configuration
prints one line per problem and exits 2, as does a :class:`._files.CommandError`; nothing
prints a traceback unless ``SFUMATO_DEBUG=1``. A closed output pipe (``sfumato reference |
head -1``) ends the command quietly with 141, as a tool stopped by SIGPIPE would.

A command whose positional arguments may come after its options as well as before
(``sfumato report costs --csv DIR``) sets ``positionals_anywhere`` to the destination of its
one ``nargs="*"`` positional; the words argparse leaves over are appended to it.
"""

from __future__ import annotations

import argparse
import importlib
import io
import os
import sys
from collections.abc import Sequence

from .._errors import ConfigError
from ._extensions import cli_plugins, warn
from ._files import CommandError, read_input, write_output
from ._help import COMMON_EXITS, add_command, exit_status, plural
from ._output import load_or_report, print_json
from ._probe import ProbeTarget
from .doctor import DoctorEndpoint

__all__ = [
    "CommandError",
    "DoctorEndpoint",
    "ProbeTarget",
    "add_command",
    "exit_status",
    "load_or_report",
    "main",
    "plural",
    "print_json",
    "read_input",
    "write_output",
]

# sfumato's own commands: modules under sfumato.cli.
COMMANDS: tuple[str, ...] = (
    "validate",
    "show",
    "plugins",
    "init",
    "set",
    "doctor",
    "reload",
    "alerts",
    "reference",
)
# The order ``sfumato --help`` lists commands in, those of sfumato's own plugins included
# (report: the local store's; demo: Botticelli's). Any other plugin's commands come after,
# in the order they were added.
ORDER: tuple[str, ...] = (
    "validate",
    "show",
    "plugins",
    "init",
    "set",
    "report",
    "doctor",
    "reload",
    "export",
    "import",
    "demo",
    "alerts",
    "reference",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sfumato",
        description="Config-driven OpenTelemetry for Python services.",
        epilog="Each command's --help lists its own exit codes.\n\n"
        + exit_status({0: "success", **COMMON_EXITS}),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-V", "--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"{__name__}.{name.replace('-', '_')}")
        module.register(sub)
    host, failures = cli_plugins()
    warn(failures)
    # Each plugin on its own: one that fails leaves the others' commands (and sfumato's) usable.
    for impl in host.pm.hook.sfumato_cli_commands.get_hookimpls():
        try:
            impl.function(**dict.fromkeys(impl.argnames, sub))
        except Exception as exc:
            name = impl.plugin_name.removeprefix("cli:")
            warn_line = f"cli plugin '{name}' cannot add its commands"
            print(f"warning: {warn_line}: {type(exc).__name__}: {exc}", file=sys.stderr)
    listed = sub._choices_actions
    rank = {name: i for i, name in enumerate(ORDER)}
    listed.sort(key=lambda action: rank.get(action.dest, len(ORDER)))  # stable: others in order
    return parser


def _parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    args, extras = parser.parse_known_args(argv)
    dest = getattr(args, "positionals_anywhere", None)
    if extras and dest and not any(e.startswith("-") and e != "-" for e in extras):
        getattr(args, dest).extend(extras)
    elif extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def _drop_stdout() -> None:
    """Point stdout at /dev/null: what is still buffered for a closed pipe goes nowhere,
    instead of failing again when Python flushes it at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass  # not a real file (a test's capture): nothing to protect


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            code = _run(argv)
        finally:
            # A closed pipe shows here (also after argparse's --help), not at interpreter exit.
            sys.stdout.flush()
    except BrokenPipeError:
        _drop_stdout()
        return 141
    return code


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = _parse(parser, argv)
    if args.version:
        from importlib.metadata import version

        print(f"sfumato {version('sfumato')}")
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code: int = args.func(args)
        return code
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        raise
    except Exception as exc:
        if os.environ.get("SFUMATO_DEBUG") == "1":
            raise
        message = f"error: {type(exc).__name__}: {exc} (SFUMATO_DEBUG=1 shows the traceback)"
        print(message, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
