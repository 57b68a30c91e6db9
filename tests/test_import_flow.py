"""Imports flow one way: plugins, samplers and backends import the core, never the reverse.

Every module under ``core/`` (the ``sfumato`` package and ``sfumato.cli``) is read with
``ast``, every import counted wherever it is written: at the top, inside a function, under
``if TYPE_CHECKING:``. What core needs from a plugin reaches it through the plugin host (entry
points and hooks), never through an import.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORE = REPO / "core"
# The packages core must not import, and the folders they live in.
OUTSIDE = ("sfumato.plugins", "sfumato.samplers", "sfumato.backends")

# Temporary allowances: (module's path under core/, the module it imports). Each one is a
# known import against the flow, to be removed once its cause is gone.
# (module, import) pairs allowed to break the rule: none.
ALLOWED: set[tuple[str, str]] = set()


def _module_name(path: Path) -> tuple[str, bool]:
    """(dotted name, is a package) of a file under core/."""
    parts = ["sfumato", *path.relative_to(CORE).with_suffix("").parts]
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _resolve(module: str, is_package: bool, level: int, name: str | None) -> str:
    """The absolute name of a relative import (``from ..x import y`` at ``level`` 2)."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (level - 1)] if level > 1 else package
    return ".".join([*base, *([name] if name else [])])


def imported_names(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file, a ``from`` import's names
    included (``from sfumato import plugins`` imports ``sfumato.plugins``)."""
    module, is_package = _module_name(path)
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                source = _resolve(module, is_package, node.level, node.module)
            else:
                source = node.module or ""
            found.append((node.lineno, source))
            found += [(node.lineno, f"{source}.{alias.name}") for alias in node.names]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, (ast.Attribute, ast.Name))
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append((node.lineno, node.args[0].value))
    return found


def _outside(name: str) -> bool:
    return any(name == top or name.startswith(f"{top}.") for top in OUTSIDE)


CORE_FILES = sorted(CORE.rglob("*.py"))


def test_the_walk_reads_the_whole_core() -> None:
    names = {_module_name(p)[0] for p in CORE_FILES}
    assert {"sfumato", "sfumato.hookspecs", "sfumato.cli", "sfumato.cli.doctor"} <= names
    assert len(CORE_FILES) > 30


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: str(p.relative_to(CORE)))
def test_core_imports_no_plugin(path: Path) -> None:
    where = path.relative_to(CORE).as_posix()
    wrong = sorted(
        {
            f"core/{where}:{line}: imports {name}"
            for line, name in imported_names(path)
            if _outside(name) and not any(where == w and name.startswith(m) for w, m in ALLOWED)
        }
    )
    assert wrong == [], "core must not import plugins, samplers or backends:\n" + "\n".join(wrong)


def test_the_walk_sees_every_form(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Absolute, relative, inside a function and under TYPE_CHECKING: each one is found."""
    folder = tmp_path / "core" / "cli"
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text("")
    module = folder / "probe.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "import sfumato.backends.otlp\n"
        "from ..plugins import http\n"
        "from .. import samplers\n"
        "if TYPE_CHECKING:\n"
        "    from sfumato.plugins.local.store import Store\n"
        "def f():\n"
        "    from sfumato.samplers.probability import Ratio\n"
        "    importlib.import_module('sfumato.backends.none')\n"
    )
    monkeypatch.setattr(sys.modules[__name__], "CORE", tmp_path / "core")
    found = {name for _, name in imported_names(module) if _outside(name)}
    assert {
        "sfumato.backends.otlp",
        "sfumato.plugins",
        "sfumato.plugins.http",
        "sfumato.samplers",
        "sfumato.plugins.local.store",
        "sfumato.samplers.probability",
        "sfumato.backends.none",
    } <= found


def _modules_after(code: str) -> list[str]:
    """The modules of plugins, samplers and backends loaded after running ``code`` in a
    fresh interpreter."""
    script = (
        f"import json, sys\n{code}\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({OUTSIDE!r}))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO
    )
    loaded: list[str] = json.loads(result.stdout.splitlines()[-1])
    return loaded


def test_import_sfumato_loads_no_plugin() -> None:
    # configure() loads the plugins a config names through their entry points; importing
    # sfumato, its public modules or its command line's own modules loads none.
    assert _modules_after("import sfumato") == []
    modules = sorted(_module_name(p)[0] for p in CORE_FILES)
    code = "import importlib\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules)
    # An allowed import is made when its code runs, not when its module is imported; its
    # packages are let through all the same, should it move to the top of the module.
    allowed = {".".join(n.split(".")[:i]) for _, n in ALLOWED for i in (2, len(n.split(".")))}
    assert set(_modules_after(code)) <= allowed
