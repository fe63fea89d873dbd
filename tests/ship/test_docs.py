"""The docs stand on their own: every link inside them points at a file (and heading) of this repository, and none
leads outside it, so that the published package's and a checkout's docs never send a reader to a page that moved."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from tests.services import ROOT

DOCS = sorted({path for path in (ROOT / "docs").glob("*.md")}
              | {ROOT / name for name in ("README.md", "CHANGELOG.md", "clients/js/README.md", "bench/README.md",
                                          "examples/web-feed/README.md", "clients/react/README.md",
                                          "examples/react-feed/README.md")})
# Outside pages a doc may link to, each with why. Empty: every standard the docs rely on is named, not linked.
ALLOWED: dict[str, str] = {}
# Addresses that are not pages elsewhere: the reader's own machine, the names RFC 2606 keeps for examples, and the
# placeholder host:port
LOCAL_HOSTS = re.compile(r"(localhost|127(\.\d+){3}|\[::1\]|host|([\w-]+\.)*example\.(com|org|net))(:(\d+|port))?$")

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")   # [text](target "title")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s.*)?$", re.MULTILINE)   # [name]: target
URL = re.compile(r"https?://[^\s)<>`\"']+")
FENCE = re.compile(r"^(```|~~~).*?^\1\s*$", re.MULTILINE | re.DOTALL)


def prose(text: str) -> str:
    """The text outside fenced code blocks (code shows commands and configuration, not links)."""
    return FENCE.sub("", text)


def anchors(path: Path) -> set[str]:
    """The heading anchors GitHub makes: lower case, punctuation dropped, spaces to hyphens, repeats numbered."""
    found: set[str] = set()
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", prose(path.read_text()), re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.replace("`", "").lower()).replace(" ", "-")
        candidate, n = slug, 0
        while candidate in found:
            n += 1
            candidate = f"{slug}-{n}"
        found.add(candidate)
    return found


def links(path: Path) -> list[str]:
    text = prose(path.read_text())
    return LINK.findall(text) + REFERENCE.findall(text)


def test_the_docs_exist_and_are_in_git():
    tracked = set(subprocess.run(["git", "ls-files", "*.md"], cwd=ROOT, capture_output=True, text=True,
                                 timeout=30).stdout.split())
    if not tracked:
        pytest.skip("not a git checkout")
    assert {str(path.relative_to(ROOT)) for path in DOCS} <= tracked


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_relative_link_points_into_the_repository(doc):
    broken = []
    for target in links(doc):
        parsed = urlparse(target)
        if parsed.scheme or target.startswith("//"):
            continue   # absolute: the next test's
        if not parsed.path:   # #heading in the same file
            if parsed.fragment not in anchors(doc):
                broken.append(target)
            continue
        resolved = (doc.parent / unquote(parsed.path)).resolve()
        if not resolved.is_relative_to(ROOT) or not resolved.exists():
            broken.append(target)
        elif parsed.fragment and resolved.suffix == ".md" and parsed.fragment not in anchors(resolved):
            broken.append(target)
    assert not broken, f"{doc.relative_to(ROOT)}: links to nothing in the repository: {broken}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_no_link_leads_outside(doc):
    """Outside the code blocks, no http(s) address but the reader's own machine, the example names, or ALLOWED."""
    outside = [url for url in URL.findall(prose(doc.read_text()))
               if not LOCAL_HOSTS.match(urlparse(url).netloc) and url.rstrip(".,;:") not in ALLOWED]
    assert not outside, f"{doc.relative_to(ROOT)} links outside the repository: {outside}"
    for target in links(doc):
        assert urlparse(target).scheme in ("", "mailto") or target in ALLOWED or \
            LOCAL_HOSTS.match(urlparse(target).netloc), f"{doc.relative_to(ROOT)}: {target}"


@pytest.mark.parametrize("doc", ["README.md", "examples/web-feed/README.md", "examples/react-feed/README.md"])
def test_where_static_is_told_its_policy_is_too(doc):
    """A newcomer's inline <style> was dropped without a word (issue 33): wherever `--static` is shown, the policy
    its pages get is said, and the setting that replaces it."""
    text = " ".join((ROOT / doc).read_text().split())
    assert "--static" in text
    assert "Content-Security-Policy" in text and "HAPTA_STATIC_CSP" in text and "<style>" in text, doc


def test_the_settings_table_lists_the_static_policy():
    from hapta.gateway.static import POLICY
    row = next(line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| `HAPTA_STATIC_CSP`"))
    assert POLICY.split("; img-src")[0] in row   # the default it names is the one the gateway sends
