"""OpenTelemetry's declarative configuration: ``sfumato export --format otel-yaml`` writes a
file the published JSON schema (release v1.1.0, in ``tests/data/otel-configuration``)
accepts; ``sfumato import`` reads it back into the same settings; the official examples
import into configs sfumato accepts; what has no equivalent is listed, never dropped
silently."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import tomlkit
import yaml
from sfumato._loading import load_config
from sfumato.plugins.declarative import from_otel, to_otel

DATA = Path(__file__).parent / "data" / "otel-configuration"
SCHEMA = json.loads((DATA / "opentelemetry_configuration.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
SFUMATO = [sys.executable, "-c", "import sys; from sfumato.cli import main; sys.exit(main())"]

CONFIGS = {
    "otlp with sampling, views, console": """
        [telemetry]
        service_name = "botticelli"
        service_version = "2.1"
        environment = "prod"
        backend = "otlp"
        otlp_endpoint = "https://collector.example.com:4317"
        headers = { authorization = "Bearer ${OTLP_TOKEN}" }
        compression = "gzip"
        sampling_rate = 0.1
        export_console = true
        batch_size = 256
        batch_timeout_ms = 2000
        export_workers = 1

        [telemetry.resource]
        team = "bots"

        [telemetry.metrics]
        export_interval_ms = 15000
        exemplars = "trace_based"

        [telemetry.metrics.views."narrative.execution.duration"]
        buckets = [0.1, 1.0, 10.0]

        [telemetry.scrubbing]
        enabled = false
        """,
    "otlp over http, traces only": """
        [telemetry]
        service_name = "poster"
        backend = "otlp"
        protocol = "http/protobuf"
        otlp_endpoint = "http://localhost:4318"
        propagators = ["tracecontext"]
        export_workers = 1

        [telemetry.sampler]
        type = "parent_based"
        root = { type = "ratio", rate = 0.25 }
        remote_parent_not_sampled = { type = "always_off" }

        [telemetry.metrics]
        enabled = false

        [telemetry.logs]
        enabled = false

        [telemetry.scrubbing]
        enabled = false
        """,
    "rate-only head rules": """
        [telemetry]
        service_name = "rules"
        backend = "otlp"
        export_workers = 1

        [telemetry.sampler]
        type = "rules"
        otherwise = { type = "ratio", rate = 0.05 }

        [[telemetry.sampler.rules]]
        name = "rule-1"
        attributes = { "http.route" = "/health*" }
        sample = 0.0

        [[telemetry.sampler.rules]]
        name = "rule-2"
        attributes = { "http.route" = "/checkout*" }
        sample = 0.5

        [telemetry.scrubbing]
        enabled = false
        """,
}


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTLP_TOKEN", "a-secret-token")
    for name in [n for n in os.environ if n.startswith("SFUMATO_")]:
        monkeypatch.delenv(name)


def _file(tmp_path: Path, text: str, name: str = "app.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _loaded(tmp_path: Path, table: dict[str, Any]) -> Any:
    """``table`` written as a config file and read as configure() would."""
    path = tmp_path / "imported.toml"
    path.write_text(tomlkit.dumps({"telemetry": table}))
    return load_config(path)


def _comparable(settings: Any) -> dict[str, Any]:
    """What the declarative format carries of a configuration."""
    dumped = settings.model_dump(mode="json")
    keys = (
        "enabled",
        "service_name",
        "service_version",
        "environment",
        "backend",
        "otlp_endpoint",
        "protocol",
        "compression",
        "sampling_rate",
        "export_console",
        "batch_size",
        "batch_timeout_ms",
        "max_queue_size",
        "export_timeout_ms",
        "propagators",
        "resource",
    )
    out = {k: dumped[k] for k in keys}
    if out["otlp_endpoint"] is None:  # the default, which the exported file spells out
        grpc = out["protocol"] == "grpc"
        out["otlp_endpoint"] = "http://localhost:4317" if grpc else "http://localhost:4318"
    out["metrics"] = {
        k: dumped["metrics"][k] for k in ("enabled", "export_interval_ms", "exemplars", "views")
    }
    out["logs_enabled"] = dumped["logs"]["enabled"]
    return out


def _sampler_of(settings: Any) -> Any:
    """The sampler tree asked for, with the sampling_rate shorthand spelt out."""
    if settings.sampler is not None:
        return settings.sampler
    if settings.sampling_rate is not None:
        return {
            "type": "parent_based",
            "root": {"type": "ratio", "rate": settings.sampling_rate},
        }
    return None


@pytest.mark.parametrize("name", list(CONFIGS))
def test_an_exported_file_is_valid_and_imports_back_the_same(name: str, tmp_path: Path) -> None:
    source = _file(tmp_path, CONFIGS[name])
    original = load_config(source)
    doc, _ = to_otel(original)
    errors = sorted(VALIDATOR.iter_errors(json.loads(json.dumps(doc))), key=str)
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors]
    if "OTLP_TOKEN" in CONFIGS[name]:  # the header's variable, never its value
        assert "OTLP_TOKEN" in json.dumps(doc) and "a-secret-token" not in json.dumps(doc)
    table, not_imported = from_otel(yaml.safe_load(yaml.safe_dump(doc)))
    back = _loaded(tmp_path, table)
    before, after = _comparable(original.settings), _comparable(back.settings)
    # sampling_rate comes back spelt out as the tree it stands for.
    before["sampling_rate"] = after["sampling_rate"] = None
    assert after == before
    imported = _sampler_of(back.settings)
    expected = _sampler_of(original.settings)
    if expected is not None:
        assert _normalized(imported) == _normalized(expected)
    assert not_imported == []


def _normalized(tree: Any) -> Any:
    """A sampler table without the defaults an import spells out."""
    if not isinstance(tree, dict):
        return tree
    out = {k: _normalized(v) for k, v in tree.items() if v is not None}
    if out.get("type") == "rules":
        out["rules"] = [
            {k: v for k, v in rule.items() if k in ("attributes", "sample")}
            for rule in out.get("rules", [])
        ]
    return out


def test_what_has_no_equivalent_is_listed(tmp_path: Path) -> None:
    source = _file(
        tmp_path,
        """
        [telemetry]
        backend = "local"

        [telemetry.sampler]
        type = "error-always"
        """,
    )
    doc, missing = to_otel(load_config(source))
    assert not list(VALIDATOR.iter_errors(json.loads(json.dumps(doc))))
    text = "\n".join(missing)
    assert "exporter 'local'" in text and "no equivalent" in text
    assert "sampler: 'error-always' has no equivalent" in text
    assert "scrubbing" in text


@pytest.mark.parametrize("example", ["otel-getting-started.yaml", "otel-sdk-config.yaml"])
def test_the_published_examples_import_into_a_valid_config(
    example: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    doc = yaml.safe_load((DATA / example).read_text())
    assert not list(VALIDATOR.iter_errors(doc))
    table, missing = from_otel(doc)
    loaded = _loaded(tmp_path, table)  # every value sfumato takes, or a ConfigError
    assert loaded.settings.backend == "otlp"
    assert loaded.settings.sampler is not None
    assert all(isinstance(m, str) and m for m in missing)


def test_the_commands_write_and_read_files(tmp_path: Path) -> None:
    source = _file(tmp_path, CONFIGS["otlp over http, traces only"])
    written = tmp_path / "otel.yaml"
    export = subprocess.run(
        [*SFUMATO, "export", str(source), "--format", "otel-yaml", "-o", str(written)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert export.returncode == 0, export.stderr
    assert not list(VALIDATOR.iter_errors(yaml.safe_load(written.read_text())))
    imported = subprocess.run(
        [*SFUMATO, "import", str(written)], capture_output=True, text=True, timeout=120
    )
    assert imported.returncode == 0, imported.stderr
    back = _file(tmp_path, imported.stdout, "back.toml")
    assert load_config(back).settings.service_name == "poster"
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    refused = subprocess.run(
        [*SFUMATO, "import", str(bad)], capture_output=True, text=True, timeout=120
    )
    assert refused.returncode == 2 and "not a declarative configuration" in refused.stderr
