"""Every example in the docs runs: TOML blocks are validated as configs, Python blocks are
executed.

A TOML block holding a ``[telemetry]`` table is a whole config file and is loaded with its
plugins resolved; a ``[project]`` block is a pyproject fragment whose entry points must name
sfumato's groups; any other TOML block is the body of a ``[telemetry]`` table. Python blocks
run in-process, one page at a time, in a fresh working directory holding the page's file
blocks (``title="path"``), with sfumato's backend forced to ``none`` through the environment
so nothing talks to the network (keyword arguments to ``configure()`` still win). Blocks
marked ``<!-- not-validated: reason -->`` are skipped; see tests/docs_support.py.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sfumato
import tomlkit
from docs_support import REPO, Block, blocks, pages
from sfumato._host import GROUPS
from sfumato._loading import load_config

# Values for the ${VAR}s and the secret variables the examples name: placeholders, never sent.
ENV = {
    "COLLECTOR_API_KEY": "k",
    "SIGNOZ_INGESTION_KEY": "k",
    "GRAFANA_CLOUD_INSTANCE_ID": "1",
    "GRAFANA_CLOUD_API_KEY": "t",
    "GRAFANA_OTLP_TOKEN": "t",
    "HONEYCOMB_API_KEY": "k",
    "OTLP_TOKEN": "t",
}


class _Reply:
    text = '{"title": "Cats", "body": "..."}'
    prompt_tokens = 120
    completion_tokens = 40


class _LlmClient:
    def complete(self, prompt: str) -> _Reply:
        return _Reply()


def _stubs() -> dict[str, Any]:
    """What illustrative snippets take from the application: its work (`run_server()`), an
    LLM client, a prompt, a database row. Stand-ins only; sfumato's calls are the real ones."""
    noop = lambda *args, **kwargs: None  # noqa: E731
    return {
        "run_server": noop,
        "run_narrative": noop,
        "serve": noop,
        "client": _LlmClient(),
        "prompt": "Write a post about cats.",
        "row": SimpleNamespace(carrier={}),
    }


ALL = [b for page in pages() for b in blocks(page)]
TOML = [b for b in ALL if b.lang == "toml" and "not-validated" not in b.markers]
PYTHON = [
    b
    for b in ALL
    if b.lang in ("python", "py") and "not-validated" not in b.markers and not b.title
]


def _ids(found: list[Block]) -> list[str]:
    return [b.where for b in found]


@pytest.fixture
def doc_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in [n for n in os.environ if n.startswith(("SFUMATO_", "OTEL_"))]:
        monkeypatch.delenv(name)
    # load_settings gets ENV as its environment; Python snippets that call configure() read the
    # process environment, so it holds the same values.
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    return dict(ENV)


def test_markers_give_a_reason() -> None:
    for block in ALL:
        for name in ("not-validated", "settings-only"):
            if name in block.markers:
                assert block.markers[name].strip(), f"{block.where}: <!-- {name}: reason -->"


def test_there_are_examples_to_run() -> None:
    assert len(TOML) >= 20 and len(PYTHON) >= 8
    skipped = [b for b in ALL if "not-validated" in b.markers and b.lang in ("toml", "python")]
    assert len(skipped) <= len(TOML + PYTHON) // 5, "mark blocks not-validated sparingly"


def _pyproject(block: Block, document: dict[str, Any]) -> None:
    groups = document.get("project", {}).get("entry-points", {})
    for group, entries in groups.items():
        assert group in GROUPS.values(), f"{block.where}: {group!r} is not a sfumato group"
        for name, value in entries.items():
            assert re.fullmatch(r"[\w.]+:[\w.]+", value), f"{block.where}: {name} = {value!r}"


@pytest.mark.parametrize("block", TOML, ids=_ids(TOML))
def test_toml_example_is_valid(block: Block, tmp_path: Path, doc_env: dict[str, str]) -> None:
    document = tomlkit.parse(block.text).unwrap()
    if "project" in document or "build-system" in document:
        _pyproject(block, document)
        return
    text = block.text if "telemetry" in document else "[telemetry]\n" + block.text
    path = tmp_path / (Path(block.title).name if block.title else "app.toml")
    path.write_text(text)
    resolve = "settings-only" not in block.markers
    try:
        loaded = load_config(path, env=doc_env, resolve_plugins=resolve)
    except sfumato.ConfigError as exc:
        pytest.fail(f"{block.where}: {exc}")
    if resolve and loaded.settings.enabled:
        assert loaded.plan is not None


def _by_page(found: list[Block]) -> dict[Path, list[Block]]:
    out: dict[Path, list[Block]] = {}
    for b in found:
        out.setdefault(b.path, []).append(b)
    return out


@pytest.fixture
def workdir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, doc_env: dict[str, str]
) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SFUMATO_BACKEND", "none")
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    root_level = logging.getLogger().level
    yield tmp_path
    running = sfumato.active()
    if running is not None:
        running.shutdown(2.0)
    for name in set(sys.modules) - before:
        module = sys.modules[name]
        if getattr(module, "__file__", None) and str(tmp_path) in str(module.__file__):
            del sys.modules[name]  # the page's own modules (mypkg.sampling) are not reused
    logging.getLogger().setLevel(root_level)


PAGES_WITH_PYTHON = _by_page(PYTHON)


@pytest.mark.parametrize(
    "page", list(PAGES_WITH_PYTHON), ids=[str(p.relative_to(REPO)) for p in PAGES_WITH_PYTHON]
)
def test_python_examples_run(page: Path, workdir: Path) -> None:
    for block in blocks(page):
        if block.title:  # a file the page's snippets use
            target = workdir / block.title
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.text)
            if block.lang in ("python", "py"):
                for parent in Path(block.title).parents:
                    if parent != Path(".") and not (workdir / parent / "__init__.py").exists():
                        (workdir / parent / "__init__.py").write_text("")
    # One namespace per page, as a reader goes top to bottom: later blocks use earlier imports.
    namespace: dict[str, Any] = {"__name__": "__doc_example__", **_stubs()}
    for block in PAGES_WITH_PYTHON[page]:
        # Line numbers in a traceback are the page's own.
        code = compile("\n" * (block.line - 1) + block.text, str(block.path), "exec")
        try:
            exec(code, namespace)
        finally:
            running = sfumato.active()
            if running is not None:
                running.shutdown(2.0)


def _example_with(needle: str) -> Block:
    [block] = [b for b in TOML if needle in b.text and b.path.name == "backends.md"]
    return block


def test_development_and_production_examples(tmp_path: Path) -> None:
    # The Botticelli server's two configs plan what docs/backends.md says they do.
    path = tmp_path / "dev.toml"
    path.write_text(_example_with('environment = "development"').text)
    loaded = load_config(path, env={})
    dev = loaded.settings
    assert dev.backend == "jaeger" and dev.export_console
    assert {n.name for n in loaded.plan.exporters} == {"otlp-grpc", "console"}

    path.write_text(_example_with('environment = "production"').text)
    loaded = load_config(path, env={})
    prod = loaded.settings
    assert (prod.backend, prod.sampling_rate, prod.batch_size, prod.batch_timeout_ms) == (
        "signoz",
        0.1,
        512,
        5000,
    )
    assert loaded.plan.exporters[0].signals == frozenset({"traces", "metrics", "logs"})


def test_the_hand_written_setup_in_the_migration_guide_builds(tmp_path: Path) -> None:
    # The "before" of docs/migrating.md is real OpenTelemetry SDK code: build it in a child
    # process (it installs global providers) and leave without exporting anything.
    [block] = [
        b
        for b in blocks(REPO / "docs" / "migrating.md")
        if b.lang == "python" and "def init_telemetry" in b.text
    ]
    check = """
import os
from opentelemetry import metrics, trace
init_telemetry({"telemetry": {"service_name": "bot", "otlp_endpoint": "http://127.0.0.1:9",
                              "sampling_rate": 0.25, "export_console": True}})
provider = trace.get_tracer_provider()
processors = provider._active_span_processor._span_processors
print(provider.sampler.rate, [type(p).__name__ for p in processors],
      provider.resource.attributes["service.name"], type(metrics.get_meter_provider()).__name__)
os._exit(0)  # skip the exit-time export to the (absent) collector
"""
    script = tmp_path / "before.py"
    script.write_text(block.text + check)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SFUMATO_"))}
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[0] == (
        "0.25 ['BatchSpanProcessor', 'SimpleSpanProcessor'] bot MeterProvider"
    )


def test_every_python_block_compiles() -> None:
    # Blocks left out of the run (files, illustrative ones) must still be valid Python.
    for block in [b for b in ALL if b.lang in ("python", "py")]:
        try:
            compile(block.text, block.where, "exec")
        except SyntaxError as exc:
            pytest.fail(f"{block.where}: {exc}")
