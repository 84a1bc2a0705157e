"""The README and docs/ link to each other by relative paths; a moved section or renamed heading must not
leave a newcomer at a dead link, and every page (with the measurements it holds) stays reachable from the
README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)


def prose(text: str) -> str:
    """Markdown without code blocks: a `# comment` in a shell block is not a heading, and brackets in
    code are not links."""
    return FENCE.sub("", text)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its text lower-cased, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every anchor a page offers; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(prose(page.read_text(encoding="utf-8"))):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def relative_links(page: Path) -> list[str]:
    """The relative link and image targets of a page, outside code."""
    text = INLINE_CODE.sub("CODE", prose(page.read_text(encoding="utf-8")))
    return [target for target in LINK.findall(text) if not EXTERNAL.match(target)]


def broken(page: Path, target: str) -> str | None:
    """Why a link from page to target leads nowhere, or None when it resolves."""
    path_part, _, anchor = target.partition("#")
    destination = (page.parent / path_part).resolve() if path_part else page
    if not destination.exists():
        return f"{target}: no such file {destination.relative_to(ROOT)}"
    if anchor and destination.suffix == ".md" and anchor not in anchors(destination):
        return f"{target}: no heading with anchor #{anchor} in {destination.relative_to(ROOT)}"
    return None


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    problems = [reason for target in relative_links(page) if (reason := broken(page, target))]
    assert problems == []


def test_every_docs_page_is_reachable_from_the_readme() -> None:
    reached = {ROOT / "README.md"}
    frontier = [ROOT / "README.md"]
    while frontier:
        page = frontier.pop()
        for target in relative_links(page):
            destination = (page.parent / target.partition("#")[0]).resolve()
            if destination.suffix == ".md" and destination.exists() and destination not in reached:
                reached.add(destination)
                frontier.append(destination)
    assert sorted(str(page.relative_to(ROOT)) for page in set(PAGES) - reached) == []


def test_readme_stays_short() -> None:
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) < 160


def test_slug_matches_github() -> None:
    assert slug("Serving: `ponder serve`") == "serving-ponder-serve"
    assert slug("Accuracy against compute on `gsm_symbolic`") == "accuracy-against-compute-on-gsm_symbolic"
    assert slug("Early stopping, cancellation and what is billed") == (
        "early-stopping-cancellation-and-what-is-billed"
    )
    assert slug("Throughput (measured)") == "throughput-measured"
