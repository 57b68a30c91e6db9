"""The project's one name is sfumato: no file in the tree carries its former name."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FORMER = "temp" + "era"  # spelt in two halves so that this file does not match itself


def test_the_former_name_appears_nowhere_in_the_tree() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.split(b"\0")
    paths = [REPO / name.decode() for name in tracked if name]
    assert len(paths) > 100, "expected to read the whole tree"
    found = [str(p.relative_to(REPO)) for p in paths if FORMER in str(p.relative_to(REPO)).lower()]
    for path in paths:
        if path.is_file() and FORMER.encode() in path.read_bytes().lower():
            found.append(str(path.relative_to(REPO)))
    assert found == []
