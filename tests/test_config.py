"""load_settings: every key, ${VAR} substitution, environment precedence."""

from __future__ import annotations

from pathlib import Path

import pytest
from sfumato import ConfigError, load_settings
from sfumato._loading import load_config
from sfumato.cli import main

FULL = """
# a service's own config, with telemetry beside it
[app]
name = "bot"

[telemetry]
enabled = true
service_name = "bot-server"
service_version = "1.2.3"
environment = "staging"
backend = "otlp"
otlp_endpoint = "http://127.0.0.1:4317"
protocol = "http/protobuf"
headers = { authorization = "Bearer t0ken" }
insecure = true
export_console = true
batch_size = 64
batch_timeout_ms = 250
max_queue_size = 4096
shutdown_timeout_ms = 1500

[telemetry.resource]
"service.namespace" = "bots"
region = "eu"

[telemetry.sampler]
type = "parent_based"
root = { type = "ratio", rate = 0.25 }

[telemetry.metrics]
enabled = false

[telemetry.logs]
enabled = true
level = "warning"

[telemetry.plugins]
disable = ["prometheus"]

[[telemetry.exporters]]
type = "memory"
signals = ["traces"]
"""


def write(tmp_path: Path, text: str, name: str = "app.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_every_key_is_read(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, FULL), env={})
    s = loaded.settings
    assert s.enabled is True
    assert (s.service_name, s.service_version, s.environment) == ("bot-server", "1.2.3", "staging")
    assert (s.backend, s.otlp_endpoint, s.protocol) == (
        "otlp",
        "http://127.0.0.1:4317",
        "http/protobuf",
    )
    assert s.header_values() == {"authorization": "Bearer t0ken"}
    assert s.insecure is True and s.export_console is True
    assert (s.batch_size, s.batch_timeout_ms, s.max_queue_size) == (64, 250, 4096)
    assert s.shutdown_timeout_ms == 1500
    assert s.resource == {"service.namespace": "bots", "region": "eu"}
    assert s.sampler == {"type": "parent_based", "root": {"type": "ratio", "rate": 0.25}}
    assert s.metrics.enabled is False
    assert s.logs.level == "WARNING"
    assert s.plugins.disable == ["prometheus"]
    assert [e.type for e in s.exporters] == ["memory"] and s.exporters[0].signals == ["traces"]
    # The plan was resolved: the sampler tree and the extra exporter are there.
    plan = loaded.plan
    assert plan.sampler.describe()[1].strip() == "ratio(rate=0.25, precision=4)"
    assert any(node.name == "memory" for node in plan.exporters)
    assert s.source_of("batch_size") == "file"
    assert s.source_of("compression") == "default"


def test_sampling_rate_shorthand(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, "[telemetry]\nsampling_rate = 0.5\n"), env={})
    assert loaded.settings.sampling_rate == 0.5
    lines = [line.strip() for line in loaded.plan.sampler.describe()]
    assert lines[0].startswith("parent_based") and lines[1] == "ratio(rate=0.5, precision=4)"


def test_defaults_when_table_is_empty(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, "[telemetry]\n"), env={}, resolve_plugins=False)
    assert s.enabled and s.batch_size == 512 and s.sampling_rate is None
    assert s.source_of("batch_size") == "default"


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("${NAME}", {"NAME": "svc"}, "svc"),
        ("pre-${NAME}-post", {"NAME": "svc"}, "pre-svc-post"),
        ("${NAME:-fallback}", {}, "fallback"),
        ("${NAME:-fallback}", {"NAME": ""}, "fallback"),
        ("${NAME:-fallback}", {"NAME": "set"}, "set"),
        ("${NAME:-}", {}, ""),
        ("cost $$5", {}, "cost $5"),
        ("$${NAME}", {"NAME": "svc"}, "${NAME}"),
        ("${NAME:-$$5}", {}, "$5"),
        ("${NAME}", {"NAME": "${OTHER}"}, "${OTHER}"),  # values are not substituted again
    ],
)
def test_substitution(tmp_path: Path, value: str, env: dict[str, str], expected: str) -> None:
    path = write(tmp_path, f"[telemetry]\nenvironment = '{value}'\n")
    s = load_settings(path, env=env, resolve_plugins=False)
    assert s.environment == expected


def test_substitution_cannot_inject_structure(tmp_path: Path) -> None:
    evil = '"]\n[x]\nbatch_size = 0\n[telemetry]\nbackend = "nope'
    path = write(tmp_path, '[telemetry]\nservice_name = "${EVIL}"\nbatch_size = 8\n')
    s = load_settings(path, env={"EVIL": evil})
    assert s.service_name == evil
    assert s.batch_size == 8 and s.backend == "local"


def test_substitution_in_nested_tables_and_arrays(tmp_path: Path) -> None:
    text = (
        '[telemetry]\nheaders = { authorization = "Bearer ${TOKEN}" }\n'
        '[telemetry.plugins]\ndisable = ["${OFF}"]\n'
    )
    s = load_settings(write(tmp_path, text), env={"TOKEN": "abc", "OFF": "memory"})
    assert s.header_values() == {"authorization": "Bearer abc"}
    assert s.plugins.disable == ["memory"]


def test_precedence_argument_env_sfumato_otel_file_default(tmp_path: Path) -> None:
    path = write(tmp_path, '[telemetry]\nservice_name = "from-file"\nbatch_size = 10\n')
    assert load_settings(path, env={}).service_name == "from-file"
    env = {"OTEL_SERVICE_NAME": "from-otel"}
    s = load_settings(path, env=env)
    assert s.service_name == "from-otel"
    assert s.source_of("service_name") == "env:OTEL_SERVICE_NAME"
    env["SFUMATO_SERVICE_NAME"] = "from-sfumato"
    s = load_settings(path, env=env)
    assert s.service_name == "from-sfumato"
    assert s.source_of("service_name") == "env:SFUMATO_SERVICE_NAME"
    s = load_settings(path, env=env, service_name="from-argument")
    assert s.service_name == "from-argument" and s.source_of("service_name") == "argument"
    # Untouched keys keep their own sources.
    assert (s.batch_size, s.source_of("batch_size")) == (10, "file")
    assert (s.max_queue_size, s.source_of("max_queue_size")) == (16_384, "default")


def test_sfumato_nested_and_typed_variables(tmp_path: Path) -> None:
    path = write(tmp_path, "[telemetry]\n[telemetry.metrics]\nenabled = true\n")
    env = {"SFUMATO_METRICS__ENABLED": "false", "SFUMATO_BATCH_SIZE": "32", "SFUMATO_DEBUG": "1"}
    s = load_settings(path, env=env, resolve_plugins=False)
    assert s.metrics.enabled is False and s.batch_size == 32
    assert s.source_of("metrics.enabled") == "env:SFUMATO_METRICS__ENABLED"


def test_empty_sfumato_variable_counts_as_unset(tmp_path: Path) -> None:
    path = write(tmp_path, "[telemetry]\nbatch_size = 7\n")
    assert (
        load_settings(path, env={"SFUMATO_BATCH_SIZE": ""}, resolve_plugins=False).batch_size == 7
    )


@pytest.mark.parametrize("value", ["true", "TRUE", "True"])
def test_otel_sdk_disabled(tmp_path: Path, value: str) -> None:
    path = write(tmp_path, "[telemetry]\nenabled = true\n")
    loaded = load_config(path, env={"OTEL_SDK_DISABLED": value})
    s = loaded.settings
    assert s.enabled is False and loaded.plan is None
    assert s.source_of("enabled") == "env:OTEL_SDK_DISABLED"
    # SFUMATO_ENABLED is more specific and wins.
    assert load_settings(path, env={"OTEL_SDK_DISABLED": value, "SFUMATO_ENABLED": "1"}).enabled


def test_otel_sdk_disabled_false_changes_nothing(tmp_path: Path) -> None:
    path = write(tmp_path, "[telemetry]\n")
    assert load_settings(path, env={"OTEL_SDK_DISABLED": "false"}).enabled is True


def test_otlp_headers_are_url_decoded_and_merged(tmp_path: Path) -> None:
    path = write(tmp_path, '[telemetry]\nheaders = { "x-team" = "bots", authorization = "old" }\n')
    env = {"OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20abc%3D%3D,x-extra=a%2Cb"}
    s = load_settings(path, env=env)
    assert s.header_values() == {
        "x-team": "bots",
        "authorization": "Bearer abc==",
        "x-extra": "a,b",
    }
    assert s.source_of("headers.x-team") == "file"
    assert s.source_of("headers.authorization") == "env:OTEL_EXPORTER_OTLP_HEADERS"


def test_resource_attributes_merge(tmp_path: Path) -> None:
    path = write(tmp_path, '[telemetry.resource]\nregion = "eu"\nteam = "bots"\n')
    env = {"OTEL_RESOURCE_ATTRIBUTES": "region=us,deployment.environment=prod"}
    s = load_settings(path, env=env)
    assert s.resource == {"region": "us", "team": "bots", "deployment.environment": "prod"}
    assert s.source_of("resource.team") == "file"
    assert s.source_of("resource.region") == "env:OTEL_RESOURCE_ATTRIBUTES"


def test_replacing_table_forgets_old_sources(tmp_path: Path) -> None:
    path = write(tmp_path, '[telemetry.resource]\nregion = "eu"\n')
    s = load_settings(path, env={"SFUMATO_RESOURCE": "region=us"})
    assert s.resource == {"region": "us"}
    assert s.source_of("resource.region") == "env:SFUMATO_RESOURCE"


def test_otel_endpoint_and_protocol(tmp_path: Path) -> None:
    path = write(tmp_path, '[telemetry]\nbackend = "otlp"\n')
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    }
    loaded = load_config(path, env=env)
    s = loaded.settings
    assert (s.otlp_endpoint, s.protocol) == ("http://collector:4318", "http/protobuf")
    assert [n.name for n in loaded.plan.exporters] == ["otlp-http"]


def test_sfumato_config_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, '[telemetry]\nservice_name = "via-env"\n')
    s = load_settings(env={"SFUMATO_CONFIG": str(path)}, resolve_plugins=False)
    assert s.service_name == "via-env" and s.path == str(path)


def test_no_telemetry_table_means_disabled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, '[app]\nname = "bot"\n')
    loaded = load_config(path, env={})
    assert loaded.settings.enabled is False and loaded.plan is None
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "no [telemetry] table" in out and "disabled" in out


def test_error_from_env_names_the_variable(tmp_path: Path) -> None:
    path = write(tmp_path, "[telemetry]\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={"SFUMATO_BATCH_SIZE": "many"})
    assert str(info.value).startswith(
        "environment variable SFUMATO_BATCH_SIZE: telemetry.batch_size:"
    )
    assert "'many'" in str(info.value)


@pytest.mark.parametrize(
    ("views", "message"),
    [
        ('[telemetry.metrics.views."http.*"]\nname = "renamed"\n', "wildcard"),
        ('[telemetry.metrics.views."latency"]\nbuckets = [0.0, inf]\n', "finite"),
        ('[telemetry.metrics.views."latency"]\nbuckets = [nan]\n', "finite"),
    ],
    ids=["wildcard-with-name", "infinite-bucket", "nan-bucket"],
)
def test_a_view_the_sdk_would_refuse_is_a_config_error(
    views: str, message: str, tmp_path: Path
) -> None:
    path = tmp_path / "app.toml"
    path.write_text('[telemetry]\nbackend = "none"\n' + views)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    assert "telemetry.metrics.views" in str(caught.value) and message in str(caught.value)
