"""The README and the pages under docs/: every relative link (Markdown links
and images) points at a file of the repository, and every in-page anchor at
a heading of its page."""

import glob
import os
import re

import pytest
from binaries import ROOT

PAGES = ["README.md", *sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _slug(heading):
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _links(text):
    # Code blocks hold commands, not links.
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return [m.group(1) for m in LINK.finditer(text)]


def test_every_docs_page_is_reached_from_the_readme():
    seen, todo = set(), ["README.md"]
    while todo:
        page = todo.pop()
        if page in seen:
            continue
        seen.add(page)
        folder = os.path.dirname(page)
        for target in _links(open(os.path.join(ROOT, page)).read()):
            path = target.partition("#")[0]
            if path.endswith(".md") and "://" not in path:
                linked = os.path.normpath(os.path.join(folder, path))
                if os.path.exists(os.path.join(ROOT, linked)):
                    todo.append(linked)
    missing = [page for page in PAGES if page not in seen]
    assert not missing, missing


@pytest.mark.parametrize("page", PAGES)
def test_every_relative_link_resolves(page):
    text = open(os.path.join(ROOT, page)).read()
    folder = os.path.dirname(os.path.join(ROOT, page))
    broken = []
    for target in _links(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = os.path.normpath(os.path.join(folder, path)) if path else os.path.join(ROOT, page)
        if not os.path.exists(file):
            broken.append(target)
        elif anchor and file.endswith(".md"):
            headings = re.findall(r"^#+ (.*)$", open(file).read(), flags=re.M)
            if anchor not in {_slug(h) for h in headings}:
                broken.append(target)
    assert not broken, f"{page}: {broken}"
