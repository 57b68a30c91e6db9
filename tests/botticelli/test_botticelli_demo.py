"""``sfumato demo``: every simulated failure is kept, and the weights of what the store holds
estimate the true narrative counts within a binomial tolerance."""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path

import pytest
from sfumato.cli import main
from sfumato.plugins.botticelli.simulator import SimulationConfig
from sfumato.plugins.botticelli.simulator import run as simulate
from sfumato.plugins.botticelli.verdict import NARRATIVE_NAMES, configured_rates
from sfumato.plugins.local.store import Store

N = 150
SEED = 3


def test_demo_keeps_every_failure_and_estimates_true_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code = main(["demo", "--narratives", str(N), "--seed", str(SEED)])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert f"{N}/{N} bot runs" in err  # the progress bar's last line
    kept, total = map(int, re.search(r"(\d+) of (\d+) failed traces kept", out).groups())  # type: ignore[union-attr]
    assert total > 0 and kept == total
    assert "verdict: OK" in out

    # Check independently: the same seed without telemetry gives the true counts, and the
    # store the demo wrote is read back here.
    from sfumato import load_settings
    from sfumato.plugins.botticelli.demo import _demo_table, bundled_config

    options = {**_demo_table(bundled_config()), "narratives": N, "seed": SEED}
    truth = simulate(SimulationConfig.model_validate({**options, "record_metrics": False}))
    spans = list(Store(tmp_path / ".sfumato" / "demo").spans())
    kept_error_traces = {s.trace_id for s in spans if s.is_error}
    assert truth.failed_trace_ids, "the run must contain failures"
    assert len(truth.failures) == total

    roots = [s for s in spans if s.name in NARRATIVE_NAMES]
    assert len(roots) < truth.narratives  # something was sampled out
    failed_kept: Counter[str] = Counter(NARRATIVE_NAMES[s.name] for s in roots if s.is_error)
    assert failed_kept == truth.failed_by_type
    assert len(kept_error_traces) >= len({f.trace_id for f in truth.failures})

    rates, default = configured_rates(load_settings(bundled_config()).sampler)
    estimated: Counter[str] = Counter()
    for span in roots:
        estimated[NARRATIVE_NAMES[span.name]] += span.adjusted_count  # type: ignore[assignment]
    for kind, true_count in truth.narratives_by_type.items():
        rate = rates.get(kind, default)
        assert rate is not None
        successes = true_count - truth.failed_by_type[kind]
        sd = math.sqrt(successes * (1 - rate) / rate)
        assert abs(estimated[kind] - true_count) <= 4 * sd + 1, (kind, estimated, true_count)


def test_demo_under_a_config_without_the_local_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "demo.toml"
    config.write_text(
        "[demo]\nseed = 1\njson_failure_rate = 0.1\nact_cpu_ms = 0.05\n\n"
        '[telemetry]\nbackend = "none"\nservice_name = "d"\n[telemetry.logs]\nenabled = false\n'
        '[telemetry.sampler]\ntype = "error-always"\n'
        '[telemetry.sampler.otherwise]\ntype = "ratio"\nrate = 0.5\n'
    )
    code = main(["demo", "--config", str(config), "--narratives", "60"])
    out, _ = capsys.readouterr()
    assert code == 0, out
    kept, total = map(int, re.search(r"(\d+) of (\d+) failed traces kept", out).groups())  # type: ignore[union-attr]
    assert total > 0 and kept == total
    assert not (tmp_path / ".sfumato").exists()
