"""The README and docs/ stand on their own: nothing in them points outside the repository, and the
files they name exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

OUTSIDE = re.compile(r"\.\./|/work/|\bshared/")
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")
# A path in backticks into one of the repository's own folders: `bot/web/oidc.py`, `docs/API.md`.
REPO_PATH = re.compile(r"`((?:bot|services|storage|handlers|tests|bench|docs|deploy)/[\w./-]*)`")
INLINE_CODE = re.compile(r"`[^`\n]*`")
# Made when the service runs or is deployed, not shipped: the benchmark's cache, the certificates.
CREATED_LATER = {"bench/.cache/", "deploy/tls/"}


def names(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("doc", DOCS, ids=names)
def test_nothing_points_outside_the_repository(doc: Path) -> None:
    found = [
        f"{names(doc)}:{number}: {line.strip()}"
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("doc", DOCS, ids=names)
def test_named_files_exist(doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    missing = []
    for target in MARKDOWN_LINK.findall(INLINE_CODE.sub("", text)):
        path = target.split("#", 1)[0]
        if not path or re.match(r"^[a-z]+:", path):  # an anchor on the page, a URL
            continue
        if not (doc.parent / path).exists():
            missing.append(target)
    for path in REPO_PATH.findall(text):
        if path not in CREATED_LATER and not (ROOT / path).exists():
            missing.append(path)
    assert not missing, f"{names(doc)} names what the repository does not have: {missing}"


def test_the_product_contract_is_in_the_repository() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/PRODUCT.md)" in readme
    contract = (ROOT / "docs" / "PRODUCT.md").read_text(encoding="utf-8")
    for heading in ("## Roles", "## Statuses and who may change them", "## Fixed names"):
        assert heading in contract
