"""``local`` as the default backend, and as an extra exporter, end to end through configure()."""

from __future__ import annotations

import logging
from pathlib import Path

import sfumato
from opentelemetry import metrics as metrics_api
from sfumato._loading import load_config
from sfumato.plugins.local.store import Store, attributes


def test_local_is_the_default_backend() -> None:
    loaded = load_config(None, env={}, service_name="x")
    settings, plan = loaded.settings, loaded.plan
    assert settings.backend == "local"
    [node] = plan.exporters
    assert node.name == "local" and node.signals == {"traces", "metrics", "logs"}
    assert node.options.directory == ".sfumato"


def test_configure_with_the_local_backend_writes_all_three_signals(tmp_path: Path) -> None:
    store = tmp_path / "store"
    telemetry = sfumato.configure(
        None, service_name="e2e", backend="local", backend_options={"directory": str(store)}
    )
    try:
        with telemetry.tracer().start_as_current_span("checkout") as span:
            trace_id = format(span.get_span_context().trace_id, "032x")
            logging.getLogger("e2e.app").warning("payment declined")
        metrics_api.get_meter("e2e").create_counter("orders").add(3)
    finally:
        assert telemetry.shutdown(10) is True  # the periodic reader exports at shutdown
    reader = Store(store)
    [span_record] = list(reader.spans())
    assert (span_record.service, span_record.name, span_record.trace_id) == (
        "e2e",
        "checkout",
        trace_id,
    )
    [logs] = list(reader.requests("logs"))
    records = [r for rl in logs["resourceLogs"] for sl in rl["scopeLogs"] for r in sl["logRecords"]]
    declined = [r for r in records if r["body"] == {"stringValue": "payment declined"}]
    assert declined and declined[0]["traceId"] == trace_id
    points = [
        (m["name"], p.get("asInt"))
        for request in reader.requests("metrics")
        for rm in request["resourceMetrics"]
        if attributes(rm["resource"]["attributes"])["service.name"] == "e2e"
        for sm in rm["scopeMetrics"]
        for m in sm["metrics"]
        if "sum" in m
        for p in m["sum"]["dataPoints"]
    ]
    assert ("orders", "3") in points


def test_local_as_an_extra_exporter_with_its_own_options(tmp_path: Path) -> None:
    main_store, extra = tmp_path / "main", tmp_path / "extra"
    with sfumato.configure(
        None,
        service_name="two",
        backend="local",
        backend_options={"directory": str(main_store)},
        exporters=[
            {
                "type": "local",
                "directory": str(extra),
                "signals": ["traces"],
                "max_file_bytes": "1MiB",
            }
        ],
        metrics={"enabled": False},
        logs={"enabled": False},
    ) as telemetry:
        telemetry.tracer().start_span("both").end()
    assert [s.name for s in Store(main_store).spans()] == ["both"]
    assert [s.name for s in Store(extra).spans()] == ["both"]
    assert sorted(p.name for p in extra.iterdir()) == ["traces.jsonl"]
