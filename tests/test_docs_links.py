"""Every relative link and image in the README, CONTRIBUTING.md and docs/ resolves: the file (or
folder) exists and, for a link into a Markdown page, so does the heading its ``#anchor`` names.
Pages move; this catches the link a move leaves behind. Web links are not fetched."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from conftest import ROOT

PAGES = sorted([ROOT / "README.md", ROOT / "CONTRIBUTING.md", ROOT / "launch" / "README.md",
                *(ROOT / "docs").glob("*.md")])

FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"`[^`]*`")
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def prose_lines(text: str) -> list[str]:
    """The page's lines outside fenced code blocks (links in code are not links)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        lines.append("" if fenced else line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: inline markup dropped, lower case, punctuation other than
    '-' and '_' removed, spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "").replace("*", "").lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of a page, with GitHub's -1, -2 suffixes for repeated headings."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(page.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[tuple[int, str]]:
    """(line number, target) of every inline link, image and reference definition."""
    found = []
    for number, line in enumerate(prose_lines(page.read_text(encoding="utf-8")), start=1):
        line = CODE_SPAN.sub("", line)
        found += [(number, m.group(1)) for m in INLINE_LINK.finditer(line)]
        match = REFERENCE_DEF.match(line)
        if match:
            found.append((number, match.group(1)))
    return found


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """One message per relative link of ``page`` that leads nowhere (paths shown from ``root``)."""
    problems = []
    for number, target in links(page):
        if SCHEME.match(target) or target.startswith("//"):
            continue  # a web or mail address: not checked offline
        path_part, _, fragment = target.partition("#")
        dest = (page.parent / unquote(path_part)).resolve() if path_part else page
        where = f"{page.relative_to(root)}:{number}: {target}"
        if not dest.exists():
            problems.append(f"{where}: no such file")
        elif fragment and dest.suffix == ".md" and unquote(fragment) not in anchors(dest):
            problems.append(f"{where}: no heading #{fragment} in {dest.relative_to(root)}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    assert not broken_links(page), "\n".join(broken_links(page))


def test_the_docs_pages_are_all_checked() -> None:
    assert {"README.md", "manual.md", "results.md", "operations.md"} <= {p.name for p in PAGES}


def test_slugs_follow_github() -> None:
    assert slug("The quickstart (`make demo`)") == "the-quickstart-make-demo"
    assert slug("The seed's ablation, real training, `npu32` and this CPU") == (
        "the-seeds-ablation-real-training-npu32-and-this-cpu")
    assert slug("Shipped rules: `configs/expert_rules_npu32.yaml`") == (
        "shipped-rules-configsexpert_rules_npu32yaml")


def test_a_broken_link_is_reported(tmp_path: Path) -> None:
    (tmp_path / "img.png").write_bytes(b"")
    page = tmp_path / "page.md"
    page.write_text("# Top\n\n## Same name\n\n## Same name\n\n![ok](img.png) [ok](#top) "
                    "[ok](page.md#same-name-1) [web](https://example.org/none) `[code](no.md)`\n"
                    "```\n[fenced](no.md)\n```\n"
                    "[gone](missing.md) ![gone](missing.png) [bad anchor](#nowhere)\n"
                    "[ref]: other/missing.md\n", encoding="utf-8")
    problems = broken_links(page, tmp_path)
    assert [p.split(": ", 1)[1] for p in problems] == [
        "missing.md: no such file", "missing.png: no such file",
        "#nowhere: no heading #nowhere in page.md", "other/missing.md: no such file"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_merge_conflict_is_left_in_a_page(page: Path) -> None:
    """A merge that kept both sides' text as conflict markers (docs/search.md once did)."""
    markers = [n for n, line in enumerate(page.read_text().splitlines(), 1)
               if re.match(r"(<{7} |>{7} |={7}$)", line)]
    assert not markers, f"{page.name}: conflict markers on lines {markers}"
