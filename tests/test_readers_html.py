"""The HTML reader: the article body without boilerplate, the page's metadata, its charset,
and no exception but SkippedSource for any bytes. Pages are generated here, not the
benchmark's (bench/html.py measures those)."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa.config import Settings
from qa.corpus import Document, SkippedSource, paragraph_spans
from qa.indexer import build_index
from qa.readers import html, read_documents
from qa.store import load_index

from .conftest import FakeEmbedder

BODY = [
    "Lake Baikal, in southern Siberia, is the deepest lake on earth: its floor lies 1,642 "
    "metres below the surface, and it holds about a fifth of all the fresh water in lakes.",
    "The lake is home to the nerpa, the only seal that lives in fresh water alone. Biologists "
    "still argue about how its ancestors reached a lake two thousand kilometres from the sea.",
    "In winter the ice grows more than a metre thick, thick enough for trucks to cross it on "
    "roads the authorities mark out each January and close again when the thaw begins.",
]
BOILERPLATE = {
    "nav": "Home World Business Science Subscribe Sign in",
    "cookie": "We use cookies to improve your experience. Accept all cookies Manage settings",
    "share": "Share on Facebook Share on Twitter Email this article",
    "comments": "Comments (12) SiberiaFan wrote: great article, I loved the seal photos",
    "footer": "Copyright 2024 Example News Ltd. Terms of use Privacy policy Contact us",
    "related": "Related stories: The ten coldest cities Why lakes freeze from the top",
}


def page(
    body: list[str] = BODY,
    head: str = "",
    charset: str = "utf-8",
    heading: str | None = "The deepest lake",
    subheading: str | None = "Life under the ice",
) -> str:
    paragraphs = [f"<p>{p}</p>" for p in body]
    if subheading:
        paragraphs.insert(2, f"<h2>{subheading}</h2>")
    return f"""<!DOCTYPE html>
<html lang="en"><head>
<meta charset="{charset}">
<title>The deepest lake | Example News</title>
{head}
</head><body>
<div id="cookie-banner" class="cookie-consent"><p>{BOILERPLATE["cookie"]}</p>
<button>Accept</button></div>
<header><nav class="main-nav"><ul>{
        "".join(f'<li><a href="/{w}">{w}</a></li>' for w in BOILERPLATE["nav"].split())
    }</ul></nav></header>
<main><article>
{f"<h1>{heading}</h1>" if heading else ""}
<div class="share-bar social"><a href="#">{BOILERPLATE["share"]}</a></div>
{"".join(paragraphs)}
</article>
<aside class="related"><h3>Related</h3><ul><li><a href="/x">{BOILERPLATE["related"]}</a></li>
</ul></aside>
<section id="comments" class="comments"><div class="comment"><p>{BOILERPLATE["comments"]}</p>
</div></section>
</main>
<footer class="site-footer"><p>{BOILERPLATE["footer"]}</p></footer>
</body></html>"""


METADATA = """
<meta property="og:title" content="The deepest lake on earth">
<meta property="og:site_name" content="Example News">
<meta property="article:published_time" content="2024-03-05T09:30:00+00:00">
<meta name="author" content="Anna Petrova">
<meta name="description" content="Why Lake Baikal is so deep.">
<meta name="keywords" content="lakes, Siberia, nerpa">
<link rel="canonical" href="https://news.example.com/2024/03/deepest-lake">
"""


def read_one(text: str | bytes, source: str = "saved/page.html") -> Document:
    data = text.encode("utf-8") if isinstance(text, str) else text
    documents = read_documents(source, data)
    assert len(documents) == 1
    return documents[0]


def test_html_files_are_read_by_this_reader() -> None:
    assert html.SUFFIXES == (".html", ".htm", ".xhtml")
    for suffix in html.SUFFIXES:
        assert read_one(page(), f"a/page{suffix.upper()}").text


def test_the_body_is_in_and_the_boilerplate_is_out() -> None:
    doc = read_one(page())
    for paragraph in BODY:
        assert paragraph in doc.text
    for name, words in BOILERPLATE.items():
        for phrase in (words[:25], words[-25:]):
            assert phrase not in doc.text, name


def test_paragraphs_and_headings_are_blank_line_separated() -> None:
    doc = read_one(page(heading="A heading that is not the title", head=METADATA))
    paragraphs = [doc.text[s:e] for s, e in paragraph_spans(doc.text)]
    assert paragraphs == [
        "A heading that is not the title",
        BODY[0],
        BODY[1],
        "Life under the ice",
        BODY[2],
    ]


def test_the_headline_is_the_title_not_a_passage() -> None:
    doc = read_one(page(heading="The deepest lake on earth", head=METADATA))
    assert doc.title == "The deepest lake on earth"
    assert doc.text.startswith(BODY[0])


def test_lists_and_line_breaks_stay_inside_their_paragraph() -> None:
    items = ["a warm hat and gloves", "crampons for the ice", "a thermos of hot tea"]
    extra = "<ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"
    extra += "<p>Letters to the editor<br>Example News<br>Irkutsk</p>"
    doc = read_one(page(subheading=None).replace(f"<p>{BODY[2]}</p>", extra + f"<p>{BODY[2]}</p>"))
    paragraphs = [doc.text[s:e] for s, e in paragraph_spans(doc.text)]
    assert "\n".join(items) in paragraphs
    assert "Letters to the editor\nExample News\nIrkutsk" in paragraphs


def test_metadata_is_read_from_the_page() -> None:
    doc = read_one(page(head=METADATA))
    assert doc.title == "The deepest lake on earth"  # og:title over <title>
    assert doc.date == "2024-03-05"
    assert doc.author == "Anna Petrova"
    assert doc.url == "https://news.example.com/2024/03/deepest-lake"
    assert doc.tags == ["lakes", "Siberia", "nerpa"]
    assert doc.meta["site_name"] == "Example News"
    assert doc.meta["description"] == "Why Lake Baikal is so deep."
    assert doc.encoding == "utf-8"


def test_json_ld_date_and_article_tags() -> None:
    head = """<script type="application/ld+json">{"@context": "https://schema.org",
    "@type": "NewsArticle", "headline": "The deepest lake on earth",
    "datePublished": "2023-11-20", "author": {"@type": "Person", "name": "Ivan Sokolov"}}
    </script><meta property="article:tag" content="Baikal">
    <meta property="article:tag" content="Wildlife">"""
    doc = read_one(page(head=head))
    assert (doc.date, doc.author) == ("2023-11-20", "Ivan Sokolov")
    assert doc.tags == ["Baikal", "Wildlife"]


def test_title_falls_back_to_the_title_element() -> None:
    doc = read_one(page())
    assert doc.title is not None and doc.title.startswith("The deepest lake")


def test_canonical_link_outside_head_is_still_found() -> None:
    # A stray element in <head> makes the parser put everything after it in <body>.
    head = '<p>oops</p><link rel="canonical" href="https://example.com/baikal">'
    assert read_one(page(head=head)).url == "https://example.com/baikal"


@pytest.mark.parametrize("declared", ["iso-8859-1", "windows-1252", "latin1"])
def test_a_declared_legacy_charset_is_decoded(declared: str) -> None:
    body = [f"{BODY[0]} Café crème, déjà vu — “quoted” ’s", *BODY[1:]]
    data = page(body=body, charset=declared).encode("cp1252")
    doc = read_one(data)
    assert "Café crème, déjà vu — “quoted” ’s" in doc.text
    assert doc.encoding == "cp1252"  # what browsers read latin-1 as


def test_http_equiv_charset_and_xml_declaration() -> None:
    text = page(body=[f"{BODY[0]} Grüße aus Österreich", *BODY[1:]], charset="x")
    meta = text.replace('<meta charset="x">', "").replace(
        "<head>", '<head><meta http-equiv="Content-Type" content="text/html; charset=ISO-8859-15">'
    )
    assert "Grüße aus Österreich" in read_one(meta.encode("iso8859_15")).text
    xhtml = '<?xml version="1.0" encoding="windows-1250"?>\n' + text.replace(
        '<meta charset="x">', ""
    ).replace("Grüße aus Österreich", "Dobrý den, Łódź")
    doc = read_one(xhtml.encode("cp1250"), "page.xhtml")
    assert "Dobrý den, Łódź" in doc.text and doc.encoding == "cp1250"


def test_a_page_re_saved_as_utf8_under_an_old_declaration_reads_as_utf8() -> None:
    body = [f"{BODY[0]} Café crème", *BODY[1:]]
    doc = read_one(page(body=body, charset="iso-8859-1").encode("utf-8"))
    assert "Café crème" in doc.text and doc.encoding == "utf-8"


def test_an_undeclared_page_is_detected_and_utf16_with_a_bom_read() -> None:
    text = page(body=[f"{BODY[0]} Señora Muñoz está aquí", *BODY[1:]]).replace(
        '<meta charset="utf-8">', ""
    )
    assert "Señora Muñoz está aquí" in read_one(text.encode("cp1252")).text
    doc = read_one("\ufeff".encode("utf-16-le") + text.encode("utf-16-le"))
    assert "Señora Muñoz está aquí" in doc.text and doc.encoding == "utf-16"


def test_a_page_without_an_article_is_skipped_with_the_reason() -> None:
    empty = "<html><head><title>Log in</title></head><body><nav><a href='/'>Home</a></nav>"
    empty += "<form><input name='user'><button>Log in</button></form></body></html>"
    with pytest.raises(SkippedSource, match=r"^saved/login\.html: no article text found, skipped"):
        read_one(empty, "saved/login.html")


HOSTILE = {
    "empty": b"",
    "blank": b" \n\t ",
    "binary": bytes(range(256)) * 16,
    "png": b"\x89PNG\r\n\x1a\n" + bytes(200),
    "nul in text": b"<html><body><p>" + BODY[0].encode() + b"\x00</p></body></html>",
    "broken markup": b"<html><body><div><p>unclosed <b>bold <i>it </div></span></p><" + b"<" * 99,
    "only angle brackets": b"<" * 20_000,
    "deeply nested": b"<div>" * 20_000 + BODY[0].encode() + b"</div>" * 20_000,
    "nested inline": b"<b><i><span><a>" * 5_000 + BODY[0].encode(),
    "control chars": b"<p>\x01\x02\x0b\x0c\x1f\x7f " + BODY[0].encode(),
    "bad entities": b"<p>&#0;&#xD800;&#99999999;&#1114112;&bogus; " + BODY[0].encode(),
    "unknown charset": b'<meta charset="no-such-thing"><p>' + BODY[0].encode(),
    "utf-16 declared": b'<meta charset="utf-16"><p>' + BODY[0].encode(),
    "lying charset": b'<meta charset="utf-8"><p>caf\xe9 \xff\xfe ' + BODY[0].encode(),
    "invalid utf-16": b"\xff\xfe" + b"\x00\xd8" * 50,
    "many attributes": b"<p " + b" ".join(b"a%d=1" % i for i in range(20_000)) + b">x</p>",
    "inline image": b'<img src="data:image/png;base64,'
    + b"A" * 2_000_000
    + b'"><p>'
    + BODY[0].encode(),
    "frameset": b"<html><frameset><frame src='a.html'></frameset></html>",
    "svg": b'<svg xmlns="http://www.w3.org/2000/svg"><text>hi</text></svg>',
    "xml bomb": b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;'
    b'&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><x>&c;&c;&c;</x>',
    "script only": b"<html><head><script>" + b"var a = '<p>';" * 5_000 + b"</script></head></html>",
    "too long": b"<p>" + b"word " * (html.MAX_MARKUP // 5 + 1) + b"</p>",
}


@pytest.mark.parametrize("data", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_bytes_give_a_document_or_a_skip_and_nothing_else(data: bytes) -> None:
    try:
        documents = read_documents("hostile.html", data)
    except SkippedSource as exc:
        assert str(exc).startswith("hostile.html: ") and str(exc).endswith("skipped")
        return
    for doc in documents:
        assert doc.text.strip() and "\x00" not in doc.text
        assert all(doc.text[s:e].strip() for s, e in paragraph_spans(doc.text))


def test_a_long_inline_image_costs_nothing_and_keeps_the_text() -> None:
    data = HOSTILE["inline image"] + b"</p><p>" + BODY[1].encode() + b"</p>"
    assert BODY[0] in read_one(data).text


def test_an_html_page_is_indexed_and_its_citations_slice_the_stored_text(
    tmp_path: Path, fake: FakeEmbedder
) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "saved").mkdir(parents=True)
    (corpus / "saved" / "baikal.html").write_bytes(page(head=METADATA).encode("utf-8"))
    (corpus / "notes.md").write_text("# Notes\n\nBread rises because yeast ferments sugar.\n")
    settings = Settings(corpus=corpus, index=tmp_path / "index")
    report = build_index(settings, embedder=fake)
    assert report.documents == 2
    index = load_index(settings.index)
    chunks = [c for c in index.chunks if c.source == "saved/baikal.html"]
    assert chunks and all(c.title == "The deepest lake on earth" for c in chunks)
    stored = index.document("saved/baikal.html", None)
    assert stored is not None
    assert (stored.url, stored.date, stored.encoding) == (
        "https://news.example.com/2024/03/deepest-lake",
        "2024-03-05",
        "utf-8",
    )
    for chunk in chunks:
        assert stored.text[chunk.start : chunk.end] == chunk.text
    indexed = " ".join(c.text for c in chunks)
    assert all(p in indexed for p in BODY)
    assert not any(w[:25] in stored.text for w in BOILERPLATE.values())
