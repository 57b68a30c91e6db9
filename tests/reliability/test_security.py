"""Security: a canary secret never leaves sfumato except on the wire to the backend; local
endpoints are loopback unless asked; config cannot import code when told not to; the
cardinality guard holds against attacker-chosen attribute values.

Covered elsewhere, and not repeated here: certificate verification on by default and off only
with ``insecure`` (tests/test_otlp_export.py), the Prometheus and health endpoints' loopback
default and all-interfaces warning (tests/test_prometheus_exporter.py,
tests/botticelli/test_botticelli_health.py), ``${VAR}`` values that cannot add TOML structure
(tests/test_config.py), ``sfumato show`` and ``set`` redaction (tests/test_cli.py).
"""

from __future__ import annotations

import base64
import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sfumato
from receivers import free_port
from sfumato import ConfigError, load_settings
from sfumato._loading import load_config

CANARY = "CANARY-b41c7e"
INSTANCE = "123456"


def _forms(secret: str) -> list[str]:
    """The canary, and the encodings it may take on its way out (basic auth is base64)."""
    basic = base64.b64encode(f"{INSTANCE}:{secret}".encode()).decode()
    return [secret, basic, basic[:-2], secret.encode().hex()]


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("SFUMATO_", "OTEL_"))}


CONFIG = f"""
[server]
port = 8080

[telemetry]
service_name = "secret-test"
backend = "otlp"
protocol = "http/protobuf"
otlp_endpoint = "http://user:{CANARY}-url@127.0.0.1:{{port}}"
headers = {{ authorization = "Bearer {CANARY}-file" }}
export_timeout_ms = 300
shutdown_timeout_ms = 1000

[[telemetry.exporters]]
type = "otlp-grpc"
endpoint = "http://127.0.0.1:{{port}}"
signals = ["traces"]
headers = {{ "x-api-key" = "{CANARY}-exporter" }}
"""

SCRIPT = f"""
import logging, sys, traceback
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)  # every logger, DEBUG and up
import sfumato
from sfumato import ConfigError

def attempt(**kwargs):
    try:
        t = sfumato.configure(**kwargs)
    except ConfigError as exc:
        print("ConfigError:", exc, repr(exc))
        traceback.print_exc()
        return
    print(repr(t), repr(t.settings), repr(t.plan), t.stats())
    for key in ("headers", "backend_options", "exporters"):
        print(key, repr(getattr(t.settings, key)))
    with t.tracer().start_as_current_span("s", attributes={{"k": "v"}}):
        logging.getLogger("app").info("inside a span")
    t.force_flush(0.5)
    t.shutdown(1.0)

# 1. the file (headers, basic auth in the URL, an exporter's headers) + OTEL_* headers
attempt(path=sys.argv[1])
# 2. grafana-cloud: instance and token from the environment, sent as basic auth
attempt(service_name="g", backend="grafana-cloud",
        backend_options={{"endpoint": "http://127.0.0.1:{{port}}"}},
        export_timeout_ms=300, shutdown_timeout_ms=1000)
# 3. honeycomb: team key from the environment
attempt(service_name="h", backend="honeycomb", otlp_endpoint="http://127.0.0.1:{{port}}",
        export_timeout_ms=300, shutdown_timeout_ms=1000)
# 4. a secret where a table is expected, and in a bad header value type
attempt(service_name="x", backend="otlp", headers="Bearer {CANARY}-wrong-type")
attempt(service_name="x", backend="otlp", headers={{"authorization": ["{CANARY}-list"]}})
attempt(service_name="x", backend="otlp", otlp_endpoint="ftp://u:{CANARY}-scheme@host")
"""


def test_a_canary_secret_appears_in_no_output(tmp_path: Path) -> None:
    port = free_port()  # nothing listens: every export fails and is logged
    config = tmp_path / "app.toml"
    config.write_text(CONFIG.replace("{port}", str(port)))
    env = _clean_env()
    env.update(
        OTEL_EXPORTER_OTLP_HEADERS=f"x-env={CANARY}-env",
        GRAFANA_CLOUD_INSTANCE_ID=INSTANCE,
        GRAFANA_CLOUD_API_KEY=f"{CANARY}",
        HONEYCOMB_API_KEY=f"{CANARY}-honeycomb",
        SFUMATO_DEBUG="1",
    )
    outputs: list[str] = []
    script = tmp_path / "run.py"
    script.write_text(SCRIPT.replace("{port}", str(port)))
    result = subprocess.run(
        [sys.executable, str(script), str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outputs.append(result.stdout + result.stderr)
    # Proof the run went where the secrets are: the exports failed and said so.
    assert "ConfigError:" in result.stdout and "<Telemetry 'secret-test'" in result.stdout
    assert "DEBUG" in result.stderr and "export" in result.stderr

    # The CLI, with SFUMATO_DEBUG=1 (tracebacks of unexpected failures on).
    broken = tmp_path / "broken.toml"
    broken.write_text(
        f'[telemetry]\nheaders = {{ authorization = "Bearer {CANARY}" }}\nbatch_size = "x"\n'
    )
    sfumato_cli = [sys.executable, "-c", "from sfumato.cli import main; raise SystemExit(main())"]
    for argv in (
        ["show", str(config)],
        ["show", str(config), "--json"],
        ["validate", str(config)],
        ["validate", str(broken)],
        ["doctor", str(config)],
        ["plugins", "--check"],
    ):
        run = subprocess.run(
            [*sfumato_cli, *argv], capture_output=True, text=True, env=env, timeout=60
        )
        outputs.append(f"{argv}: {run.stdout}{run.stderr}")
    everything = "\n".join(outputs)
    assert "***" in everything  # show printed the redacted values
    for form in _forms(CANARY):
        assert form not in everything, f"{form!r} leaked:\n" + _around(everything, form)


def _around(text: str, needle: str) -> str:
    at = text.find(needle)
    return text[max(0, at - 300) : at + 100]


def test_the_canary_does_reach_the_backend(tmp_path: Path) -> None:
    """The other half: the secret is sent where it belongs (so the test above is not green
    merely because no secret was ever loaded)."""
    import http.server
    import threading

    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(self.headers.get("authorization", ""))
            self.rfile.read(int(self.headers.get("content-length", 0)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        telemetry = (
            sfumato.configure(
                service_name="g",
                backend="grafana-cloud",
                backend_options={
                    "endpoint": f"http://127.0.0.1:{server.server_address[1]}",
                    "instance_id": INSTANCE,
                    "token_env": "CANARY_TOKEN_FOR_TEST",
                },
                metrics={"enabled": False},
                logs={"enabled": False},
            )
            if os.environ.setdefault("CANARY_TOKEN_FOR_TEST", CANARY)
            else None
        )
        assert telemetry is not None
        with telemetry.tracer().start_as_current_span("s"):
            pass
        assert telemetry.force_flush(5.0)
        telemetry.shutdown()
    finally:
        os.environ.pop("CANARY_TOKEN_FOR_TEST", None)
        server.shutdown()
    assert seen and seen[0] == "Basic " + _forms(CANARY)[1]


# -- config as a trust boundary --------------------------------------------------------------


@pytest.mark.parametrize(
    "settings",
    [
        {"sampler": {"type": "os:system"}},
        {"exporters": [{"type": "subprocess:Popen"}]},
        {"sampler": {"type": "parent_based", "root": {"type": "builtins:eval"}}},
    ],
    ids=["sampler", "exporter", "nested-sampler"],
)
def test_allow_import_paths_false_forbids_every_dotted_path(
    settings: dict[str, object], tmp_path: Path
) -> None:
    marker = tmp_path / "imported"
    module = tmp_path / "trap_module.py"
    module.write_text(f"open({str(marker)!r}, 'w').close()\nclass Trap: pass\n")
    sys.path.insert(0, str(tmp_path))
    try:
        for entry in (settings, {"sampler": {"type": "trap_module:Trap"}}):
            with pytest.raises(sfumato.ConfigError, match="allow_import_paths"):
                sfumato.load_settings(
                    None, env={}, backend="none", plugins={"allow_import_paths": False}, **entry
                )
        assert not marker.exists(), "the module was imported"
        assert "trap_module" not in sys.modules
    finally:
        sys.path.remove(str(tmp_path))


def test_import_paths_cannot_be_switched_back_on_by_a_lower_precedence_source(
    tmp_path: Path,
) -> None:
    # A deployment that forbids import paths in its file is not overridden by a config
    # fragment: only the environment or arguments (higher precedence) could, by design.
    config = tmp_path / "app.toml"
    config.write_text(
        '[telemetry]\nbackend = "none"\n[telemetry.plugins]\nallow_import_paths = false\n'
        '[telemetry.sampler]\ntype = "os:system"\n'
    )
    with pytest.raises(sfumato.ConfigError, match="allow_import_paths"):
        sfumato.load_settings(config, env={})


# -- the cardinality guard against attacker-chosen values ------------------------------------


def test_attacker_chosen_values_create_a_bounded_number_of_series() -> None:
    from sfumato.plugins.botticelli import BotMetrics

    telemetry = sfumato.configure(
        service_name="cardinality",
        backend="none",
        exporters=[{"type": "memory"}],
        logs={"enabled": False},
    )
    try:
        metrics = BotMetrics(cap=20)
        rng = random.Random(7)
        hostile: list[object] = [
            *(f"topic-{rng.getrandbits(64):x}" for _ in range(20_000)),
            *(rng.getrandbits(62) for _ in range(5_000)),
            *("x" * n for n in range(1, 2_000)),
            *(float(i) / 7 for i in range(2_000)),
            object(),
            "\ud800",
            None,
        ]
        for value in hostile:
            metrics.record_generation(0.1, 5, value, model=str(value)[:40])  # type: ignore[arg-type]
            metrics.record_api_request(0.1, str(value)[:50], status_code=200)
        reader = telemetry.exporter("memory", "metrics")
        data = reader.get_metrics_data()
        series: dict[str, int] = {}
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    series[metric.name] = len(metric.data.data_points)
        guard = metrics.guards["bot.generation.runs"]
    finally:
        telemetry.shutdown()
    assert series["bot.generation.runs"] <= (20 + 1) * (20 + 1)  # topic x model, each capped
    assert series["api.requests"] <= 20 + 1
    assert guard.distinct("topic") == 20
    assert sum(guard.folded().values()) > 20_000


def test_the_config_file_is_read_only_as_data(tmp_path: Path) -> None:
    # Nothing in a config file runs: no ${...} command substitution, no include, no eval.
    marker = tmp_path / "ran"
    config = tmp_path / "app.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [telemetry]
            backend = "none"
            service_name = "$(touch {marker})"
            service_version = "`touch {marker}`"
            [telemetry.resource]
            include = "{tmp_path}/other.toml"
            """
        )
    )
    settings = sfumato.load_settings(config, env={})
    assert settings.service_name == f"$(touch {marker})"
    assert not marker.exists()


@pytest.mark.parametrize(
    "overrides",
    [
        {"backend": "jaeger", "backend_options": {"endpoint": f"https://u:{CANARY}@c.test:4317"}},
        {
            "backend": "none",
            "exporters": [{"type": "otlp-http", "endpoint": f"https://u:{CANARY}@c"}],
        },
        {"backend": "none", "exporters": [{"type": "otlp-grpc", "headers": {"x-key": CANARY}}]},
        {"backend": "otlp", "otlp_endpoint": f"https://u:{CANARY}@c.test:4317"},
    ],
    ids=["backend-option", "exporter-endpoint", "exporter-header", "settings-endpoint"],
)
def test_the_plan_s_repr_shows_no_secret(overrides: dict[str, object]) -> None:
    plan = load_config(None, env={}, **overrides).plan
    assert plan is not None and CANARY not in repr(plan)
    assert "c.test" in repr(plan) or "exporters" in overrides


@pytest.mark.parametrize("value", ["Bearer x\n", "Bearer x\r\nInjected: 1", "a\rb"])
def test_a_header_value_with_a_line_break_is_refused(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, env={}, headers={"authorization": value})
    assert "line break" in str(caught.value) and "Bearer" not in str(caught.value)
    with pytest.raises(ConfigError):
        load_settings(
            None, env={}, backend="none", exporters=[{"type": "otlp-http", "headers": {"a": value}}]
        )


def test_a_value_from_an_environment_variable_is_not_echoed(tmp_path: Path) -> None:
    path = tmp_path / "app.toml"
    # A variable meant for one key, used in another by mistake: its value is not shown.
    path.write_text('[telemetry]\nbatch_size = "${API_TOKEN}"\n')
    env = {"API_TOKEN": f"{CANARY}-token"}
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env=env)
    assert CANARY not in str(caught.value)
    assert "telemetry.batch_size" in str(caught.value) and "${API_TOKEN}" in str(caught.value)
    # show prints where such a value came from, not the value.
    path.write_text('[telemetry]\nbackend = "none"\nenvironment = "${API_TOKEN}"\n')
    loaded = load_config(path, env=env)
    assert loaded.settings.environment == f"{CANARY}-token"
    from sfumato.cli.show import redacted_settings

    shown = redacted_settings(loaded.settings, loaded.plan)
    assert CANARY not in repr(shown) and shown["environment"][0] == "${API_TOKEN}"


def test_a_variable_s_value_in_a_plugin_table_is_not_echoed(tmp_path: Path) -> None:
    path = tmp_path / "app.toml"
    path.write_text(
        '[telemetry]\nbackend = "none"\n[[telemetry.exporters]]\ntype = "otlp-grpc"\n'
        'timeout_ms = "${API_TOKEN}"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={"API_TOKEN": f"{CANARY}-plugin"})
    assert CANARY not in str(caught.value)
    assert "telemetry.exporters[0].timeout_ms" in str(caught.value)
    assert "${API_TOKEN}" in str(caught.value)
