"""Every TOML example in docs/backends.md is a valid config that plans what the text says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tempera

DOC = Path(__file__).resolve().parent.parent / "docs" / "backends.md"
BLOCKS = re.findall(r"```toml\n(.*?)```", DOC.read_text(), re.S)
ENV = {
    "COLLECTOR_API_KEY": "k",
    "SIGNOZ_INGESTION_KEY": "k",
    "GRAFANA_CLOUD_INSTANCE_ID": "1",
    "GRAFANA_OTLP_TOKEN": "t",
    "HONEYCOMB_API_KEY": "k",
}


def test_the_doc_has_examples() -> None:
    assert len(BLOCKS) >= 10


@pytest.mark.parametrize("block", BLOCKS, ids=[f"example{i}" for i in range(len(BLOCKS))])
def test_example_is_valid(block: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENV.items():  # backends read their secrets from the process environment
        monkeypatch.setenv(name, value)
    path = tmp_path / "app.toml"
    path.write_text(block)
    settings = tempera.load_settings(path, env=ENV)
    assert settings._plan is not None


def _example_with(needle: str) -> str:
    [block] = [b for b in BLOCKS if needle in b]
    return block


def test_development_and_production_examples(tmp_path: Path) -> None:
    path = tmp_path / "dev.toml"
    path.write_text(_example_with('environment = "development"'))
    dev = tempera.load_settings(path, env={})
    assert dev.backend == "jaeger" and dev.export_console
    assert {n.name for n in dev._plan.exporters} == {"otlp-grpc", "console"}

    path.write_text(_example_with('environment = "production"'))
    prod = tempera.load_settings(path, env={})
    assert (prod.backend, prod.sampling_rate, prod.batch_size, prod.batch_timeout_ms) == (
        "signoz",
        0.1,
        512,
        5000,
    )
    assert prod._plan.exporters[0].signals == frozenset({"traces", "metrics", "logs"})
