"""Reading the documentation as data: pages, fenced blocks with their markers, links, headings.

Conventions the docs follow (docs/index.md describes them for writers):

- A fence's info string is the language, optionally followed by ``title="path"``: the block is
  the content of that file (the plugin guides' files, a config a later snippet reads).
- HTML comments on the lines right before a fence are markers for the tests:
  ``<!-- not-validated: reason -->`` leaves the block out (the reason is required), and
  ``<!-- settings-only: reason -->`` validates a TOML config without loading the plugins it
  names (for configs of plugins that only the plugin-guide test installs).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>```+|~~~+)\s*(?P<info>.*)$")
_MARKER = re.compile(r"^\s*<!--\s*(?P<name>[\w-]+)\s*(?::\s*(?P<value>.*?))?\s*-->\s*$")
_TITLE = re.compile(r"""title=(?P<q>["'])(?P<title>.+?)(?P=q)""")
_LINK = re.compile(
    r"(?<!!)\[(?:[^\[\]]|\[[^\]]*\])*\]\((?P<target><[^>]+>|[^)\s]+)(?:\s+\"[^\"]*\")?\)"
)
_IMAGE = re.compile(r"!\[[^\]]*\]\((?P<target>[^)\s]+)\)")
_REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s+(?P<target>\S+)", re.M)
_HEADING = re.compile(r"^(?P<hashes>#{1,6})\s+(?P<text>.+?)\s*#*\s*$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the block's first content line
    lang: str
    title: str | None
    text: str
    markers: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def pages() -> list[Path]:
    """Every Markdown page: README.md and everything under docs/ (examples included)."""
    found = [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]
    return [p for p in found if not any(part.startswith(".") for part in p.parts)]


def blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a page, in order, with their markers and title."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence = opening["fence"]
        info = opening["info"].strip()
        lang = info.split(maxsplit=1)[0].lower() if info else ""
        title = m["title"] if (m := _TITLE.search(info)) else None
        markers: dict[str, str] = {}
        j = i - 1
        while j >= 0 and (marker := _MARKER.match(lines[j])):
            markers.setdefault(marker["name"], marker["value"] or "")
            j -= 1
        body: list[str] = []
        k = i + 1
        while k < len(lines) and not (
            lines[k].strip().startswith(fence[0] * len(fence))
            and set(lines[k].strip()) == {fence[0]}
        ):
            body.append(lines[k][len(opening["indent"]) :])
            k += 1
        out.append(Block(path, i + 2, lang, title, "\n".join(body) + "\n", markers))
        i = k + 1
    return out


def prose(path: Path, *, code_spans: bool = False) -> str:
    """The page without its fenced blocks (and without inline code unless ``code_spans``),
    for finding links and headings."""
    lines = path.read_text(encoding="utf-8").splitlines()
    kept: list[str] = []
    fence: str | None = None
    for line in lines:
        opening = _FENCE.match(line)
        if fence is None and opening:
            fence = opening["fence"][0] * len(opening["fence"])
            kept.append("")
            continue
        if fence is not None:
            if line.strip().startswith(fence) and set(line.strip()) == {fence[0]}:
                fence = None
            kept.append("")
            continue
        kept.append(line if code_spans else re.sub(r"(`+)(?:(?!\1).)+?\1", "``", line))
    return "\n".join(kept)


def links(path: Path) -> list[tuple[int, str]]:
    """(line, target) of every link and image in the page's prose."""
    found: list[tuple[int, str]] = []
    for number, line in enumerate(prose(path).splitlines(), start=1):
        for pattern in (_LINK, _IMAGE):
            for m in pattern.finditer(line):
                found.append((number, m["target"].strip("<>")))
    text = prose(path)
    for m in _REF_DEF.finditer(text):
        found.append((text.count("\n", 0, m.start()) + 1, m["target"]))
    return found


def slug(text: str) -> str:
    """GitHub's anchor for a heading: the rendered text, lower case, punctuation dropped,
    spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link renders as its text
    text = text.replace("`", "").strip().lower()
    kept = []
    for ch in text:
        if ch in " -_" or unicodedata.category(ch)[0] in "LN":
            kept.append("-" if ch == " " else ch)
    return "".join(kept)


def anchors(path: Path) -> set[str]:
    """Every anchor a page offers: its headings' slugs (with GitHub's -1, -2 for repeats)
    and explicit ``<a id="...">`` / ``<a name="...">`` targets."""
    seen: dict[str, int] = {}
    out: set[str] = set()
    for line in prose(path, code_spans=True).splitlines():
        m = _HEADING.match(line)
        if not m:
            continue
        base = slug(m["text"])
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    out.update(re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", path.read_text(encoding="utf-8")))
    return out
