"""Every bad input gives one ConfigError line: file, line:column, dotted key, what was expected,
the allowed values with a did-you-mean; ``sfumato validate`` prints it alone and exits 2."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sfumato import ConfigError, load_settings
from sfumato.cli import main

# name -> (file bytes, env, fragments the message must contain, in order)
CASES: dict[str, tuple[bytes, dict[str, str], list[str]]] = {
    "unknown key": (
        b'[telemetry]\nservice_nme = "bot"\n',
        {},
        [
            ":2:1:",
            "telemetry.service_nme",
            "unknown key 'service_nme'",
            "did you mean 'service_name'",
        ],
    ),
    "unknown nested key": (
        b"[telemetry]\n[telemetry.metrics]\nenabeld = false\n",
        {},
        [":3:1:", "telemetry.metrics.enabeld", "did you mean 'enabled'"],
    ),
    "wrong type": (
        b'[telemetry]\nbatch_size = "lots"\n',
        {},
        [":2:1:", "telemetry.batch_size", "expected a valid integer", "got 'lots'"],
    ),
    "wrong type, table": (
        b"[telemetry]\nmetrics = 3\n",
        {},
        [":2:1:", "telemetry.metrics", "expected a table, got an integer"],
    ),
    "sampling_rate out of range": (
        b"[app]\nx = 1\n\n[telemetry]\nsampling_rate = 1.5\n",
        {},
        [":5:1:", "telemetry.sampling_rate", "expected a value <= 1.0", "got 1.5"],
    ),
    "batch_size zero": (
        b"[telemetry]\n  batch_size = 0\n",
        {},
        [":2:3:", "telemetry.batch_size", "expected a value >= 1", "got 0"],
    ),
    "bad literal": (
        b'[telemetry]\nprotocol = "grcp"\n',
        {},
        ["telemetry.protocol", "'grpc', 'http/protobuf'", "got 'grcp'", "did you mean 'grpc'"],
    ),
    "unknown backend": (
        b'[telemetry]\nbackend = "otpl"\n',
        {},
        [
            ":2:1:",
            "telemetry.backend",
            "unknown backend 'otpl'",
            "did you mean 'otlp'",
            "installed:",
        ],
    ),
    "unknown exporter": (
        b'[telemetry]\n[[telemetry.exporters]]\ntype = "memroy"\n',
        {},
        [
            ":3:1:",
            "telemetry.exporters[0].type",
            "unknown exporter 'memroy'",
            "did you mean 'memory'",
        ],
    ),
    "unknown sampler": (
        b'[telemetry.sampler]\ntype = "parent_based"\nroot = { type = "rato" }\n',
        {},
        [":3:1:", "telemetry.sampler.root.type", "unknown sampler 'rato'", "did you mean 'ratio'"],
    ),
    "sampler option out of range": (
        b'[telemetry.sampler]\ntype = "ratio"\nrate = 2\n',
        {},
        [":3:1:", "telemetry.sampler.rate", "expected a value <= 1.0"],
    ),
    "undefined variable": (
        b'[telemetry]\nservice_name = "${NO_SUCH_VAR_9}"\n',
        {},
        [":2:1:", "telemetry.service_name", "NO_SUCH_VAR_9 is not set", "${NO_SUCH_VAR_9:-value}"],
    ),
    "malformed substitution": (
        b'[telemetry]\nservice_name = "${BROKEN"\n',
        {},
        [":2:1:", "telemetry.service_name", "malformed substitution"],
    ),
    "malformed toml": (
        b'[telemetry]\nservice_name = "bot\nbatch_size = 1\n',
        {},
        [":2:20:", "invalid TOML: a string is not closed before the end of the line"],
    ),
    "malformed header": (b"[telemetry\n", {}, [":1:11:", "invalid TOML"]),
    "unclosed array": (
        b'[telemetry]\npropagators = ["baggage",\n',
        {},
        [":2:", "invalid TOML: unexpected end of file"],
    ),
    "duplicate key": (
        b"[telemetry]\nbatch_size = 1\nbatch_size = 2\n",
        {},
        [":3:", "duplicate key 'batch_size'"],
    ),
    "empty file": (b"", {}, ["file is empty"]),
    "whitespace only": (b"  \n\n", {}, ["file is empty"]),
    "binary file": (b"\x7fELF\x02\x01\x01\x00\x00\x00", {}, ["file is binary"]),
    "not utf-8": (b'[telemetry]\nservice_name = "\xff"\n', {}, ["not UTF-8"]),
    "telemetry not a table": (
        b"telemetry = 3\n",
        {},
        [":1:1:", "telemetry:", "expected a table ([telemetry]), got an integer"],
    ),
    "telemetry array of tables": (
        b"[[telemetry]]\nbatch_size = 1\n",
        {},
        [":1:1:", "got an array of tables"],
    ),
    "union value": (
        b'[telemetry.resource]\nregion = ["eu"]\n',
        {},
        [
            ":2:1:",
            "telemetry.resource.region",
            "expected a string, a boolean, an integer or a number",
        ],
    ),
    "bad environment value": (
        b"[telemetry]\n",
        {"SFUMATO_BATCH_SIZE": "many"},
        ["environment variable SFUMATO_BATCH_SIZE", "telemetry.batch_size", "got 'many'"],
    ),
    "unknown environment key": (
        b"[telemetry]\n",
        {"SFUMATO_BATCH_SIZ": "1"},
        ["environment variable SFUMATO_BATCH_SIZ", "did you mean 'batch_size'"],
    ),
    "bad otlp headers variable": (
        b"[telemetry]\n",
        {"OTEL_EXPORTER_OTLP_HEADERS": "novalue"},
        ["environment variable OTEL_EXPORTER_OTLP_HEADERS", "key=value"],
    ),
}

CLEAN_ENV_PREFIXES = ("SFUMATO_", "OTEL_")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith(CLEAN_ENV_PREFIXES):
            monkeypatch.delenv(name)
    return monkeypatch


def _in_order(message: str, fragments: list[str]) -> None:
    at = 0
    for fragment in fragments:
        found = message.find(fragment, at)
        assert found >= 0, f"{fragment!r} not in order in {message!r}"
        at = found + len(fragment)


@pytest.mark.parametrize("name", list(CASES))
def test_load_settings_raises_config_error(
    name: str, tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    data, env, fragments = CASES[name]
    path = tmp_path / "app.toml"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as info:
        load_settings(path, env=env)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "\n" not in message
    if not env:
        assert message.startswith(str(path))
    _in_order(message, fragments)


@pytest.mark.parametrize("name", list(CASES))
def test_validate_prints_one_line_and_exits_2(
    name: str, tmp_path: Path, clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data, env, fragments = CASES[name]
    for key, value in env.items():
        clean_env.setenv(key, value)
    path = tmp_path / "app.toml"
    path.write_bytes(data)
    assert main(["validate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "Traceback" not in err
    _in_order(err, fragments)


# The installed console script, as a user runs it.
_SCRIPT = shutil.which("sfumato") or str(Path(sys.executable).with_name("sfumato"))
SFUMATO = (
    [_SCRIPT]
    if Path(_SCRIPT).exists()
    else [sys.executable, "-c", "from sfumato.cli import main; raise SystemExit(main())"]
)


def _env_without_overrides() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(CLEAN_ENV_PREFIXES)}


@pytest.mark.parametrize(
    "name", ["unknown key", "malformed toml", "unknown backend", "binary file"]
)
def test_validate_in_a_subprocess(name: str, tmp_path: Path) -> None:
    data, env, fragments = CASES[name]
    path = tmp_path / "app.toml"
    path.write_bytes(data)
    result = subprocess.run(
        [*SFUMATO, "validate", str(path)],
        capture_output=True,
        text=True,
        env={**_env_without_overrides(), **env},
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    _in_order(lines[0], fragments)


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "absent.toml"
    assert main(["validate", str(path)]) == 2
    assert capsys.readouterr().err == f"error: {path}: file not found\n"


def test_directory_instead_of_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path}: is a directory, not a TOML file\n"


@contextlib.contextmanager
def _unreadable_file() -> Iterator[Path]:
    """A file the process cannot read. As root, chmod is not enough: the effective uid is
    dropped to nobody's while the file is opened (the kernel then refuses, as for any user)."""
    directory = Path(tempfile.mkdtemp())
    try:
        directory.chmod(0o755)
        path = directory / "secret.toml"
        path.write_text("[telemetry]\n")
        path.chmod(0)
        if os.geteuid() != 0:
            yield path
            return
        os.seteuid(65534)
        try:
            yield path
        finally:
            os.seteuid(0)
    finally:
        (directory / "secret.toml").unlink(missing_ok=True)
        directory.rmdir()


def test_unreadable_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "ok.toml").write_text("[telemetry]\n")
    assert main(["validate", str(tmp_path / "ok.toml")]) == 0  # every import done beforehand
    capsys.readouterr()
    with _unreadable_file() as path:
        with pytest.raises(ConfigError) as info:
            load_settings(path, env={}, resolve_plugins=False)
        code = main(["validate", str(path)])
    assert str(info.value) == f"{path}: permission denied: the file cannot be read"
    assert code == 2
    assert capsys.readouterr().err == f"error: {path}: permission denied: the file cannot be read\n"


def test_every_problem_is_reported_each_with_its_own_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "app.toml"
    path.write_text(
        "[telemetry]\nbatch_size = 0\nmax_queue_size = 0\nbatch_timout_ms = 1\n"
        "[telemetry.metrics]\nenabeld = true\n"
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert [str(p) for p in info.value.problems] == [
        f"{path}:2:1: telemetry.batch_size: expected a value >= 1, got 0",
        f"{path}:3:1: telemetry.max_queue_size: expected a value >= 1, got 0",
        f"{path}:4:1: telemetry.batch_timout_ms: unknown key 'batch_timout_ms'; "
        "did you mean 'batch_timeout_ms'?",
        f"{path}:6:1: telemetry.metrics.enabeld: unknown key 'enabeld'; did you mean 'enabled'?",
    ]
    assert str(info.value) == "\n".join(str(p) for p in info.value.problems)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == "".join(f"error: {p}\n" for p in info.value.problems)


def test_a_plugin_table_reports_every_problem_too(tmp_path: Path) -> None:
    path = tmp_path / "app.toml"
    path.write_text(
        '[telemetry]\nbackend = "none"\n[telemetry.sampler]\ntype = "per-narrative-type"\n'
        "defualt = 0.1\nrates = 3\n"
    )
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    shown = [str(p) for p in info.value.problems]
    assert len(shown) == 2, shown
    assert f"{path}:5:1: telemetry.sampler.defualt: unknown key 'defualt'; did you mean" in (
        shown[0] + shown[1]
    )
    assert any(s.startswith(f"{path}:6:1: telemetry.sampler.rates: ") for s in shown), shown


def test_secret_values_never_echoed_in_errors(tmp_path: Path) -> None:
    path = tmp_path / "app.toml"
    path.write_text("[telemetry]\nheaders = { authorization = 123456789 }\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert "telemetry.headers.authorization" in str(info.value)
    assert "123456789" not in str(info.value)
    assert "got an integer" in str(info.value)


def test_plugin_without_options_says_so(tmp_path: Path) -> None:
    path = tmp_path / "app.toml"
    path.write_text('[telemetry]\n[[telemetry.exporters]]\ntype = "memory"\ncolour = "red"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    assert str(info.value) == (
        f"{path}:4:1: telemetry.exporters[0].colour: unknown key 'colour': "
        "this plugin takes no options"
    )
