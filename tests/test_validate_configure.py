"""``sfumato validate`` and ``configure()`` agree, config by config.

Whatever ``configure()`` rejects, ``validate`` (and ``doctor``) must reject first, with the
file, line:column and key; whatever ``validate`` passes, ``configure()`` must build. Each
config of the corpus goes through both.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import sfumato
from sfumato import ConfigError
from sfumato.cli import main

# name -> (TOML text, whether it is valid). ``{tmp}`` is the test's own folder.
CORPUS: dict[str, tuple[str, bool]] = {
    "none": ('[telemetry]\nbackend = "none"\n', True),
    "no table": ('[app]\nname = "bot"\n', True),
    "disabled": ("[telemetry]\nenabled = false\n", True),
    "otlp": ('[telemetry]\nbackend = "otlp"\notlp_endpoint = "http://127.0.0.1:4317"\n', True),
    "otlp http": (
        '[telemetry]\nbackend = "otlp"\notlp_endpoint = "http://127.0.0.1:4318"\n'
        'protocol = "http/protobuf"\n',
        True,
    ),
    "otlp endpoint not a url": (
        '[telemetry]\nbackend = "otlp"\notlp_endpoint = "not a url at all"\n',
        False,
    ),
    "otlp endpoint bad port": (
        '[telemetry]\nbackend = "otlp"\notlp_endpoint = "http://collector:99999"\n',
        False,
    ),
    "local": (
        '[telemetry]\nbackend = "local"\nbackend_options = {{ directory = "{tmp}/s" }}\n',
        True,
    ),
    "prometheus": (
        '[telemetry]\nbackend = "prometheus"\nbackend_options = { port = 0 }\n',
        True,
    ),
    "ratio": ("[telemetry]\nsampling_rate = 0.25\n", True),
    "error-always tree": (
        '[telemetry]\nbackend = "none"\n[telemetry.sampler]\ntype = "error-always"\n'
        '[telemetry.sampler.otherwise]\ntype = "per-narrative-type"\ndefault = 0.1\n',
        True,
    ),
    "error-always under parent_based": (
        '[telemetry]\nbackend = "none"\n[telemetry.sampler]\ntype = "parent_based"\n'
        'root = { type = "error-always" }\n',
        False,
    ),
    "otel sampler, numeric arg": (
        '[telemetry]\nbackend = "none"\nsampler = { type = "traceidratio", arg = 0.25 }\n',
        True,
    ),
    "otel sampler, bad string arg": (
        '[telemetry]\nbackend = "none"\nsampler = { type = "traceidratio", arg = "lots" }\n',
        False,
    ),
    "unknown sampler": ('[telemetry]\nsampler = { type = "sometimes" }\n', False),
    "unknown backend": ('[telemetry]\nbackend = "otpl"\n', False),
    "unknown key": ("[telemetry]\nbatch_sise = 10\n", False),
    "misspelt table": ('[telemetri]\nservice_name = "bot"\n', False),
    "misspelt tool table": ('[tool.sfumato.telemetri]\nservice_name = "bot"\n', False),
    "otel exporter, keyword": (
        '[telemetry]\nbackend = "none"\n[[telemetry.exporters]]\ntype = "otlp_proto_http"\n'
        'endpoint = "http://127.0.0.1:4318/v1/traces"\ntimeout = 5\n',
        True,
    ),
    "otel exporter, misspelt keyword": (
        '[telemetry]\nbackend = "none"\n[[telemetry.exporters]]\ntype = "otlp_proto_http"\n'
        'endpiont = "http://127.0.0.1:4318/v1/traces"\n',
        False,
    ),
    "bad exporter option": (
        '[telemetry]\nbackend = "none"\n[[telemetry.exporters]]\ntype = "otlp-grpc"\n'
        "insecure = 3\n",
        False,
    ),
}


def _validate(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["validate", str(path)])
    out, err = capsys.readouterr()
    return code, out + err


def _configure(path: Path) -> BaseException | None:
    try:
        handle = sfumato.configure(path)
    except BaseException as exc:
        return exc
    handle.shutdown(timeout=2.0)
    return None


@pytest.mark.parametrize("name", list(CORPUS))
def test_validate_and_configure_agree(
    name: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for variable in [v for v in list(sfumato_env()) if v.startswith(("SFUMATO_", "OTEL_"))]:
        monkeypatch.delenv(variable)
    text, valid = CORPUS[name]
    path = tmp_path / "app.toml"
    path.write_text(text.replace("{tmp}", str(tmp_path)).replace("{{", "{").replace("}}", "}"))
    code, said = _validate(path, capsys)
    failure = _configure(path)
    assert (code == 0) is (failure is None), f"validate said {said!r}, configure: {failure!r}"
    assert (code == 0) is valid, said
    if not valid:
        assert code == 2 and said.startswith(f"error: {path}:"), said
        assert isinstance(failure, ConfigError), repr(failure)
        assert str(failure) in said


def sfumato_env() -> dict[str, str]:
    import os

    return dict(os.environ)


@pytest.mark.parametrize(
    "blocked", ["prometheus_client", "opentelemetry.exporter.prometheus"], ids=str
)
def test_a_missing_extra_is_found_by_validate_and_names_the_install_command(
    blocked: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, blocked, None)  # ``import`` now raises ImportError
    path = tmp_path / "app.toml"
    path.write_text('[telemetry]\nbackend = "prometheus"\nbackend_options = { port = 0 }\n')
    code, said = _validate(path, capsys)
    assert code == 2, said
    assert f"{path}:2:1: telemetry.backend" in said
    assert 'pip install "sfumato[prometheus]"' in said
    failure = _configure(path)
    assert isinstance(failure, ConfigError) and str(failure) in said


def test_doctor_rejects_what_configure_rejects(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "app.toml"
    path.write_text(CORPUS["error-always under parent_based"][0])
    code = main(["doctor", str(path), "--json"])
    out, _ = capsys.readouterr()
    report = json.loads(out)
    assert code == 2 and report["valid"] is False
    assert [p["key"] for p in report["problems"]] == ["telemetry.sampler.root"]
    assert report["problems"][0]["line"] == 5
