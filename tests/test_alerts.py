"""``sfumato alerts --format prometheus``: rules promtool accepts, that fire on the series the
OpenTelemetry Prometheus exporter really exposes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
import sfumato
from receivers import require
from sfumato import load_settings
from sfumato.alerts import prometheus_expr, prometheus_name
from sfumato.cli import main
from sfumato.plugins.botticelli.cli import instruments
from sfumato.plugins.botticelli.demo import bundled_config
from sfumato.plugins.botticelli.simulator import SimulationConfig, run
from sfumato.plugins.http import endpoints
from sfumato.settings import HealthRule

PROMTOOL = "/usr/bin/promtool"


def promtool() -> str:
    found = PROMTOOL if os.path.exists(PROMTOOL) else shutil.which("promtool")
    return require(found, "promtool (apt-get install prometheus)")


def render(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    out = tmp_path / "rules.yml"
    assert main(["alerts", "--format", "prometheus", str(bundled_config()), "-o", str(out)]) == 0
    capsys.readouterr()
    return out


def test_promtool_accepts_the_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tool = promtool()
    rules = render(tmp_path, capsys)
    check = subprocess.run(
        [tool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 4 rules found" in check.stdout


def test_rules_fire_on_the_exposed_series(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tool = promtool()
    render(tmp_path, capsys)
    rules = {r.name: r for r in load_settings(bundled_config()).http.health}
    generation, slow = rules["GenerationFailureRate"], rules["SlowDatabaseQuery"]

    def expected(rule: HealthRule, value: str) -> str:
        description = f"{rule.kind} of {rule.metric} over {rule.window}, threshold {rule.threshold}"
        return json.dumps({"summary": rule.summary, "description": f"{description}; value {value}"})

    # 2 failures a minute out of 10 runs: 20% > 10%. One query a minute, the last ones slow.
    unit_test = f"""rule_files:
  - rules.yml
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'bot_generation_runs_total{{outcome="failure",topic="art"}}'
        values: '0+2x10'
      - series: 'bot_generation_runs_total{{outcome="success",topic="art"}}'
        values: '0+8x10'
      - series: 'database_query_duration_seconds_count{{operation="select"}}'
        values: '0+1x20'
      - series: 'database_query_duration_seconds_bucket{{operation="select",le="1.0"}}'
        values: '0+1x10 10x10'
    alert_rule_test:
      - eval_time: 10m
        alertname: GenerationFailureRate
        exp_alerts:
          - exp_labels: {{severity: warning}}
            exp_annotations: {expected(generation, "0.2")}
      - eval_time: 10m
        alertname: SlowDatabaseQuery
        exp_alerts: []
      - eval_time: 20m
        alertname: SlowDatabaseQuery
        exp_alerts:
          - exp_labels: {{severity: warning}}
            exp_annotations: {expected(slow, "5")}
"""
    (tmp_path / "test.yml").write_text(unit_test)
    result = subprocess.run(
        [tool, "test", "rules", "test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_series_names_match_a_real_scrape() -> None:
    import prometheus_client  # noqa: F401  (the prometheus extra, part of .[dev]: never skipped)

    handle = sfumato.configure(
        backend="none", logs={"enabled": False}, http={"enabled": True, "port": 0}
    )
    try:
        server = endpoints(handle)
        assert server is not None
        run(SimulationConfig(seed=2, narratives=30, act_cpu_ms=0.02, posting_failure_rate=0.5))
        with urllib.request.urlopen(f"{server.url}/metrics", timeout=5) as response:
            text = response.read().decode()
    finally:
        handle.shutdown()
    exposed = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1] != "#"}
    known = instruments()
    for rule in load_settings(bundled_config()).http.health:
        base, kind = prometheus_name(rule, known)
        wanted = {f"{base}_count", f"{base}_bucket"} if kind == "histogram" else {f"{base}_total"}
        assert wanted <= exposed, (rule.name, wanted)
        for series in wanted:
            assert series in prometheus_expr(rule, known)


def test_no_rules_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "app.toml"
    config.write_text('[telemetry]\nservice_name = "x"\n')
    assert main(["alerts", str(config)]) == 1
    assert "no [[telemetry.http.health]] rules" in capsys.readouterr().err
