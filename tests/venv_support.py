"""A fresh virtual environment with sfumato built and installed in it, shared by the tests
that install third-party plugins (a session fixture: building it takes most of their time).

The venv has no system site-packages: sfumato's dependencies come from the package index or
the local wheel cache, and sfumato itself from a wheel built from a copy of the checkout.
Plugins installed into it are invisible to the rest of the test session.
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

REPO = Path(__file__).resolve().parents[1]
IGNORE = shutil.ignore_patterns(
    ".git", "build", "dist", "*.egg-info", "__pycache__", ".venv", ".*_cache", ".benchmarks",
    ".hypothesis", ".sfumato", "docs",
)  # fmt: skip


@dataclass
class Venv:
    root: Path
    work: Path

    @property
    def bin(self) -> Path:
        return self.root / ("Scripts" if os.name == "nt" else "bin")

    def run(self, *args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SFUMATO_", "OTEL_", "PYTHON")) and k != "VIRTUAL_ENV"
        }
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
def sfumato_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venv]:
    base = tmp_path_factory.mktemp("venv")
    # Build from a copy: an in-tree build would write build/ and *.egg-info into the checkout.
    src = base / "sfumato-src"
    shutil.copytree(REPO, src, ignore=IGNORE)
    root = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=120)
    env = Venv(root, base)
    env.pip_install(src, "pytest")
    yield env
