"""``sfumato show``, ``plugins``, ``init`` and ``set``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sfumato import load_settings
from sfumato.cli import main

CANARY = "CANARY-7f3a9c"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith(("SFUMATO_", "OTEL_")):
            monkeypatch.delenv(name)
    return monkeypatch


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- show ----------------------------------------------------------------------------------


SHOW = f"""[telemetry]
service_name = "bot"
backend = "otlp"
otlp_endpoint = "https://user:{CANARY}-url@collector:4317"
headers = {{ authorization = "Bearer {CANARY}-file" }}
sampling_rate = 0.25
batch_size = 64

[[telemetry.exporters]]
type = "otlp-http"
signals = ["traces"]
headers = {{ "x-api-key" = "{CANARY}-exporter" }}
"""


def test_show_sources_and_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], clean_env: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "app.toml"
    path.write_text(SHOW)
    clean_env.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"x-env={CANARY}-env")
    clean_env.setenv("SFUMATO_MAX_QUEUE_SIZE", "100")
    code, out, err = run(capsys, "show", str(path))
    assert code == 0 and err == ""
    lines = {line.split(" = ")[0]: line for line in out.splitlines() if " = " in line}
    assert lines["service_name"].endswith("# file")
    assert lines["batch_timeout_ms"].endswith("# default")
    assert lines["max_queue_size"].endswith("# env:SFUMATO_MAX_QUEUE_SIZE")
    assert lines["headers.authorization"].split("#")[0].strip().endswith('"***"')
    assert lines["headers.x-env"].endswith("# env:OTEL_EXPORTER_OTLP_HEADERS")
    assert "ratio(rate=0.25, precision=4)" in out
    assert "traces: otlp-grpc, otlp-http" in out
    assert "metrics: otlp-grpc" in out
    assert "batch_size=64 batch_timeout_ms=5000 max_queue_size=100" in out
    assert CANARY not in out


def test_show_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], clean_env: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "app.toml"
    path.write_text(SHOW)
    code, out, _ = run(capsys, "show", str(path), "--json")
    assert code == 0
    assert CANARY not in out
    doc = json.loads(out)
    settings = doc["settings"]
    assert settings["batch_size"] == {"value": 64, "source": "file"}
    assert settings["headers.authorization"]["value"] == "***"
    assert settings["exporters[0].headers.x-api-key"]["value"] == "***"
    assert settings["otlp_endpoint"]["value"] == "https://***@collector:4317"
    assert settings["protocol"] == {"value": "grpc", "source": "default"}
    assert doc["sampler"]["type"] == "parent_based"
    assert doc["sampler"]["children"][0]["type"] == "ratio"
    assert doc["sampler"]["children"][0]["options"] == {"rate": 0.25, "precision": 4}
    assert doc["exporters"]["traces"] == ["otlp-grpc", "otlp-http"]
    assert doc["exporters"]["logs"] == ["otlp-grpc"]
    assert doc["batch"] == {
        "batch_size": 64,
        "batch_timeout_ms": 5000,
        "max_queue_size": 16_384,
        "on_full": "drop",
    }
    # Cross-check against the loader itself rather than restating values.
    loaded = load_settings(path)
    assert doc["settings"]["service_name"]["value"] == loaded.service_name


def test_show_argument_and_disabled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "app.toml"
    path.write_text('[app]\nname = "x"\n')
    code, out, _ = run(capsys, "show", str(path))
    assert code == 0
    assert "no [telemetry] table" in out and "telemetry is disabled" in out


def test_show_bad_config_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "app.toml"
    path.write_text("[telemetry]\nbatch_size = 0\n")
    code, out, err = run(capsys, "show", str(path))
    assert code == 2 and out == "" and err.count("\n") == 1


# -- plugins -------------------------------------------------------------------------------


def _fake_distribution(root: Path, entry_points: str) -> None:
    """A distribution on sys.path: metadata only, as pip would leave it."""
    info = root / "brokenplug-0.3.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenplug\nVersion: 0.3.1\n")
    (info / "entry_points.txt").write_text(entry_points)


def test_plugins_lists_every_kind(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plugins", "--json")
    assert code == 0
    rows = json.loads(out)
    found = {(r["kind"], r["name"]): r for r in rows}
    assert found[("backend", "otlp")]["distribution"] == "sfumato"
    assert found[("exporter", "memory")]["group"] == "sfumato.exporters"
    assert found[("sampler", "ratio")]["status"] == "not imported"
    # The OpenTelemetry SDK's own groups are listed with their distribution.
    assert found[("sampler", "traceidratio")]["distribution"] == "opentelemetry-sdk"
    assert found[("sampler", "traceidratio")]["group"] == "opentelemetry_traces_sampler"
    assert all(r["version"] and r["distribution"] for r in rows)


def test_plugins_marks_disabled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], clean_env: pytest.MonkeyPatch
) -> None:
    clean_env.setenv("SFUMATO_DISABLE_PLUGINS", "ratio,exporter:memory")
    _, out, _ = run(capsys, "plugins", "--json")
    status = {(r["kind"], r["name"]): r["status"] for r in json.loads(out)}
    assert status[("sampler", "ratio")] == "disabled"
    assert status[("exporter", "memory")] == "disabled"
    assert status[("exporter", "console")] == "not imported"
    clean_env.delenv("SFUMATO_DISABLE_PLUGINS")
    config = tmp_path / "app.toml"
    config.write_text('[telemetry.plugins]\ndisable = ["console"]\n')
    _, out, _ = run(capsys, "plugins", "--config", str(config))
    row = next(line for line in out.splitlines() if line.split()[:2] == ["exporter", "console"])
    assert row.split()[-1] == "disabled"


def test_plugins_check_marks_broken(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_distribution(
        tmp_path,
        "[sfumato.samplers]\nbroken_sampler = brokenplug_missing_module:Sampler\n",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    code, out, _ = run(capsys, "plugins", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and rows["broken_sampler"]["status"] == "not imported"
    code, out, _ = run(capsys, "plugins", "--json", "--check")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 1
    broken = rows["broken_sampler"]
    assert (broken["distribution"], broken["version"], broken["status"]) == (
        "brokenplug",
        "0.3.1",
        "broken",
    )
    assert "brokenplug 0.3.1" in broken["error"] and "ModuleNotFoundError" in broken["error"]
    assert rows["ratio"]["status"] == "ok" and rows["memory"]["status"] == "ok"
    code, out, _ = run(capsys, "plugins", "--check")
    assert code == 1 and "broken: sampler broken_sampler:" in out


# -- init ----------------------------------------------------------------------------------

ORIGINAL = b'# My service\n[app]\nname = "bot"   # keep this comment\nports = [1, 2]\n'


def test_init_appends_and_keeps_every_byte(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "app.toml"
    path.write_bytes(ORIGINAL)
    code, _, _ = run(capsys, "init", str(path), "--backend", "otlp")
    assert code == 0
    data = path.read_bytes()
    assert data.startswith(ORIGINAL)
    added = data[len(ORIGINAL) :].decode()
    assert added.startswith("\n[telemetry]\n")
    assert 'backend = "otlp"' in added and "# " in added
    settings = load_settings(path, env={})
    assert settings.backend == "otlp" and settings.enabled
    assert settings.service_name == tmp_path.name  # no [project] name: the directory's
    code, _, err = run(capsys, "init", str(path))
    assert code == 2 and "already has a [telemetry] table" in err
    assert path.read_bytes() == data


def test_init_no_trailing_newline_and_crlf(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "app.toml"
    original = b"[app]\r\nname = 'x'"
    path.write_bytes(original)
    assert run(capsys, "init", str(path), "--backend", "stdout")[0] == 0
    data = path.read_bytes()
    assert data.startswith(original + b"\r\n\r\n[telemetry]\r\n")
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert load_settings(path, env={}).backend == "stdout"


def test_init_creates_file_with_project_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "new.toml"
    assert run(capsys, "init", str(path))[0] == 0
    settings = load_settings(path, env={}, resolve_plugins=False)
    assert settings.backend == "local"
    assert settings.service_name == tmp_path.name
    project = tmp_path / "pyproject.toml"
    project.write_text('[project]\nname = "botticelli"\n')
    assert run(capsys, "init", str(project), "--backend", "stdout")[0] == 0
    assert load_settings(project, env={}).service_name == "botticelli"


def test_init_refuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "app.toml"
    path.write_bytes(ORIGINAL)
    code, _, err = run(capsys, "init", str(path), "--backend", "otpl")
    assert code == 2 and "did you mean 'otlp'" in err
    path.write_bytes(b"telemetry.batch_size = 3\n")
    assert run(capsys, "init", str(path))[0] == 2
    path.write_bytes(b"[app\n")
    code, _, err = run(capsys, "init", str(path))
    assert code == 2 and "invalid TOML" in err
    assert path.read_bytes() == b"[app\n"


# -- set -----------------------------------------------------------------------------------

EDITABLE = b"""# top comment
[app]
name = "bot"  # app name

[telemetry]
# the service
service_name = "bot"   # trailing comment
batch_size = 512  # spans per batch
headers = { authorization = "Bearer ${TOKEN:-none}" }

[telemetry.metrics]
enabled = true # metrics on

[[telemetry.exporters]]
type = "memory"

[other]
x = 1
"""


@pytest.fixture
def editable(tmp_path: Path) -> Path:
    path = tmp_path / "app.toml"
    path.write_bytes(EDITABLE)
    return path


@pytest.mark.parametrize(
    ("key", "value", "old", "new"),
    [
        ("batch_size", "100", b"batch_size = 512  #", b"batch_size = 100  #"),
        ("telemetry.batch_size", "7", b"batch_size = 512  #", b"batch_size = 7  #"),
        ("metrics.enabled", "false", b"enabled = true #", b"enabled = false #"),
        ("service_name", "new-name", b'"bot"   # trailing', b'"new-name"   # trailing'),
        ("exporters[0].type", "console", b'type = "memory"', b'type = "console"'),
        (
            "headers",
            '{ authorization = "x" }',
            b'{ authorization = "Bearer ${TOKEN:-none}" }',
            b'{ authorization = "x" }',
        ),
    ],
)
def test_set_changes_only_the_value(
    editable: Path, capsys: pytest.CaptureFixture[str], key: str, value: str, old: bytes, new: bytes
) -> None:
    assert EDITABLE.count(old) == 1
    assert run(capsys, "set", str(editable), key, value)[0] == 0
    assert editable.read_bytes() == EDITABLE.replace(old, new)


def test_set_new_keys(editable: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "set", str(editable), "sampling_rate", "0.5")[0] == 0
    assert run(capsys, "set", str(editable), 'resource."service.namespace"', "bots")[0] == 0
    data = editable.read_bytes()
    # Everything that was there is still there, in order.
    assert data.startswith(EDITABLE.split(b"\n\n[telemetry.metrics]")[0])
    assert b"# top comment" in data and b"[other]\nx = 1\n" in data
    settings = load_settings(editable, env={})
    assert settings.sampling_rate == 0.5
    assert settings.resource == {"service.namespace": "bots"}
    assert settings.header_values() == {"authorization": "Bearer none"}


TRAILING = b"""[telemetry]  # ours
service_name = "bot"
batch_size = 512  # spans per batch
# sampling_rate = 0.1   (a commented example)

[telemetry.metrics]
enabled = true
# export_interval_ms = 1000

[other]
x = 1
"""


def test_set_puts_a_new_key_after_the_last_pair_not_after_trailing_comments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "app.toml"
    path.write_bytes(TRAILING)
    assert run(capsys, "set", str(path), "sampling_rate", "0.5")[0] == 0
    assert run(capsys, "set", str(path), "metrics.export_interval_ms", "2000")[0] == 0
    assert path.read_bytes() == TRAILING.replace(
        b"batch\n#", b"batch\nsampling_rate = 0.5\n#"
    ).replace(b"enabled = true\n", b"enabled = true\nexport_interval_ms = 2000\n")


def test_set_sampler_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "app.toml"
    path.write_bytes(b"[telemetry]\n")
    # One key at a time cannot make a valid ratio sampler: it needs its rate too.
    code, _, err = run(capsys, "set", str(path), "sampler.type", "ratio")
    assert code == 2 and "telemetry.sampler.rate: required key is missing" in err
    assert path.read_bytes() == b"[telemetry]\n"
    assert run(capsys, "set", str(path), "sampler", '{type = "ratio", rate = 0.1}')[0] == 0
    assert run(capsys, "set", str(path), "sampler.rate", "0.2")[0] == 0
    assert path.read_bytes() == b'[telemetry]\nsampler = {type = "ratio", rate = 0.2}\n'
    assert load_settings(path, env={}).sampler == {"type": "ratio", "rate": 0.2}


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("batch_size", "0", "telemetry.batch_size: expected a value >= 1, got 0"),
        ("batch_size", "many", "expected a valid integer"),
        ("sampling_rate", "1.5", "expected a value <= 1.0"),
        ("backend", "otpl", "did you mean 'otlp'"),
        ("exporters[0].type", "memroy", "did you mean 'memory'"),
        ("bogus", "1", "unknown key 'bogus'"),
        ("batch_size.x", "1", "telemetry.batch_size: is an integer, not a table"),
        ("exporters[5].type", "x", "index 5 is past the end"),
        ("sampler.type", "nope", "unknown sampler 'nope'"),
    ],
)
def test_set_writes_nothing_on_error(
    editable: Path, capsys: pytest.CaptureFixture[str], key: str, value: str, message: str
) -> None:
    code, out, err = run(capsys, "set", str(editable), key, value)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err and str(editable) in err
    assert editable.read_bytes() == EDITABLE
    assert not [p for p in editable.parent.iterdir() if p.name != editable.name]


def test_set_value_cannot_inject_structure(
    editable: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    evil = 'x"\n[telemetry.metrics]\nenabled = false\n'
    assert run(capsys, "set", str(editable), "service_name", evil)[0] == 0
    settings = load_settings(editable, env={})
    assert settings.service_name == evil
    assert settings.metrics.enabled is True


def test_set_does_not_print_secrets(editable: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "set", str(editable), "headers.authorization", f"Bearer {CANARY}")
    assert code == 0 and CANARY not in out and "***" in out
    assert load_settings(editable, env={}).header_values()["authorization"] == f"Bearer {CANARY}"


def test_set_keeps_mode_and_follows_symlinks(
    editable: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    editable.chmod(0o640)
    link = editable.with_name("link.toml")
    link.symlink_to(editable.name)
    assert run(capsys, "set", str(link), "batch_size", "9")[0] == 0
    assert link.is_symlink()
    assert load_settings(editable, env={}).batch_size == 9
    assert editable.stat().st_mode & 0o777 == 0o640


def test_set_ignores_override_environment(
    editable: Path, capsys: pytest.CaptureFixture[str], clean_env: pytest.MonkeyPatch
) -> None:
    # The file is judged on its own: a broken override variable does not block an edit.
    clean_env.setenv("SFUMATO_BATCH_SIZE", "not-a-number")
    assert run(capsys, "set", str(editable), "batch_size", "8")[0] == 0


def test_set_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "set", str(tmp_path / "none.toml"), "batch_size", "1")
    assert code == 2 and "file not found" in err and not (tmp_path / "none.toml").exists()
