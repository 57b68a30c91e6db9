"""Backend presets: which exporters, endpoints, headers and signals each one plans."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import sfumato
from sfumato import ConfigError
from sfumato._loading import load_config


def plan_of(env: dict[str, str] | None = None, **overrides: Any) -> Any:
    """The plan of settings loaded with ``env`` as the whole environment (secrets too)."""
    return load_config(None, env=env or {}, **overrides).plan


def uses(plan: Any) -> list[tuple[str, list[str], dict[str, Any]]]:
    out = []
    for node in plan.exporters:
        options = node.options.model_dump()
        headers = (
            {k: v.get_secret_value() for k, v in node.options.headers.items()}
            if "headers" in options
            else {}
        )
        options["headers"] = headers
        out.append((node.name, sorted(node.signals), options))
    return out


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (
        "GRAFANA_CLOUD_INSTANCE_ID",
        "GRAFANA_CLOUD_API_KEY",
        "HONEYCOMB_API_KEY",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_none_exports_nothing_and_gives_no_notice() -> None:
    plan = plan_of(backend="none")
    assert plan.exporters == []
    assert plan.notices == []


def test_none_still_takes_extra_exporters() -> None:
    plan = plan_of(backend="none", exporters=[{"type": "memory"}])
    assert [(n.name, sorted(n.signals)) for n in plan.exporters] == [
        ("memory", ["logs", "metrics", "traces"])
    ]


def test_jaeger_takes_traces_only_with_one_notice() -> None:
    plan = plan_of(backend="jaeger")
    [(name, signals, options)] = uses(plan)
    assert (name, signals, options["endpoint"]) == (
        "otlp-grpc",
        ["traces"],
        "http://localhost:4317",
    )
    assert len(plan.notices) == 1
    assert "metrics and logs switched off" in plan.notices[0]
    assert plan.signals == frozenset({"traces"})


def test_jaeger_notice_names_only_what_is_enabled() -> None:
    plan = plan_of(backend="jaeger", logs={"enabled": False})
    assert plan.notices == ["backend 'jaeger' takes traces only: metrics switched off for it"]
    assert (
        plan_of(backend="jaeger", logs={"enabled": False}, metrics={"enabled": False}).notices == []
    )


def test_jaeger_follows_protocol_and_endpoint_overrides() -> None:
    [(name, _, options)] = uses(plan_of(backend="jaeger", protocol="http/protobuf"))
    assert (name, options["endpoint"]) == ("otlp-http", "http://localhost:4318")
    [(name, _, options)] = uses(
        plan_of(backend="jaeger", otlp_endpoint="http://jaeger:4317", insecure=True)
    )
    assert (name, options["endpoint"]) == ("otlp-grpc", "http://jaeger:4317")
    [(_, _, options)] = uses(
        plan_of(
            backend="jaeger",
            otlp_endpoint="http://a:1",
            backend_options={"endpoint": "http://b:2"},
            insecure=True,
        )
    )
    assert options["endpoint"] == "http://b:2"


def test_signoz_takes_all_three_signals() -> None:
    plan = plan_of(backend="signoz")
    assert uses(plan) == [
        (
            "otlp-grpc",
            ["logs", "metrics", "traces"],
            {**uses(plan)[0][2], "endpoint": "http://localhost:4317"},
        )
    ]
    assert plan.notices == []


def test_signoz_cloud_ingestion_key_from_environment(clean_env: pytest.MonkeyPatch) -> None:
    env = {"SIGNOZ_KEY": "sz-secret"}
    plan = plan_of(env=env, backend="signoz", backend_options={"ingestion_key_env": "SIGNOZ_KEY"})
    [(_, _, options)] = uses(plan)
    assert options["headers"] == {"signoz-ingestion-key": "sz-secret"}
    assert "sz-secret" not in repr(plan.exporters)


def test_backend_options_are_validated_by_the_backend_model() -> None:
    with pytest.raises(ConfigError) as info:
        plan_of(backend="jaeger", backend_options={"endpont": "http://x:1"})
    assert "telemetry.backend_options" in str(info.value)
    assert "did you mean 'endpoint'" in str(info.value)


def test_grafana_cloud_basic_auth_from_environment(clean_env: pytest.MonkeyPatch) -> None:
    env = {"GRAFANA_CLOUD_INSTANCE_ID": "123456", "GRAFANA_CLOUD_API_KEY": "glc_s3cr3t"}
    plan = plan_of(env=env, backend="grafana-cloud", backend_options={"zone": "prod-eu-west-2"})
    [(name, signals, options)] = uses(plan)
    assert (name, signals) == ("otlp-http", ["logs", "metrics", "traces"])
    assert options["endpoint"] == "https://otlp-gateway-prod-eu-west-2.grafana.net/otlp"
    scheme, _, encoded = options["headers"]["Authorization"].partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == "123456:glc_s3cr3t"
    assert "glc_s3cr3t" not in repr(plan.exporters)
    assert encoded not in repr(plan.exporters)


def test_grafana_cloud_variable_names_from_backend_options(clean_env: pytest.MonkeyPatch) -> None:
    env = {"MY_STACK": "77", "MY_TOKEN": "tok"}
    plan = plan_of(
        env=env,
        backend="grafana-cloud",
        otlp_endpoint="https://otlp-gateway-prod-us-east-0.grafana.net/otlp",
        backend_options={"instance_id_env": "MY_STACK", "token_env": "MY_TOKEN"},
    )
    [(_, _, options)] = uses(plan)
    assert options["endpoint"] == "https://otlp-gateway-prod-us-east-0.grafana.net/otlp"
    assert base64.b64decode(options["headers"]["Authorization"][6:]) == b"77:tok"


@pytest.mark.parametrize("missing", ["GRAFANA_CLOUD_INSTANCE_ID", "GRAFANA_CLOUD_API_KEY"])
def test_grafana_cloud_missing_variable_is_named(
    clean_env: pytest.MonkeyPatch, missing: str
) -> None:
    env = {"GRAFANA_CLOUD_INSTANCE_ID": "123456", "GRAFANA_CLOUD_API_KEY": "glc_s3cr3t"}
    del env[missing]
    with pytest.raises(ConfigError) as info:
        plan_of(env=env, backend="grafana-cloud", backend_options={"zone": "prod-eu-west-2"})
    assert missing in str(info.value)
    assert "glc_s3cr3t" not in str(info.value)


def test_grafana_cloud_needs_a_gateway(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="zone"):
        plan_of(backend="grafana-cloud")


def test_grafana_cloud_always_speaks_http_and_says_so(clean_env: pytest.MonkeyPatch) -> None:
    env = {"GRAFANA_CLOUD_INSTANCE_ID": "1", "GRAFANA_CLOUD_API_KEY": "t"}
    plan = plan_of(
        env=env,
        backend="grafana-cloud",
        protocol="grpc",
        backend_options={"zone": "prod-eu-west-2"},
    )
    assert [u[0] for u in uses(plan)] == ["otlp-http"]
    assert any("http/protobuf" in n for n in plan.notices)


def test_honeycomb_team_header_and_dataset_for_metrics(clean_env: pytest.MonkeyPatch) -> None:
    env = {"HONEYCOMB_API_KEY": "hc-key"}
    plan = plan_of(
        env=env, backend="honeycomb", service_name="bot", backend_options={"dataset": "bot-metrics"}
    )
    by_signal = {s: (name, options) for name, signals, options in uses(plan) for s in signals}
    assert set(by_signal) == {"traces", "metrics", "logs"}
    for signal in ("traces", "logs"):
        name, options = by_signal[signal]
        assert (name, options["endpoint"]) == ("otlp-grpc", "https://api.honeycomb.io:443")
        assert options["headers"] == {"x-honeycomb-team": "hc-key"}
    assert by_signal["metrics"][1]["headers"] == {
        "x-honeycomb-team": "hc-key",
        "x-honeycomb-dataset": "bot-metrics",
    }
    assert "hc-key" not in repr(plan.exporters)


def test_honeycomb_defaults_dataset_to_service_and_speaks_http_when_asked(
    clean_env: pytest.MonkeyPatch,
) -> None:
    env = {"HONEYCOMB_API_KEY": "k"}
    plan = plan_of(
        env=env,
        backend="honeycomb",
        service_name="bot",
        protocol="http/protobuf",
        backend_options={"region": "eu"},
    )
    names = {
        (name, options["endpoint"], options["headers"].get("x-honeycomb-dataset"))
        for name, _, options in uses(plan)
    }
    assert names == {
        ("otlp-http", "https://api.eu1.honeycomb.io", None),
        ("otlp-http", "https://api.eu1.honeycomb.io", "bot"),
    }


def test_honeycomb_missing_key_is_named(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="HONEYCOMB_API_KEY"):
        plan_of(backend="honeycomb")


def test_prometheus_backend_is_metrics_only_on_loopback() -> None:
    plan = plan_of(backend="prometheus")
    [(name, signals, options)] = uses(plan)
    assert (name, signals) == ("prometheus", ["metrics"])
    assert (options["host"], options["port"]) == ("127.0.0.1", 9464)
    assert plan.notices == [
        "backend 'prometheus' takes metrics only: traces and logs switched off for it"
    ]


def test_backends_read_from_a_file(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("HONEYCOMB_API_KEY", "k")
    path = tmp_path / "app.toml"
    path.write_text(
        '[telemetry]\nservice_name = "bot"\nbackend = "honeycomb"\n\n'
        '[telemetry.backend_options]\ndataset = "m"\nregion = "eu"\n'
    )
    assert load_config(path).plan.backend_options.dataset == "m"
    path.write_text(
        '[telemetry]\nbackend = "honeycomb"\n\n[telemetry.backend_options]\nregion = "mars"\n'
    )
    with pytest.raises(ConfigError) as info:
        sfumato.load_settings(path)
    assert "region" in str(info.value)
    assert "app.toml" in str(info.value)


def test_secrets_come_from_the_environment_the_settings_were_loaded_from(
    clean_env: pytest.MonkeyPatch,
) -> None:
    # load_settings(env=...) is the whole environment: the process's is not consulted.
    clean_env.setenv("HONEYCOMB_API_KEY", "from-the-process")
    plan = plan_of(env={"HONEYCOMB_API_KEY": "given"}, backend="honeycomb")
    assert {u[2]["headers"]["x-honeycomb-team"] for u in uses(plan)} == {"given"}
    with pytest.raises(ConfigError, match="HONEYCOMB_API_KEY"):
        plan_of(env={}, backend="honeycomb")
    # Without env=, the process environment.
    plan = load_config(None, backend="honeycomb").plan
    assert {u[2]["headers"]["x-honeycomb-team"] for u in uses(plan)} == {"from-the-process"}
