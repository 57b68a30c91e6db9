"""sfumato's sdist and wheel, and a fresh virtual environment with that wheel installed in
it, shared by the packaging tests and those that install third-party plugins (session
fixtures: building and installing take most of their time).

``python -m build`` builds both from a copy of the checkout, the wheel from the sdist as a
downstream packager would. The venv has no system site-packages: sfumato's dependencies come
from the package index or the local wheel cache (within ``PIP_CONSTRAINT``'s pins where it is
set, as ``.ci/run`` sets it). Plugins installed into it are invisible to the rest of the test
session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from receivers import missing

REPO = Path(__file__).resolve().parents[1]
IGNORE = shutil.ignore_patterns(
    ".git", "build", "dist", "*.egg-info", "__pycache__", ".venv*", ".*_cache", ".benchmarks",
    ".hypothesis", ".sfumato", "docs",
)  # fmt: skip


def _environment() -> dict[str, str]:
    """This process's environment without what would change how a child Python or sfumato
    behaves (``PYTHONDONTWRITEBYTECODE``, for one, makes setuptools warn in every build)."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SFUMATO_", "OTEL_", "PYTHON")) and k != "VIRTUAL_ENV"
    }


@dataclass(frozen=True)
class Dists:
    src: Path  # the copy of the checkout they were built from
    sdist: Path
    wheel: Path
    log: str  # everything `python -m build` printed, both builds


@dataclass
class Venv:
    root: Path
    work: Path

    @property
    def bin(self) -> Path:
        return self.root / ("Scripts" if os.name == "nt" else "bin")

    def run(self, *args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = _environment()
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        return subprocess.run(
            [str(a) for a in args],
            capture_output=True,
            text=True,
            cwd=cwd or self.work,
            env=env,
            timeout=300,
        )

    def python(self, code: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return self.run(self.bin / "python", "-c", textwrap.dedent(code), cwd=cwd)

    def pip_install(self, *args: str | Path, cwd: Path | None = None) -> None:
        done = self.run(self.bin / "python", "-m", "pip", "install", "-q", *args, cwd=cwd)
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="session")
def sfumato_dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    base = tmp_path_factory.mktemp("dist")
    # `build` is a dev extra. Asked from an empty folder: a build/ folder in the working
    # directory would pass for the package.
    probe = [sys.executable, "-m", "build", "--version"]
    if subprocess.run(probe, capture_output=True, cwd=base, timeout=60).returncode != 0:
        missing("the build package (pip install build)")
    # Build from a copy: an in-tree build would write build/ and *.egg-info into the checkout.
    src = base / "sfumato-src"
    shutil.copytree(REPO, src, ignore=IGNORE)
    out = base / "dist"
    done = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(src)],
        capture_output=True,
        text=True,
        cwd=base,
        env=_environment(),
        timeout=300,
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return Dists(src, sdist, wheel, log)


@pytest.fixture(scope="session")
def sfumato_venv(tmp_path_factory: pytest.TempPathFactory, sfumato_dists: Dists) -> Iterator[Venv]:
    base = tmp_path_factory.mktemp("venv")
    root = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=120)
    env = Venv(root, base)
    env.pip_install(sfumato_dists.wheel, "pytest")
    yield env
