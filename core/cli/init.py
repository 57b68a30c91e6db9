"""``sfumato init [FILE] --backend NAME``: add a commented ``[telemetry]`` section.

An existing file keeps every byte: the section is appended, never merged by reformatting.
A file that already has ``[telemetry]`` is refused (exit 2); ``sfumato set`` edits it.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from .._errors import ConfigError, did_you_mean
from .._host import PluginHost
from .._loading import DEFAULT_FILE, parse_document
from ..settings import Settings
from ._edit import read_for_edit, validate_text, write_atomically
from ._help import add_command

__all__ = ["DEFAULT_BACKEND", "register", "section"]

DEFAULT_BACKEND = "local"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = add_command(
        sub,
        "init",
        "add a commented [telemetry] section to a TOML file",
        details=f"Without FILE it writes ./{DEFAULT_FILE}, the file every command and "
        "configure() then find by default. An existing file keeps every byte.",
        exits={0: "written", 2: "the file already has [telemetry], or the result is invalid"},
    )
    p.add_argument(
        "file",
        nargs="?",
        default=None,
        help=f"TOML file to extend or create (default: $SFUMATO_CONFIG, else {DEFAULT_FILE})",
    )
    p.add_argument(
        "--backend", default=DEFAULT_BACKEND, help=f"backend plugin (default: {DEFAULT_BACKEND})"
    )
    p.add_argument(
        "--service-name",
        default=None,
        help="service name (default: [project] name of the file, else its directory's name)",
    )
    p.set_defaults(func=run)


def _default(name: str) -> object:
    return Settings.model_fields[name].get_default(call_default_factory=True)


def section(backend: str, service_name: str, newline: str = "\n") -> str:
    """The ``[telemetry]`` section ``init`` writes, one commented line per choice."""
    lines = [
        "[telemetry]",
        "# OpenTelemetry for this service, read by sfumato. `sfumato show` prints the merged",
        "# settings and where each came from; SFUMATO_* and OTEL_* variables override them.",
        f"service_name = {_toml_string(service_name)}",
        '# service_version = "1.0.0"',
        '# environment = "production"',
        "# Where telemetry goes: a backend plugin (`sfumato plugins` lists the installed ones).",
        f"backend = {_toml_string(backend)}",
    ]
    if backend == "otlp":
        lines += [
            'otlp_endpoint = "http://localhost:4317"',
            '# protocol = "grpc"  # or "http/protobuf"',
            "# Secret; ${VAR} reads the environment when the file is loaded.",
            '# headers = { authorization = "Bearer ${OTLP_TOKEN}" }',
        ]
    lines += [
        "# Every trace is kept unless you set a rate; error traces outrank the rest when",
        "# export falls behind. A rate keeps that fraction of new traces (children follow).",
        "# sampling_rate = 0.1",
        "# Also print telemetry to stdout.",
        "export_console = false",
        "# Export queue: spans per batch, longest wait before a batch leaves, spans held",
        "# before new ones are dropped (and counted).",
        f"# batch_size = {_default('batch_size')}",
        f"# batch_timeout_ms = {_default('batch_timeout_ms')}",
        f"# max_queue_size = {_default('max_queue_size')}",
        '# on_full = "drop"  # or "block": a span waits up to block_ms for room first',
        "",
        "# [telemetry.metrics]",
        "# enabled = true",
        "",
        "# [telemetry.logs]",
        '# level = "INFO"  # lowest Python logging level exported',
    ]
    return newline.join(lines) + newline


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + re.sub(r"[\x00-\x1f\x7f]", lambda m: f"\\u{ord(m.group()):04x}", escaped) + '"'


def _service_name(path: Path, text: str) -> str:
    if text.strip():
        project = parse_document(text, path).get("project")
        name = project.get("name") if isinstance(project, dict) else None
        if isinstance(name, str) and name.strip():
            return name.strip()
    directory = path.resolve().parent.name
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", directory).strip("-")
    return cleaned or "my-service"


def _check_backend(name: str) -> bool:
    """True when ``name`` is installed; the default may be proposed before it is."""
    installed = PluginHost().names("backend")
    if name in installed:
        return True
    if name == DEFAULT_BACKEND:
        return False
    raise ConfigError(
        f"unknown backend '{name}'{did_you_mean(name, installed)} "
        f"(installed: {', '.join(installed) or 'none'})",
        key="--backend",
    )


def run(args: argparse.Namespace) -> int:
    path = Path(args.file or os.environ.get("SFUMATO_CONFIG") or DEFAULT_FILE)
    if path.is_dir():
        raise ConfigError("is a directory, not a TOML file", path=path)
    text = read_for_edit(path)
    if text is None and not path.parent.is_dir():
        raise ConfigError(f"directory {str(path.parent)!r} does not exist", path=path)
    original = text or ""
    if original.strip() and "telemetry" in parse_document(original, path):
        raise ConfigError(
            "already has a [telemetry] table: edit it with `sfumato set`, or by hand", path=path
        )
    installed = _check_backend(args.backend)
    raw = path.read_bytes() if text is not None else b""
    newline = "\r\n" if b"\r\n" in raw else "\n"
    lead = ""
    if raw.strip():
        # Appended text only: the original bytes stay a prefix of the new file.
        lead = newline if not raw.endswith(b"\n") else ""
        lead += newline
    name = args.service_name or _service_name(path, original)
    addition = lead + section(args.backend, name, newline)
    validate_text(original + addition, path, resolve_plugins=installed)
    write_atomically(path, raw + addition.encode("utf-8"))
    verb = "added a [telemetry] section to" if text is not None else "created"
    print(f"{verb} {path} (backend {args.backend!r})")
    if not installed:
        print(
            f"note: backend {args.backend!r} is not installed yet; its plugin options were not "
            "checked",
            file=sys.stderr,
        )
    return 0
