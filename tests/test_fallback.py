"""The SDK's own path (``SFUMATO_OTEL_FALLBACK=1``, as when the installed SDK differs from
the shape sfumato's fast path relies on) is correct: a representative part of the suite runs
on it, and ``configure()``, ``stats()`` and ``doctor`` say it is in use."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import textwrap

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Samplers and the tail stage, the Botticelli helpers, metrics, the handle's lifecycle and
# re-configuration, the span API's promises (nothing raises, bad arguments are mended):
# everything the fast path shortens, run on the SDK's path.
SUBSET = (
    "tests/samplers",
    "tests/botticelli",
    "tests/test_series.py",
    "tests/test_metrics_api.py",
    "tests/test_lifecycle.py",
    "tests/test_reconfigure.py",
    "tests/test_logs.py",
    "tests/test_otel_internals.py",
    "tests/test_tracer.py",
)


_CLI = "import sys; from sfumato.cli import main; sys.exit(main(sys.argv[1:]))"


def _fallback_env() -> dict[str, str]:
    return {**os.environ, "SFUMATO_OTEL_FALLBACK": "1"}


def test_a_representative_part_of_the_suite_passes_on_the_sdk_path() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *SUBSET],
        cwd=ROOT,
        env=_fallback_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed is not None and int(passed.group(1)) >= 150, summary
    assert "skipped" not in summary, summary  # nothing skips: the fast path's own are not run
    # The run was on the SDK's path: the tests of the fast path itself were deselected.
    deselected = re.search(r"(\d+) deselected", summary)
    assert deselected is not None and int(deselected.group(1)) >= 5, summary


def test_configure_builds_the_sdk_provider_and_says_so() -> None:
    script = textwrap.dedent(
        """
        import logging, sys
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
        import sfumato
        from opentelemetry import trace
        from opentelemetry.sdk import trace as sdk_trace
        from opentelemetry.trace import Status, StatusCode
        from sfumato import _otel

        assert not _otel.FAST and _otel.FORCED
        telemetry = sfumato.configure(
            service_name="fallback",
            backend="none",
            exporters=[{"type": "memory"}],
            sampler={"type": "error-always"},
        )
        provider = telemetry.tracer_provider
        assert isinstance(provider, sdk_trace.TracerProvider)
        assert type(provider).__name__ == "SdkTracerProvider", type(provider)
        tracer = trace.get_tracer("fallback")
        # The SDK's tracer, held to sfumato's promises (nothing raises, arguments mended).
        assert type(tracer).__name__ == "SafeTracer", type(tracer)
        assert type(tracer.tracer) is sdk_trace.Tracer, type(tracer.tracer)
        with tracer.start_as_current_span("quiet"):
            with tracer.start_as_current_span("child"):
                pass
        with tracer.start_as_current_span("failing"):
            with tracer.start_as_current_span("child") as child:
                child.set_status(Status(StatusCode.ERROR))
        telemetry.force_flush(5)
        names = sorted(s.name for s in telemetry.exporter("memory").get_finished_spans())
        stats = telemetry.stats()
        telemetry.shutdown()
        print(names, stats["sdk_path"])
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=_fallback_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip() == "['child', 'failing'] 1"
    assert "the SDK's own span and metric path is in use" in run.stderr


def test_doctor_names_the_path_in_use(tmp_path: pathlib.Path) -> None:
    config = tmp_path / "sfumato.toml"
    config.write_text('[telemetry]\nservice_name = "svc"\nbackend = "none"\n', encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-c", _CLI, "doctor", str(config)],
        cwd=tmp_path,
        env=_fallback_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "the SDK's own span and metric path" in run.stdout, run.stdout + run.stderr
    assert "SFUMATO_OTEL_FALLBACK" in run.stdout
