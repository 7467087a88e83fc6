"""The web page in real headless Chromium (Debian's, driven by Playwright) against a server
this test starts on 127.0.0.1: type a question, see the citation, open it, see the passage
highlighted; a filter that narrows the results; a linkable ?q=; a screenshot that is not
blank."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from qa.config import Settings
from qa.indexer import build_index

from .conftest import FakeEmbedder, running_server

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTICLES = {
    "news/lakes.md": "---\ntitle: Lakes of the north\ndate: 2024-03-05\ntags: [nature]\n---\n\n"
    "Lake Baikal is the deepest lake in the world, reaching 1642 metres at its deepest point "
    "in Siberia.\n\nIt holds about a fifth of the fresh water on the surface of the earth.\n",
    "blog/ponds.md": "---\ntitle: Garden ponds\ndate: 2021-06-01\ntags: [garden]\n---\n\n"
    "A garden pond is a small lake you dig yourself; it is never as deep as Lake Baikal in "
    "Siberia, but frogs like it.\n",
    "blog/bread.md": "---\ntitle: Bread\ndate: 2022-01-01\n---\n\nBread rises because "
    "yeast ferments sugars and releases carbon dioxide gas into the dough.\n",
}

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")


@pytest.fixture
def url(tmp_path: Path, fake_models: dict[str, FakeEmbedder]) -> Iterator[str]:
    corpus = tmp_path / "corpus"
    for name, text in ARTICLES.items():
        (corpus / name).parent.mkdir(parents=True, exist_ok=True)
        (corpus / name).write_text(text, encoding="utf-8")
    settings = Settings(corpus=corpus, index=tmp_path / "index")
    build_index(settings, embedder=FakeEmbedder())
    with running_server(settings) as address:
        yield address


def test_page_searches_opens_the_citation_and_filters(url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 800})
            page.set_default_timeout(15_000)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url + "/")
            expect(page.locator("#source-label")).to_be_visible()  # the index has folders
            page.locator("#q").fill("What is the deepest point of the world lake, in metres?")
            page.keyboard.press("Enter")
            first = page.locator(".hit").first
            expect(first.locator(".citation")).to_contain_text("news/lakes.md ¶1")
            expect(first).to_contain_text("2024-03-05")
            expect(first.locator("mark")).to_contain_text("Baikal")
            total = page.locator(".hit").count()
            assert total == 4  # every passage of the three documents
            assert "q=What+is+the+deepest" in page.url  # linkable
            first.locator(".citation").focus()
            page.keyboard.press("Enter")  # from the keyboard
            cited = page.locator("#doc-text .cited")
            expect(cited).to_be_visible()
            expect(cited).to_contain_text("deepest lake in the world")
            expect(cited.locator("mark")).to_contain_text("Baikal")
            shot = tmp_path / "page.png"
            page.screenshot(path=str(shot))
            page.keyboard.press("Escape")
            expect(page.locator("#results")).to_be_visible()
            page.locator("#source").select_option("blog/**")
            page.locator("#q").press("Enter")
            expect(page.locator(".hit")).to_have_count(2)  # the filter narrows: blog/ only
            for text in page.locator(".hit .citation").all_inner_texts():
                assert text.startswith("blog/")
            page.goto(url + "/?q=yeast+bread&source=blog%2F**")  # a link runs its search
            expect(page.locator(".hit").first.locator(".citation")).to_contain_text("blog/bread.md")
            assert page.locator("#source").input_value() == "blog/**"
            assert not errors, errors
        finally:
            browser.close()
    from PIL import Image

    image = Image.open(shot).convert("L")
    low, high = image.getextrema()
    assert shot.stat().st_size > 5000 and high - low > 100  # not blank
