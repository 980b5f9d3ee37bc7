"""The README and docs/ point at files that exist: every relative link and every `bash examples|scripts/...` path."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
SCRIPT = re.compile(r"\b((?:examples|scripts|ci)/[\w./-]+\.(?:sh|py|yaml))")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_relative_links_resolve(doc: Path) -> None:
    text = doc.read_text()
    links = [t for t in LINK.findall(text) if "://" not in t]
    missing = [t for t in links if not (doc.parent / t).exists()]
    assert not missing, f"{doc.name}: broken links {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_named_scripts_exist(doc: Path) -> None:
    named = set(SCRIPT.findall(doc.read_text()))
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing, f"{doc.name}: names files that do not exist: {missing}"
