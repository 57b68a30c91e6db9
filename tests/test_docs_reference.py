"""docs/configuration.md is what ``sfumato reference`` generates from the models, and what
it says about environment variables is what the loader does."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sfumato
from docs_support import DOCS
from pydantic import BaseModel
from pydantic_core import PydanticUndefined
from sfumato._reference import REGENERATE, otel_variables, render
from sfumato.cli import COMMANDS, main
from sfumato.settings import Settings

PAGE = DOCS / "configuration.md"


def test_the_committed_reference_is_up_to_date() -> None:
    assert PAGE.read_text(encoding="utf-8") == render(), (
        f"docs/configuration.md is out of date with the settings models; run: {REGENERATE}"
    )


def test_sfumato_reference_check(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    stale = tmp_path / "configuration.md"
    stale.write_text("old\n")
    assert main(["reference", "--check", str(stale)]) == 1
    assert REGENERATE in capsys.readouterr().err
    assert main(["reference", "--output", str(stale)]) == 0
    assert main(["reference", "--check", str(stale)]) == 0


def _scalar_fields(
    model: type[BaseModel], path: tuple[str, ...]
) -> list[tuple[tuple[str, ...], Any]]:
    out = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out += _scalar_fields(annotation, (*path, name))
        elif field.default not in (PydanticUndefined, None) and isinstance(
            field.default, bool | int | float | str
        ):
            out.append(((*path, name), field.default))
    return out


FIELDS = _scalar_fields(Settings, ())


def test_every_key_is_in_the_reference() -> None:
    text = PAGE.read_text(encoding="utf-8")
    for path, _ in FIELDS:
        assert f"| `{path[-1]}` |" in text, path
    for table in ("metrics", "logs", "plugins", "http"):
        assert f"### `[telemetry.{table}]`" in text


@pytest.mark.parametrize("path,default", FIELDS, ids=[".".join(p) for p, _ in FIELDS])
def test_the_documented_variable_sets_the_key(path: tuple[str, ...], default: Any) -> None:
    variable = "SFUMATO_" + "__".join(p.upper() for p in path)
    row = next(line for line in PAGE.read_text().splitlines() if f"`{variable}`" in line)
    assert row.startswith(f"| `{path[-1]}` |")
    value = str(default).lower() if isinstance(default, bool) else str(default)
    settings = sfumato.load_settings(env={variable: value}, resolve_plugins=False)
    assert settings.source_of(".".join(path)) == f"env:{variable}"


@pytest.mark.parametrize("variable,key", sorted(otel_variables().items()))
def test_the_documented_otel_variable_sets_the_key(variable: str, key: str) -> None:
    assert f"| `{variable}` | `{key}` |" in PAGE.read_text()
    value = {
        "OTEL_SDK_DISABLED": "true",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_METRICS_EXEMPLAR_FILTER": "trace_based",
    }.get(variable, "a=b" if key in ("headers", "resource") else "http://collector:4317")
    settings = sfumato.load_settings(env={variable: value}, resolve_plugins=False)
    assert settings.source_of(key) == f"env:{variable}"


def test_every_command_is_in_the_cli_reference() -> None:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^## `sfumato ([a-z-]+)", text, re.M))
    missing = [name for name in COMMANDS if name not in documented]
    assert not missing, f"docs/cli.md has no '## `sfumato NAME ...`' section for {missing}"
