"""The plugin guides, followed as a new user would: from an empty folder to an installed
plugin that ``sfumato plugins`` lists, a config that validates, and a span exported.

Each guide's file blocks (fences with ``title="path"``) are written into an empty folder,
which is pip-installed into the session's fresh virtual environment (sfumato installed, no
plugin). The files the guide shows must be the ones of the example distribution under
docs/examples/, so the guide and the example cannot drift apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from docs_support import DOCS, blocks
from venv_support import Venv


@dataclass(frozen=True)
class Guide:
    page: str
    folder: str  # the distribution's folder name, as the guide's mkdir makes it
    plugins: tuple[tuple[str, str], ...]  # (kind, name) the distribution adds
    touched: tuple[str, ...] = ()  # empty files the guide's `touch` makes (py.typed)


GUIDES = [
    Guide(
        "writing-a-backend.md",
        "sfumato-backend-example",
        (("backend", "example"), ("exporter", "example-jsonl")),
        ("sfumato_backend_example/py.typed",),
    ),
    Guide(
        "writing-a-sampler.md",
        "sfumato-sampler-example",
        (("sampler", "glob-rate"), ("sampler", "debug-baggage")),
    ),
    Guide(
        "writing-a-hook-plugin.md",
        "sfumato-hook-example",
        (("hooks", "deployment"),),
        ("sfumato_hook_example/py.typed",),
    ),
]


def _files(guide: Guide) -> dict[str, str]:
    found = {b.title: b.text for b in blocks(DOCS / guide.page) if b.title}
    assert {"pyproject.toml", "app.toml", "try_it.py"} <= set(found), guide.page
    return found


@pytest.mark.parametrize("guide", GUIDES, ids=[g.page for g in GUIDES])
def test_the_guide_shows_the_example_files(guide: Guide) -> None:
    example = DOCS / "examples" / guide.folder
    shown = {path: text for path, text in _files(guide).items() if path != "README.md"}
    in_example = [p for p in shown if (example / p).exists()]
    assert len(in_example) >= 3, f"{guide.page} should show the package, its tests, pyproject"
    for path in in_example:
        assert shown[path] == (example / path).read_text(), (
            f"{guide.page} shows {path} differently from docs/examples/{guide.folder}/{path}"
        )
    for path in guide.touched:
        assert (example / path).is_file(), f"docs/examples/{guide.folder}/{path} is missing"


@pytest.fixture(scope="module")
def installed(sfumato_venv: Venv) -> dict[str, Path]:
    """Each guide's folder, built from the page alone, installed with `pip install .`."""
    folders = {}
    for guide in GUIDES:
        folder = sfumato_venv.work / "guides" / guide.folder
        assert not folder.exists()
        for path, text in _files(guide).items():
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            (folder / path).write_text(text)
        for path in guide.touched:
            (folder / path).touch()
        sfumato_venv.pip_install(".", cwd=folder)
        folders[guide.page] = folder
    return folders


@pytest.mark.parametrize("guide", GUIDES, ids=[g.page for g in GUIDES])
def test_sfumato_plugins_lists_it(
    guide: Guide, installed: dict[str, Path], sfumato_venv: Venv
) -> None:
    listed = sfumato_venv.run(sfumato_venv.bin / "sfumato", "plugins", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {(r["kind"], r["name"]): r for r in json.loads(listed.stdout)}
    for kind, name in guide.plugins:
        row = rows.get((kind, name))
        assert row is not None, f"{kind} {name} not listed"
        assert (row["distribution"], row["version"]) == (guide.folder, "0.1.0")
    table = sfumato_venv.run(sfumato_venv.bin / "sfumato", "plugins", "--check")
    assert table.returncode == 0, table.stdout + table.stderr
    assert any(guide.folder in line and "ok" in line.split() for line in table.stdout.splitlines())


@pytest.mark.parametrize("guide", GUIDES, ids=[g.page for g in GUIDES])
def test_the_guide_config_validates(
    guide: Guide, installed: dict[str, Path], sfumato_venv: Venv
) -> None:
    # app.toml, and any other config the guide writes (debug.toml: nested samplers).
    folder = installed[guide.page]
    configs = [
        path for path in _files(guide) if path.endswith(".toml") and path != "pyproject.toml"
    ]
    for config in configs:
        result = sfumato_venv.run(sfumato_venv.bin / "sfumato", "validate", config, cwd=folder)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"{config}: valid" in result.stdout


def test_a_span_goes_through_the_backend(installed: dict[str, Path], sfumato_venv: Venv) -> None:
    folder = installed["writing-a-backend.md"]
    result = sfumato_venv.run(sfumato_venv.bin / "python", "try_it.py", cwd=folder)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in (folder / "telemetry.jsonl").read_text().splitlines()]
    [span] = [line for line in lines if line["kind"] == "span"]
    [log] = [line for line in lines if line["kind"] == "log"]
    assert (span["name"], span["service"]) == ("checkout", "my-service")
    assert (log["body"], log["trace_id"]) == ("card declined", span["trace_id"])


def test_the_sampler_decides_what_is_exported(
    installed: dict[str, Path], sfumato_venv: Venv
) -> None:
    folder = installed["writing-a-sampler.md"]
    result = sfumato_venv.run(sfumato_venv.bin / "python", "try_it.py", cwd=folder)
    assert result.returncode == 0, result.stderr
    spans = _console_spans(result.stdout)
    assert sorted(s["name"] for s in spans) == ["charge-card", "checkout.pay"]
    assert {s["attributes"]["sampling.policy"] for s in spans} == {"glob-rate"}
    assert len({s["context"]["trace_id"] for s in spans}) == 1


def test_the_hooks_join_every_configure(installed: dict[str, Path], sfumato_venv: Venv) -> None:
    # Nothing in app.toml names the plugin: installed, it adds the deployment to the resource
    # and logs its span count at shutdown. The guide's command sets the variables it reads.
    folder = installed["writing-a-hook-plugin.md"]
    deploy = ("DEPLOYMENT_ID=2024-06-01.3", "GIT_COMMIT=4f2a9c1")
    result = sfumato_venv.run("env", *deploy, sfumato_venv.bin / "python", "try_it.py", cwd=folder)
    assert result.returncode == 0, result.stderr
    spans = _console_spans(result.stdout)
    assert sorted(s["name"] for s in spans) == ["charge-card", "checkout"]
    for span in spans:
        resource = span["resource"]["attributes"]
        assert resource["deployment.id"] == "2024-06-01.3"
        assert resource["vcs.ref.head.revision"] == "4f2a9c1"
    assert "shop ended 2 spans, 1 with an error" in result.stderr


def _console_spans(text: str) -> list[dict[str, object]]:
    """The JSON objects the console exporter printed (one pretty-printed object per span)."""
    decoder, found, i = json.JSONDecoder(), [], 0
    while (start := text.find("{", i)) != -1:
        try:
            obj, i = decoder.raw_decode(text, start)
        except json.JSONDecodeError:
            i = start + 1
            continue
        if isinstance(obj, dict) and "context" in obj and "name" in obj:
            found.append(obj)
    return found


@pytest.mark.parametrize("guide", GUIDES, ids=[g.page for g in GUIDES])
def test_the_guide_tests_pass(guide: Guide, installed: dict[str, Path], sfumato_venv: Venv) -> None:
    folder = installed[guide.page]
    result = sfumato_venv.run(
        sfumato_venv.bin / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=folder
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout
