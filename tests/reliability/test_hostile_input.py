"""Hostile input: any TOML document, table or environment gives valid settings or a
ConfigError, never another exception; very large, deeply nested and binary files, symlink
loops and unreadable files are ConfigErrors; fuzzed attribute values and types go through
samplers, processors and exporters (OTLP encoding, the local store's JSON, the console)
without an exception reaching the application.

The property tests run 500 examples each (``settings(max_examples=500)``), deterministically
(``derandomize``), so CI runs the same examples every time.
"""

from __future__ import annotations

import io
import json
import os
import string
import time
from pathlib import Path
from typing import Any

import pytest
import sfumato
import tomlkit
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from receivers import missing
from sfumato import ConfigError
from sfumato._loading import MAX_CONFIG_BYTES, load_settings, settings_from_text
from sfumato.settings import Settings

PROPERTY = settings(
    max_examples=500,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Real keys (so that examples get past "unknown key" into type and range checks), nested
# tables' keys, and the sampler/exporter/backend names installed.
KEYS = [
    *sorted(Settings.model_fields),
    "type", "rate", "root", "otherwise", "signals", "endpoint", "headers", "level",
    "enabled", "port", "host", "buckets", "disable", "allow_import_paths", "path", "x",
]  # fmt: skip
NAMES = [
    "ratio", "parent_based", "always_on", "error-always", "per-narrative-type", "memory",
    "console", "otlp", "otlp-grpc", "local", "none", "stdout", "prometheus", "jaeger",
    "os:system", "sfumato._loading:load_settings", "no.such:thing", "",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(NAMES),
    st.text(max_size=30),
    st.sampled_from(["${HOME}", "${UNSET_VAR}", "${X:-1}", "$$", "${", "${A:-${B}}", "$"]),
)
keys = st.one_of(st.sampled_from(KEYS), st.text(min_size=1, max_size=12))
tables = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=20,
)
telemetry_tables = st.dictionaries(keys, tables, max_size=8)


def _only_config_errors(call: Any) -> Settings | None:
    try:
        result: Settings = call()
        return result
    except ConfigError as exc:
        # One line per problem: no value from the file can break a line.
        lines = [str(problem) for problem in exc.problems]
        assert all(line and "\n" not in line for line in lines), lines
        assert str(exc) == "\n".join(lines)
        return None


def _toml(table: dict[str, Any]) -> str | None:
    """``table`` as the [telemetry] table of a TOML document, when TOML can hold it."""
    try:
        return tomlkit.dumps({"telemetry": _without_none(table)})
    except Exception:
        return None


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value if v is not None]
    return value


@PROPERTY
@given(telemetry_tables)
def test_any_table_gives_settings_or_a_config_error(table: dict[str, Any]) -> None:
    text = _toml(table)
    assume(text is not None)
    _only_config_errors(lambda: settings_from_text(text, "app.toml", env={}))


@PROPERTY
@given(telemetry_tables)
def test_any_keyword_arguments_give_settings_or_a_config_error(table: dict[str, Any]) -> None:
    # (load_settings' own parameter names are not settings keys.)
    table = {k: v for k, v in table.items() if k not in ("path", "env", "resolve_plugins")}
    _only_config_errors(lambda: load_settings(None, env={}, **table))


toml_fragments = st.one_of(
    st.sampled_from(
        [
            "[telemetry]\n",
            "[telemetry.sampler]\n",
            "[[telemetry.exporters]]\n",
            "[telemetry.metrics.views.x]\n",
            "[[telemetry]]\n",
            "telemetry = 1\n",
            'type = "ratio"\n',
            "rate = 0.5\n",
            "batch_size = -1\n",
            "a.b.c = 1\n",
            'headers = { a = "b" }\n',
            "x = [1, 'a']\n",
            "= 1\n",
            "[",
            "]",
            '"',
            "'''",
            "\\u0000",
            "\x00",
            "\r\n",
            "# comment\n",
            "key = 1979-05-27T07:32:00Z\n",
            "inf = inf\n",
            "nan = nan\n",
            "k = 0x_1\n",
            "k = {a = {b = {c = 1}}}\n",
        ]
    ),
    st.builds(lambda k, v: f"{k} = {v}\n", st.sampled_from(KEYS), st.text(max_size=20)),
    st.text(max_size=40),
)
documents = st.lists(toml_fragments, max_size=12).map("".join)


@PROPERTY
@given(documents)
def test_any_toml_text_gives_settings_or_a_config_error(text: str) -> None:
    _only_config_errors(lambda: settings_from_text(text, "app.toml", env={}))


environments = st.dictionaries(
    st.builds(
        lambda k: f"SFUMATO_{k.upper()}",
        st.one_of(st.sampled_from(KEYS), st.text(string.ascii_letters + "_", max_size=12)),
    )
    | st.sampled_from(
        [
            "OTEL_EXPORTER_OTLP_HEADERS",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_SERVICE_NAME",
            "OTEL_RESOURCE_ATTRIBUTES",
            "OTEL_SDK_DISABLED",
            "OTEL_TRACES_SAMPLER_ARG",
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "SFUMATO_DISABLE_PLUGINS",
        ]
    ),
    st.text(max_size=30).filter(lambda v: "\x00" not in v),
    max_size=4,
)


@PROPERTY
@given(environments)
def test_any_environment_gives_settings_or_a_config_error(env: dict[str, str]) -> None:
    _only_config_errors(lambda: settings_from_text("[telemetry]\n", "app.toml", env=env))


# -- hostile files ----------------------------------------------------------------------------


def _config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    lines = [str(problem) for problem in caught.value.problems]
    assert all(line.startswith(str(path)) and "\n" not in line for line in lines), lines[:3]
    return str(caught.value)


def test_a_very_large_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "huge.toml"
    with path.open("wb") as f:
        f.write(b"[telemetry]\n")
        f.seek(64 * MAX_CONFIG_BYTES)  # sparse: 256 MiB that takes no disk
        f.write(b"\n")
    assert "larger than" in _config_error(path)


@pytest.mark.parametrize(
    "body",
    [
        "[telemetry]\nresource = " + "[" * 50_000 + "]" * 50_000 + "\n",
        "[telemetry]\nx = " + "{a = " * 20_000 + "1" + "}" * 20_000 + "\n",
        "[telemetry." + ".".join(["a"] * 20_000) + "]\n",
        "[telemetry]\n" + "".join(f"k{i} = {i}\n" for i in range(100_000)),
        "".join(f"[a{i}.telemetri]\nx = 1\n" for i in range(20_000)),
        "[telemetry]\n" + "k" * 1_000_000 + " = 1\n",
    ],
    ids=[
        "nested-arrays",
        "nested-inline-tables",
        "deep-dotted-table",
        "many-keys",
        "many-misspelt-tables",
        "a-megabyte-key",
    ],
)
def test_deeply_nested_or_wide_documents_give_a_config_error(body: str, tmp_path: Path) -> None:
    path = tmp_path / "deep.toml"
    path.write_text(body)
    started = time.monotonic()
    _config_error(path)
    assert time.monotonic() - started < 30, "a hostile file must not take minutes"


def test_binary_and_non_utf8_files(tmp_path: Path) -> None:
    path = tmp_path / "random.toml"
    path.write_bytes(bytes(range(256)) * 64)
    assert "binary" in _config_error(path)
    path.write_bytes(b"[telemetry]\nservice_name = '\xc3\x28'\n")
    assert "UTF-8" in _config_error(path)


def test_a_symlink_loop_is_a_config_error(tmp_path: Path) -> None:
    a, b = tmp_path / "a.toml", tmp_path / "b.toml"
    a.symlink_to(b)
    b.symlink_to(a)
    assert "cannot read" in _config_error(a)


def test_a_dangling_symlink_is_file_not_found(tmp_path: Path) -> None:
    link = tmp_path / "app.toml"
    link.symlink_to(tmp_path / "gone.toml")
    assert "file not found" in _config_error(link)


def test_an_endless_device_is_refused() -> None:
    if not os.path.exists("/dev/zero"):
        missing("/dev/zero")
    with pytest.raises(ConfigError, match="larger than"):
        load_settings("/dev/zero", env={})


# -- fuzzed attributes ------------------------------------------------------------------------

attribute_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),  # beyond int64 too: the OTLP encoder drops what it cannot hold
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=50),  # lone surrogates included
    st.binary(max_size=20),
    st.lists(st.one_of(st.integers(), st.text(max_size=5), st.none(), st.floats()), max_size=4),
    st.tuples(st.integers(), st.text(max_size=3)),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.builds(object),
)
attribute_maps = st.dictionaries(st.text(max_size=10), attribute_values, max_size=6)


@pytest.fixture(scope="module")
def fuzz_telemetry(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One handle for all examples: error-always over a ratio sampler (every span goes
    through the sampler and the tail processor), exported to memory, the console (into a
    buffer) and the local store (OTLP JSON on disk)."""
    store = tmp_path_factory.mktemp("store")
    running = sfumato.active()
    if running is not None:
        running.shutdown(timeout=1.0)
    telemetry = sfumato.configure(
        service_name="fuzz",
        backend="local",
        backend_options={"directory": str(store)},
        exporters=[{"type": "memory"}, {"type": "console", "signals": ["traces"]}],
        sampler={"type": "error-always", "otherwise": {"type": "ratio", "rate": 0.5}},
        export_retry_ms=0,
        metrics={"enabled": False},
        logs={"enabled": False},
    )
    console = telemetry.exporter("console", "traces")
    buffer = io.StringIO()
    console.out = buffer
    yield telemetry, buffer, store
    telemetry.shutdown(timeout=5.0)


@PROPERTY
@given(attribute_maps, attribute_maps, st.booleans())
def test_fuzzed_attributes_never_reach_the_application(
    fuzz_telemetry: Any, start: dict[str, Any], later: dict[str, Any], error: bool
) -> None:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.trace import Status, StatusCode

    telemetry, _, _ = fuzz_telemetry
    tracer = telemetry.tracer()
    memory = telemetry.exporter("memory", "traces")
    before = len(memory.get_finished_spans())
    with tracer.start_as_current_span("fuzz", attributes=start) as span:  # type: ignore[arg-type]
        span.set_attributes(later)  # type: ignore[arg-type]
        span.add_event("event", attributes=later)  # type: ignore[arg-type]
        for key, value in later.items():
            span.set_attribute(key, value)
        if error:
            span.set_status(Status(StatusCode.ERROR, "fuzzed"))
    # The OTLP encoder (gRPC, HTTP and the local store's JSON) takes whatever was kept.
    for kept in memory.get_finished_spans()[before:]:
        encode_spans([kept]).SerializeToString()


def test_fuzzed_spans_reached_every_exporter(fuzz_telemetry: Any) -> None:
    # What the property test in this module made (when it ran first), and two spans of its
    # own so the test stands alone, was exported everywhere.
    telemetry, buffer, store = fuzz_telemetry
    from opentelemetry.trace import Status, StatusCode

    tracer = telemetry.tracer()
    for name in ("own-1", "own-2"):
        with tracer.start_as_current_span(name, attributes={"k\u2029": "v\u2028"}) as span:
            span.set_status(Status(StatusCode.ERROR, "kept by error-always"))
    assert telemetry.force_flush(10.0)
    stats = telemetry.stats()
    kept = len(telemetry.exporter("memory", "traces").get_finished_spans())
    assert kept > 0
    assert stats["traces.dropped.export_failed"] == 0, stats
    printed = [json.loads(chunk) for chunk in _json_objects(buffer.getvalue())]
    assert len(printed) == kept, sorted(stats.items())
    # Read back as `sfumato report` does (raw characters such as U+2028 are inside lines).
    from sfumato.plugins.local.store import Store

    reader = Store(store)
    assert sum(1 for _ in reader.spans()) == kept
    assert reader.skipped == 0


def _json_objects(text: str) -> list[str]:
    """Split the console's concatenated, indented JSON objects."""
    decoder = json.JSONDecoder()
    out, at = [], 0
    text = text.strip()
    while at < len(text):
        obj, end = decoder.raw_decode(text, at)
        out.append(json.dumps(obj))
        at = end
        while at < len(text) and text[at].isspace():
            at += 1
    return out


def test_variables_cannot_blow_a_small_file_up(tmp_path: Path) -> None:
    # 800 KB of ${A} with a 1 KB variable would be 200 MB of service name.
    path = tmp_path / "app.toml"
    path.write_text('[telemetry]\nservice_name = "' + "${A}" * 200_000 + '"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={"A": "x" * 1000})
    assert "telemetry.service_name" in str(caught.value)
    assert "more than 4 MiB" in str(caught.value)


def test_the_number_of_exporters_is_bounded(tmp_path: Path) -> None:
    # Each exporter starts its own export threads: thousands of entries are a mistake.
    path = tmp_path / "app.toml"
    path.write_text("[telemetry]\n" + '[[telemetry.exporters]]\ntype = "memory"\n' * 2000)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env={})
    assert "telemetry.exporters" in str(caught.value) and "at most 32" in str(caught.value)
