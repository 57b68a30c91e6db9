"""sfumato as it would be published: the sdist and the wheel ``python -m build`` makes from a
copy of the checkout (the wheel from the sdist), what each holds, and the wheel installed in
a fresh virtual environment running ``sfumato demo`` from an empty folder.

The build and the venv are the session's (``venv_support``), shared with the tests that
install third-party plugins.
"""

from __future__ import annotations

import re
import tarfile
import zipfile
from importlib.metadata import Distribution
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from venv_support import REPO, Dists, Venv

PYPROJECT: dict[str, Any] = tomlkit.parse((REPO / "pyproject.toml").read_text()).unwrap()
VERSION: str = PYPROJECT["project"]["version"]
EXAMPLES = sorted(p.name for p in (REPO / "core" / "examples").glob("*.toml"))
PLUGIN_GROUPS = (
    "sfumato.backends",
    "sfumato.exporters",
    "sfumato.samplers",
    "sfumato.plugins",
    "sfumato.cli",
)


def test_the_version_has_a_changelog_entry() -> None:
    changelog = (REPO / "CHANGELOG.md").read_text()
    headings = re.findall(r"^## \[?([^\]\s]+)\]? - (\d{4}-\d{2}-\d{2})$", changelog, re.M)
    assert headings, "CHANGELOG.md has no '## <version> - <date>' entry"
    assert headings[0][0] == VERSION, "the newest CHANGELOG.md entry is not pyproject's version"


def test_the_build_is_clean(sfumato_dists: Dists) -> None:
    assert (sfumato_dists.sdist.name, sfumato_dists.wheel.name) == (
        f"sfumato-{VERSION}.tar.gz",
        f"sfumato-{VERSION}-py3-none-any.whl",
    )
    warnings = [
        line
        for line in sfumato_dists.log.splitlines()
        if re.search(r"\bwarn(ing)?\b|deprecat", line, re.I)
    ]
    assert not warnings, "python -m build warned:\n" + sfumato_dists.log


def test_the_sdist_holds_what_builds_the_wheel(sfumato_dists: Dists) -> None:
    with tarfile.open(sfumato_dists.sdist) as sdist:
        top = f"sfumato-{VERSION}/"
        names = {m.name.removeprefix(top) for m in sdist.getmembers() if m.isfile()}
        license_file = sdist.extractfile(top + "LICENSE")
        assert license_file is not None and license_file.read() == (REPO / "LICENSE").read_bytes()
    documents = {"LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml", "PKG-INFO"}
    assert documents <= names
    assert {"core/py.typed", *(f"core/examples/{name}" for name in EXAMPLES)} <= names
    src = sfumato_dists.src  # the checkout as it was built
    sources = {
        p.relative_to(src).as_posix()
        for folder in ("core", "plugins", "samplers", "backends")
        for p in (src / folder).rglob("*.py")
    }
    assert not sources - names, "source files missing from the sdist"
    # The test suite needs the whole checkout; a few of its files alone would not run.
    assert not [n for n in names if n.startswith("tests/")]


@pytest.fixture(scope="module")
def wheel(sfumato_dists: Dists, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel unpacked: what an installer would put in site-packages."""
    root = tmp_path_factory.mktemp("wheel")
    with zipfile.ZipFile(sfumato_dists.wheel) as archive:
        archive.extractall(root)
    return root


def test_the_wheel_holds_the_package_data(wheel: Path) -> None:
    assert (wheel / "sfumato" / "py.typed").is_file()
    shipped = sorted(p.name for p in (wheel / "sfumato" / "examples").glob("*.toml"))
    assert shipped == EXAMPLES
    for name in EXAMPLES:
        shipped_text = (wheel / "sfumato" / "examples" / name).read_text()
        assert shipped_text == (REPO / "core" / "examples" / name).read_text()
    # Only the mapped packages: no source folder names, no tests.
    assert sorted(p.name for p in wheel.iterdir()) == ["sfumato", f"sfumato-{VERSION}.dist-info"]


def test_the_wheel_metadata(wheel: Path) -> None:
    info = wheel / f"sfumato-{VERSION}.dist-info"
    license_text = (info / "licenses" / "LICENSE").read_text()
    assert license_text == (REPO / "LICENSE").read_text()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    metadata = Distribution.at(info).metadata
    assert (metadata["Name"], metadata["Version"]) == ("sfumato", VERSION)
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert metadata["Requires-Python"] == PYPROJECT["project"]["requires-python"]
    classifiers = metadata.get_all("Classifier") or []
    assert "Typing :: Typed" in classifiers
    assert not [c for c in classifiers if c.startswith("License ::")], "the SPDX license says it"
    requires = metadata.get_all("Requires-Dist") or []
    assert any(r.startswith("opentelemetry-sdk") and "<" in r for r in requires), requires


def test_the_wheel_registers_sfumatos_entry_points(wheel: Path) -> None:
    entry_points = Distribution.at(wheel / f"sfumato-{VERSION}.dist-info").entry_points
    declared = PYPROJECT["project"]["entry-points"]
    assert set(PLUGIN_GROUPS) <= set(declared)
    for group in PLUGIN_GROUPS:
        registered = {ep.name: ep.value for ep in entry_points.select(group=group)}
        assert registered == declared[group], group
    scripts = {ep.name: ep.value for ep in entry_points.select(group="console_scripts")}
    assert scripts == PYPROJECT["project"]["scripts"] == {"sfumato": "sfumato.cli:main"}


def test_the_installed_wheel_runs_the_demo(sfumato_venv: Venv, tmp_path: Path) -> None:
    checked = sfumato_venv.run(sfumato_venv.bin / "python", "-m", "pip", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    version = sfumato_venv.run(sfumato_venv.bin / "sfumato", "--version")
    assert version.stdout.strip() == f"sfumato {VERSION}", version.stdout + version.stderr

    empty = tmp_path / "empty"
    empty.mkdir()
    # The bundled demo.toml, shortened: 200 bot runs take a few seconds.
    demo = sfumato_venv.run(sfumato_venv.bin / "sfumato", "demo", "--narratives", "200", cwd=empty)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "under the bundled demo.toml" in demo.stderr
    for line in ("narratives run:", "traces kept:", "Narratives by type", "verdict: OK"):
        assert line in demo.stdout, demo.stdout
    assert (empty / ".sfumato" / "demo").is_dir(), "the demo's local store is in the folder"
