"""docs/ as a site: every relative link and anchor resolves, and every page is reachable
from docs/index.md (which README links)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest
from docs_support import DOCS, REPO, anchors, links, pages, slug

PAGES = pages()


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(REPO)) for p in paths]


def _local(target: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I)  # http:, mailto:, ...


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_relative_links_and_anchors_resolve(page: Path) -> None:
    broken = []
    for line, target in links(page):
        if not _local(target):
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (page.parent / unquote(path_part)).resolve() if path_part else page
        where = f"{page.relative_to(REPO)}:{line}: {target}"
        if not resolved.exists():
            broken.append(f"{where}: no such file")
            continue
        if not resolved.is_relative_to(REPO):
            broken.append(f"{where}: points outside the repository")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{where}: no heading with anchor #{anchor}")
    assert not broken, "\n".join(broken)


def _linked_pages(page: Path) -> set[Path]:
    out = set()
    for _, target in links(page):
        if _local(target) and target.partition("#")[0]:
            out.add((page.parent / unquote(target.partition("#")[0])).resolve())
    return out


def test_every_page_is_reachable_from_the_index() -> None:
    index = DOCS / "index.md"
    assert index.resolve() in _linked_pages(REPO / "README.md"), "README must link docs/index.md"
    reached, todo = {index.resolve()}, [index.resolve()]
    while todo:
        for target in _linked_pages(todo.pop()):
            if target.suffix == ".md" and target.is_relative_to(DOCS) and target not in reached:
                reached.add(target)
                todo.append(target)
    missing = [p for p in DOCS.glob("*.md") if p.resolve() not in reached]
    assert not missing, f"pages not linked from docs/index.md (directly or not): {missing}"


def test_the_checker_sees_broken_links(tmp_path: Path) -> None:
    # The checker itself: a missing file and a missing anchor are both found.
    page = tmp_path / "page.md"
    page.write_text(
        "# A `code` heading: yes\n\n[ok](#a-code-heading-yes) [gone](other.md) "
        "[no](#nowhere) `[not a link](x.md)`\n\n```\n[in code](y.md)\n```\n"
    )
    assert slug("A `code` heading: yes") == "a-code-heading-yes"
    assert anchors(page) == {"a-code-heading-yes"}
    assert [t for _, t in links(page)] == ["#a-code-heading-yes", "other.md", "#nowhere"]
