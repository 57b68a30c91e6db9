"""A third-party backend works after ``pip install``, with no change to sfumato.

sfumato and the example distribution in ``docs/examples/sfumato-backend-example`` are built and
installed into a fresh virtual environment (no system site-packages: sfumato's dependencies
come from the package index or the local wheel cache). There, and only there, the example is
installed, so everything below proves discovery by entry point of an installed distribution.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from venv_support import IGNORE, REPO, Venv

EXAMPLE = REPO / "docs" / "examples" / "sfumato-backend-example"


@pytest.fixture(scope="module")
def venv(sfumato_venv: Venv) -> Iterator[Venv]:
    # The session's venv (sfumato built from a copy of the checkout), plus the example.
    example = sfumato_venv.work / "sfumato-backend-example"
    if not example.exists():
        shutil.copytree(EXAMPLE, example, ignore=IGNORE)
    sfumato_venv.pip_install(example)
    yield sfumato_venv


def test_the_example_is_installed_in_the_venv_only(venv: Venv) -> None:
    where = venv.python(
        """
        import json, sfumato, sfumato_backend_example
        from importlib.metadata import distribution
        print(json.dumps({
            "sfumato": sfumato.__file__,
            "example": sfumato_backend_example.__file__,
            "version": distribution("sfumato-backend-example").version,
        }))
        """
    )
    assert where.returncode == 0, where.stderr
    paths = json.loads(where.stdout)
    assert Path(paths["sfumato"]).is_relative_to(venv.root), "sfumato must come from the venv"
    assert Path(paths["example"]).is_relative_to(venv.root)
    assert paths["version"] == "0.1.0"
    # ... and not where this test suite runs.
    from importlib_metadata import PackageNotFoundError, distribution

    with pytest.raises(PackageNotFoundError):
        distribution("sfumato-backend-example")


def _source_packages() -> list[str]:
    """Every package in the source folders, by the name the package-dir mapping gives it."""
    roots = {"core": "sfumato", "plugins": "sfumato.plugins", "samplers": "sfumato.samplers"}
    roots["backends"] = "sfumato.backends"
    found = []
    for folder, package in roots.items():
        for init in sorted((REPO / folder).rglob("__init__.py")):
            relative = init.parent.relative_to(REPO / folder).parts
            found.append(".".join((package, *relative)))
    return found


def test_the_installed_wheel_has_the_mapped_layout(venv: Venv) -> None:
    # A sub-package missing from pyproject's packages list works in the editable install
    # and is silently left out of the wheel: import every one from the venv.
    packages = _source_packages()
    assert {"sfumato", "sfumato.cli", "sfumato.plugins", "sfumato.backends"} <= set(packages)
    result = venv.python(
        f"""
        import importlib, json
        from importlib.resources import files
        for name in {packages!r}:
            importlib.import_module(name)
        print(json.dumps({{
            "py.typed": files("sfumato").joinpath("py.typed").is_file(),
            "example": files("sfumato").joinpath("examples/botticelli.toml").is_file(),
        }}))
        """
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"py.typed": True, "example": True}
    validate = venv.python(
        """
        from importlib.resources import as_file, files
        from sfumato.cli import main
        with as_file(files("sfumato") / "examples" / "botticelli.toml") as path:
            raise SystemExit(main(["validate", str(path)]))
        """
    )
    assert validate.returncode == 0, validate.stdout + validate.stderr


def test_the_backend_is_discovered_by_entry_point(venv: Venv) -> None:
    listed = venv.python(
        """
        import json
        from sfumato._host import PluginHost
        host = PluginHost()
        print(json.dumps([
            [p.kind, p.name, p.distribution, p.version]
            for kind in ("backend", "exporter") for p in host.discover(kind)
        ]))
        """
    )
    assert listed.returncode == 0, listed.stderr
    plugins = json.loads(listed.stdout)
    assert ["backend", "example", "sfumato-backend-example", "0.1.0"] in plugins
    assert ["exporter", "example-jsonl", "sfumato-backend-example", "0.1.0"] in plugins
    assert ["backend", "stdout", "sfumato", _sfumato_version()] in plugins


def test_sfumato_plugins_lists_it(venv: Venv) -> None:
    result = venv.run(venv.bin / "sfumato", "plugins")
    assert result.returncode == 0, result.stdout + result.stderr
    line = next(
        (line for line in result.stdout.splitlines() if "sfumato-backend-example" in line), ""
    )
    assert "example" in line.split(), result.stdout
    assert "0.1.0" in line


def test_a_config_naming_it_validates(venv: Venv) -> None:
    good = venv.work / "good.toml"
    good.write_text(
        textwrap.dedent(
            f"""
            [server]
            port = 8080

            [telemetry]
            service_name = "third-party"
            backend = "example"

            [telemetry.backend_options]
            path = "{(venv.work / "good.jsonl").as_posix()}"
            """
        )
    )
    result = venv.run(venv.bin / "sfumato", "validate", good)
    assert result.returncode == 0, result.stdout + result.stderr

    bad = venv.work / "bad.toml"
    bad.write_text('[telemetry]\nbackend = "example"\n[telemetry.backend_options]\npth = "x"\n')
    result = venv.run(venv.bin / "sfumato", "validate", bad)
    assert result.returncode == 2
    errors = result.stderr.strip().splitlines()
    # Each problem on its own line, in file order: the missing key, then the misspelt one.
    assert [line.split(": ")[2] for line in errors] == [
        "telemetry.backend_options.path",
        "telemetry.backend_options.pth",
    ], result.stderr
    assert errors[1].endswith("unknown key 'pth'; did you mean 'path'?")
    assert "Traceback" not in result.stderr


def test_configure_exports_a_span_through_it(venv: Venv) -> None:
    out = venv.work / "spans.jsonl"
    config = venv.work / "app.toml"
    config.write_text(
        f'[telemetry]\nservice_name = "third-party"\nbackend = "example"\n'
        f'[telemetry.backend_options]\npath = "{out.as_posix()}"\n'
    )
    result = venv.python(
        f"""
        import sfumato
        with sfumato.configure({str(config)!r}) as telemetry:
            with telemetry.tracer().start_as_current_span("from-the-venv") as span:
                trace_id = format(span.get_span_context().trace_id, "032x")
        print(trace_id)
        """
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    spans = [line for line in lines if line["kind"] == "span"]
    assert [(s["name"], s["service"], s["trace_id"]) for s in spans] == [
        ("from-the-venv", "third-party", result.stdout.strip())
    ]


def test_the_example_passes_its_own_tests(venv: Venv) -> None:
    example = venv.work / "sfumato-backend-example"
    result = venv.run(
        venv.bin / "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=example
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout


def _sfumato_version() -> str:
    from importlib_metadata import version

    return version("sfumato")
