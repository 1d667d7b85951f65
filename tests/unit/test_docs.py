"""The caller's guide (docs/) stays true: every operation it names exists in the OpenAPI
document, every page is linked from the index, every setting it names is one Burro reads, and
the README and the OpenAPI description send callers to it (not to a SPEC.md that callers do not
have)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from service.settings import Settings
from tests.support import ROOT

DOCS = ROOT / "docs"
INDEX = DOCS / "guide.md"
OPENAPI = json.loads((ROOT / "openapi" / "openapi.json").read_text())
PAGES = sorted(DOCS.glob("*.md"))

_OPERATION = re.compile(r"\b(GET|POST|PUT|DELETE|PATCH) (/(?:v1|health|openapi)[^\s`'\"),?]*)")
_PATH = re.compile(r"`(/(?:v1|health)/[^\s`?]*)")


def _template(path: str) -> str:
    """A path with every `{parameter}` the same, and without a query string."""
    return re.sub(r"\{[^}]+\}", "{}", path.split("?", 1)[0].rstrip("/"))


DOCUMENTED = {
    _template(path): {m.upper() for m in ops if m in ("get", "post", "put", "delete", "patch")}
    for path, ops in OPENAPI["paths"].items()
}


def test_the_guide_has_pages_and_the_index_links_every_one() -> None:
    assert INDEX.exists()
    linked = set(re.findall(r"\]\(([\w-]+\.md)\)", INDEX.read_text()))
    on_disk = {p.name for p in PAGES} - {INDEX.name}
    assert on_disk, "the guide has no pages"
    assert linked == on_disk


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_operation_the_guide_names_exists_in_openapi(page: Path) -> None:
    text = page.read_text()
    for method, path in _OPERATION.findall(text):
        if path.startswith("/openapi"):
            continue
        assert _template(path) in DOCUMENTED, f"{page.name}: {method} {path} is not in openapi"
        assert method in DOCUMENTED[_template(path)], f"{page.name}: {method} {path}"
    for path in _PATH.findall(text):
        assert _template(path) in DOCUMENTED, f"{page.name}: {path} is not in openapi"


def test_the_guide_covers_every_operation_of_the_api() -> None:
    named = {
        _template(path)
        for page in PAGES
        for path in [
            *(p for _, p in _OPERATION.findall(page.read_text())),
            *_PATH.findall(page.read_text()),
        ]
    }
    internal = {"/metrics"}
    missing = sorted(set(DOCUMENTED) - named - internal - {"/v1/upstream/openai/webhooks"})
    assert missing == []


class _RecordingEnv(Mapping[str, str]):
    def __init__(self) -> None:
        self.asked: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        raise KeyError(key)

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.asked.add(key)
        return default

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def test_every_setting_the_guide_names_is_one_burro_reads() -> None:
    env = _RecordingEnv()
    Settings.from_env(env)
    named = {v for page in PAGES for v in re.findall(r"\bBURRO_[A-Z_]+\b", page.read_text())}
    assert named and named <= env.asked, sorted(named - env.asked)


def test_readme_and_openapi_send_callers_to_the_guide_and_link_the_raw_document() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "SPEC.md" not in readme
    assert "(docs/guide.md)" in readme
    assert "(openapi/openapi.json)" in readme and "/openapi/openapi.json" in readme
    description = OPENAPI["info"]["description"]
    assert "SPEC.md" not in description and "docs/guide.md" in description
