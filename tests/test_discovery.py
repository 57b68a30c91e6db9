"""The config file is found in one order by every command and by ``configure()``: the path
given, else ``$SFUMATO_CONFIG``, else ``./sfumato.toml``; a table meant for sfumato but
misspelt or misplaced is an error, never a silent "disabled"."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sfumato
from sfumato.cli import main


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in [n for n in os.environ if n.startswith(("SFUMATO_", "OTEL_"))]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_init_writes_the_file_every_command_and_configure_then_read(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "init", "--backend", "none", "--service-name", "found-it")[0] == 0
    assert (workdir / "sfumato.toml").is_file()
    code, out, _ = run(capsys, "validate")
    assert code == 0 and out.startswith("sfumato.toml: valid: backend 'none'"), out
    code, out, _ = run(capsys, "show")
    assert code == 0 and "found-it" in out
    code, out, _ = run(capsys, "doctor")
    assert code == 0 and "backend 'none'" in out
    with sfumato.configure() as telemetry:
        assert telemetry.settings.service_name == "found-it"
        assert telemetry.settings.path == "sfumato.toml"


def test_the_variable_wins_over_the_default_file_and_the_argument_over_both(
    workdir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (workdir / "sfumato.toml").write_text('[telemetry]\nservice_name = "default-file"\n')
    (workdir / "env.toml").write_text('[telemetry]\nservice_name = "from-variable"\n')
    (workdir / "arg.toml").write_text('[telemetry]\nservice_name = "from-argument"\n')
    assert sfumato.load_settings().service_name == "default-file"
    monkeypatch.setenv("SFUMATO_CONFIG", "env.toml")
    assert sfumato.load_settings().service_name == "from-variable"
    assert sfumato.load_settings("arg.toml").service_name == "from-argument"
    code, out, _ = run(capsys, "validate")
    assert code == 0 and out.startswith("env.toml: valid")


def test_no_file_at_all_says_where_it_looked(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "validate")
    assert code == 0
    assert out.startswith("no config file ($SFUMATO_CONFIG unset, no ./sfumato.toml)"), out


@pytest.mark.parametrize(
    ("text", "line", "name"),
    [
        ('[telemetri]\nservice_name = "bot"\n', 1, "telemetri"),
        ('[app]\nx = 1\n\n[Telemetry]\nbackend = "none"\n', 4, "Telemetry"),
        ('[tool.sfumato]\nservice_name = "bot"\n', 1, "tool.sfumato"),
        ('[tool.sfumato.telemetry]\nservice_name = "bot"\n', 1, "tool.sfumato"),
        ('[app.telemetry]\nservice_name = "bot"\n', 1, "app.telemetry"),
    ],
)
def test_a_misspelt_or_misplaced_table_is_an_error_with_a_did_you_mean(
    workdir: Path, capsys: pytest.CaptureFixture[str], text: str, line: int, name: str
) -> None:
    (workdir / "app.toml").write_text(text)
    code, out, err = run(capsys, "validate", "app.toml")
    assert code == 2 and out == ""
    assert err == (
        f"error: app.toml:{line}:1: {name}: sfumato reads the top-level [telemetry] table, and "
        f"this file has none; did you mean [telemetry] instead of [{name}]?\n"
    )
    with pytest.raises(sfumato.ConfigError):
        sfumato.configure("app.toml")


def test_an_app_file_without_telemetry_is_still_just_disabled(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (workdir / "app.toml").write_text(
        '[app]\nname = "bot"\n[database]\nurl = "x"\n[geometry]\nx = 1\n[elementary]\ny = 2\n'
    )
    code, out, _ = run(capsys, "validate", "app.toml")
    assert code == 0 and "telemetry is disabled" in out
