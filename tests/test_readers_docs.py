"""PDF, DOCX and EPUB readers, on files made here: reading order, headings, metadata, pages on
passages and in citations, files that cannot be read, hostile bytes, and offsets that slice the
stored text end to end."""

from __future__ import annotations

import hashlib
import io
import random
import zipfile
from pathlib import Path

import pytest

from qa import schema
from qa.config import Settings
from qa.corpus import Chunk, ChunkingParams, Document, SkippedSource, chunk_documents
from qa.indexer import build_index
from qa.readers import pdf, read_documents
from qa.readers.pages import Line, page_text
from qa.render import citation
from qa.search import Hit
from qa.store import load_index

from .conftest import FakeEmbedder

PARAMS = ChunkingParams(max_tokens=200)

# --- fixtures: a two-column PDF with running header, footer, page numbers, hyphenation -------

LEFT = [
    "Lake Baikal is the deepest lake in the world and lies in a rift valley in southern Siberia.",
    "Its water is clear enough to see forty metres down, and in winter the ice is thick enough "
    "for trucks to cross on roads marked across it.",
]
RIGHT = [
    "The nerpa seal lives only in this lake, far from any ocean; how it arrived is still argued.",
    "Fishermen on the eastern shore catch omul, a whitefish smoked and sold along the railway.",
]


def _pdf(pages: list[list[list[str]]], *, title: str | None = "Lakes of Siberia") -> bytes:
    """pages -> columns -> lines, drawn right column first (so drawing order is not reading
    order), with a running header, a footer 'Page n of N' and metadata."""
    from reportlab.pdfgen.canvas import Canvas

    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=(612, 792), invariant=1)
    if title:
        canvas.setTitle(title)
    canvas.setAuthor("Ann Writer")
    canvas.setKeywords("lakes, Siberia")
    canvas.setDateFormatter(lambda *_: "D:20240305093000Z")
    for number, columns in enumerate(pages, start=1):
        for col in reversed(range(len(columns))):
            y = 700.0
            for line in columns[col]:
                if line == "":
                    y -= 8  # paragraph gap
                    continue
                canvas.setFont("Helvetica", 10)
                canvas.drawString(60 + col * 260, y, line)
                y -= 12
        canvas.setFont("Helvetica", 8)
        canvas.drawString(60, 750, "Journal of Lakes — Volume 3")
        canvas.drawCentredString(306, 40, f"Page {number} of {len(pages)}")
        canvas.showPage()
    canvas.save()
    return buffer.getvalue()


# Each column's lines as they would be set; "" is a paragraph break.
PAGE_1 = [
    [
        "Lake Baikal is the deepest lake in the world",
        "and lies in a rift valley in southern Sibe-",
        "ria, where it has lain for millions of years.",
        "",
        "Its water is clear enough to see forty metres",
        "down, and in winter the ice is thick enough",
    ],
    [
        "for trucks to cross on roads marked across it",
        "from one shore to the other in the cold.",
        "",
        "The nerpa seal lives only in this lake, far",
        "from any ocean; how it arrived is still argu-",
    ],
]
PAGE_2 = [
    [
        "ed by the scientists who study the seals.",
        "",
        "Fishermen on the eastern shore catch omul, a",
        "whitefish smoked and sold along the railway.",
    ],
    [],
]


def _paragraphs(text: str) -> list[str]:
    return [p for p in text.split("\n\n") if p]


def test_pdf_reads_columns_in_order_without_furniture_and_joins_hyphenated_words() -> None:
    [doc] = pdf.read("lakes.pdf", _pdf([PAGE_1, PAGE_2]))
    assert _paragraphs(doc.text) == [
        "Lake Baikal is the deepest lake in the world and lies in a rift valley in southern "
        "Siberia, where it has lain for millions of years.",
        "Its water is clear enough to see forty metres down, and in winter the ice is thick "
        "enough for trucks to cross on roads marked across it from one shore to the other in "
        "the cold.",
        "The nerpa seal lives only in this lake, far from any ocean; how it arrived is still "
        "argued by the scientists who study the seals.",
        "Fishermen on the eastern shore catch omul, a whitefish smoked and sold along the railway.",
    ]
    assert "Journal" not in doc.text and "Page" not in doc.text
    assert (doc.title, doc.author, doc.date, doc.tags) == (
        "Lakes of Siberia",
        "Ann Writer",
        "2024-03-05T09:30:00+00:00",
        ["lakes", "Siberia"],
    )
    assert doc.pages == [0, doc.text.index("ed by the scientists")]  # argu-|ed: in the word


def test_pdf_pages_reach_passages_json_and_citations() -> None:
    [doc] = pdf.read("lakes.pdf", _pdf([PAGE_1, PAGE_2]))
    chunks = chunk_documents([doc], PARAMS, FakeEmbedder().count_tokens)
    pages = {c.text.split()[0]: (c.page_start, c.page_end) for c in chunks}
    assert pages == {"Lake": (1, 1), "Its": (1, 1), "The": (1, 2), "Fishermen": (2, 2)}
    seal = next(c for c in chunks if c.text.startswith("The nerpa"))
    first = next(c for c in chunks if c.text.startswith("Lake"))
    root = Path("corpus")
    assert citation(root, Hit(seal, 0.9, 1, (0, 1))).endswith(", pp. 1–2")
    assert citation(root, Hit(first, 0.9, 1, (0, 1))).endswith(", p. 1")
    body = schema.passage(seal)
    assert (body["page_start"], body["page_end"]) == (1, 2)


def test_chunks_of_documents_without_pages_are_as_before() -> None:
    doc = Document("a.txt", None, None, "One paragraph of plain text with enough words in it.\n")
    [chunk] = chunk_documents([doc], PARAMS, FakeEmbedder().count_tokens)
    assert (chunk.id, chunk.page_start, chunk.page_end) == ("a.txt#1", None, None)
    assert chunk.sha256 == hashlib.sha256(chunk.text.encode()).hexdigest()
    assert citation(Path("c"), Hit(chunk, 0.5, 1, (0, 1))).endswith("chars 0–52")
    old = {k: v for k, v in vars(chunk).items() if not k.startswith("page_")}
    assert Chunk(**old) == chunk  # a chunks.jsonl line from before pages still loads


def test_pdf_title_from_the_first_page_when_the_info_has_none() -> None:
    from reportlab.pdfgen.canvas import Canvas

    buffer = io.BytesIO()
    canvas = Canvas(buffer, invariant=1)  # reportlab's info says "untitled", "anonymous"
    canvas.setFont("Helvetica-Bold", 18)
    canvas.drawString(72, 720, "A Short History of Ice")
    canvas.setFont("Helvetica", 10)
    canvas.drawString(72, 690, "Ice forms on lakes when the water at the top cools below zero.")
    canvas.showPage()
    canvas.save()
    [doc] = pdf.read("ice.pdf", buffer.getvalue())
    assert (doc.title, doc.author) == ("A Short History of Ice", None)
    assert doc.text[: doc.title_end] == "A Short History of Ice"


def test_pdf_without_a_text_layer_is_skipped_saying_so() -> None:
    from reportlab.pdfgen.canvas import Canvas

    buffer = io.BytesIO()
    canvas = Canvas(buffer)
    canvas.rect(72, 72, 300, 500, fill=1)  # what a scan is to a text extractor: no text
    canvas.showPage()
    canvas.save()
    with pytest.raises(SkippedSource, match=r"^scan\.pdf: no text layer .*OCR.*, skipped$"):
        read_documents("scan.pdf", buffer.getvalue())


def test_encrypted_pdf_is_skipped_saying_so() -> None:
    from reportlab.pdfgen.canvas import Canvas

    buffer = io.BytesIO()
    canvas = Canvas(buffer, encrypt="secret")
    canvas.drawString(72, 720, "Nobody reads this without the password.")
    canvas.showPage()
    canvas.save()
    with pytest.raises(SkippedSource, match=r"^locked\.pdf: encrypted"):
        read_documents("locked.pdf", buffer.getvalue())


def test_page_layout_reads_bands_then_columns_and_drops_repeated_edges() -> None:
    def line(text: str, x: float, y: float, page: int = 0, width: float = 200) -> Line:
        return Line(text, x, y, x + width, y + 10, page)

    pages = [
        [
            line("Right column ends a paragraph.", 320, 600, width=120),
            line("Left column first line of the text here.", 60, 600),
            Line("A title over both columns", 60, 680, 360, 696),
            line("Running head", 60, 760, width=60),
            line("iv", 300, 40, width=10),
        ],
        [line("Running head", 60, 760, 1, width=60), line("Body of page two.", 60, 600, 1)],
    ]
    laid = page_text(pages)
    assert _paragraphs(laid.text) == [
        "A title over both columns",
        "Left column first line of the text here. Right column ends a paragraph.",
        "Body of page two.",
    ]
    assert laid.pages == [0, laid.text.index("Body")]


# --- DOCX ------------------------------------------------------------------------------------


def _docx() -> bytes:
    import datetime

    import docx

    document = docx.Document()
    document.core_properties.title = "Field Notes"
    document.core_properties.author = "Ann Writer"
    document.core_properties.created = datetime.datetime(2023, 11, 2, 8, 0, 0)
    document.core_properties.keywords = "notes; lakes"
    document.add_heading("Field Notes", 0)
    document.add_paragraph("The first paragraph says where the notes were taken, near a lake.")
    document.add_heading("Birds", 1)
    document.add_paragraph("Herons stood in the reeds at dawn and left before the sun rose.")
    table = document.add_table(rows=2, cols=2)
    for r, row in enumerate([("species", "count"), ("heron", "3")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    document.add_paragraph("A last paragraph, after the table, closes the notes for the day.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def test_docx_paragraphs_headings_and_tables_in_order_with_core_properties() -> None:
    [doc] = read_documents("notes.docx", _docx())
    assert _paragraphs(doc.text) == [
        "Field Notes",
        "The first paragraph says where the notes were taken, near a lake.",
        "Birds",
        "Herons stood in the reeds at dawn and left before the sun rose.",
        "species | count\nheron | 3",
        "A last paragraph, after the table, closes the notes for the day.",
    ]
    assert (doc.title, doc.author, doc.date, doc.tags) == (
        "Field Notes",
        "Ann Writer",
        "2023-11-02T08:00:00+00:00",
        ["notes", "lakes"],
    )
    assert doc.text[: doc.title_end] == "Field Notes"
    chunks = chunk_documents([doc], PARAMS, FakeEmbedder().count_tokens)
    assert chunks[0].text.startswith("The first paragraph")  # the title is context, not a passage
    assert all(doc.text[c.start : c.end] == c.text for c in chunks)


def test_docx_bomb_is_skipped_within_the_memory_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from qa.readers import archive

    monkeypatch.setattr(archive, "MAX_UNZIPPED", 1 << 20)
    buffer = io.BytesIO()
    with zipfile.ZipFile(_docx_copy(buffer), "a", zipfile.ZIP_DEFLATED) as z:
        with z.open("word/padding.xml", "w") as member:
            for _ in range(4):
                member.write(b"\0" * (1 << 20))
    with pytest.raises(SkippedSource, match="zip bomb"):
        read_documents("bomb.docx", buffer.getvalue())


def _docx_copy(buffer: io.BytesIO) -> io.BytesIO:
    buffer.write(_docx())
    buffer.seek(0)
    return buffer


# --- EPUB ------------------------------------------------------------------------------------

CONTAINER = """<?xml version="1.0"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles><rootfile full-path="OEBPS/content.opf"
   media-type="application/oebps-package+xml"/></rootfiles></container>"""
OPF = """<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
    <dc:identifier id="id">urn:uuid:1</dc:identifier>
    <dc:title>A Book of Lakes</dc:title>
    <dc:creator>Ann Writer</dc:creator><dc:creator>Bo Editor</dc:creator>
    <dc:date>2021-06-01</dc:date>
    <dc:subject>lakes</dc:subject><dc:subject>travel</dc:subject>
    <dc:language>en</dc:language>
  </metadata>
  <manifest>
    <item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>
    <item id="c1" href="text/one.xhtml" media-type="application/xhtml+xml"/>
    <item id="c2" href="text/two%20b.xhtml" media-type="application/xhtml+xml"/>
    <item id="c3" href="text/three.xhtml" media-type="application/xhtml+xml"/>
  </manifest>
  <spine><itemref idref="c2"/><itemref idref="c1"/><itemref idref="c3"/></spine>
</package>"""
NAV = """<?xml version="1.0" encoding="UTF-8"?>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops"><body>
<nav epub:type="toc"><ol><li><a href="text/two%20b.xhtml">Ice Roads</a></li>
<li><a href="text/one.xhtml#start">Deep Water</a></li></ol></nav></body></html>"""


def _chapter(body: str, title: str = "t") -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<html xmlns="http://www.w3.org/1999/xhtml">'
        f"<head><title>{title}</title><style>p {{ color: red }}</style></head>"
        f"<body>{body}</body></html>"
    )


def _epub() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("mimetype", "application/epub+zip", zipfile.ZIP_STORED)
        z.writestr("META-INF/container.xml", CONTAINER)
        z.writestr("OEBPS/content.opf", OPF)
        z.writestr("OEBPS/nav.xhtml", NAV)
        z.writestr(
            "OEBPS/text/one.xhtml",
            _chapter(
                "<h1>Deep Water</h1><p>Baikal is deep&nbsp;and old, <em>older</em> than any"
                " other lake.</p><ul><li>First fact.</li><li>Second fact.</li></ul>"
            ),
        )
        z.writestr(  # no heading: its title comes from the table of contents
            "OEBPS/text/two b.xhtml",
            _chapter("<div><p>In winter, trucks drive on the ice.</p><p>Roads are marked.</p>"),
        )
        z.writestr(  # no heading and not in the table of contents: its <title>
            "OEBPS/text/three.xhtml",
            _chapter("<p>The seals came from the Arctic, some say.</p>", "Seals"),
        )
    return buffer.getvalue()


def test_epub_chapters_in_spine_order_each_under_its_title_with_opf_metadata() -> None:
    [doc] = read_documents("lakes.epub", _epub())
    assert _paragraphs(doc.text) == [
        "Ice Roads",
        "In winter, trucks drive on the ice.",
        "Roads are marked.",
        "Deep Water",
        "Baikal is deep and old, older than any other lake.",
        "First fact.",
        "Second fact.",
        "Seals",
        "The seals came from the Arctic, some say.",
    ]
    assert (doc.title, doc.author, doc.date, doc.tags) == (
        "A Book of Lakes",
        "Ann Writer, Bo Editor",
        "2021-06-01",
        ["lakes", "travel"],
    )
    assert doc.meta == {"language": "en"}


# --- hostile input ---------------------------------------------------------------------------


def _hostile(valid: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    flipped = bytearray(valid)
    for _ in range(40):
        flipped[rng.randrange(len(flipped))] = rng.randrange(256)
    return [
        b"",
        b"\0" * 100,
        rng.randbytes(3000),
        valid[: len(valid) // 2],
        valid[: len(valid) // 7],
        valid[:-10],
        bytes(flipped),
        b"PK\x03\x04" + rng.randbytes(500),
        b"%PDF-1.4\n" + rng.randbytes(500),
    ]


@pytest.mark.parametrize(
    ("name", "valid"),
    [("x.pdf", _pdf([PAGE_1, PAGE_2])), ("x.docx", _docx()), ("x.epub", _epub())],
    ids=["pdf", "docx", "epub"],
)
def test_hostile_bytes_only_ever_raise_skipped_source(name: str, valid: bytes) -> None:
    for number, data in enumerate(_hostile(valid, len(name))):
        try:
            docs = read_documents(name, data)
        except SkippedSource as exc:
            assert str(exc).startswith(f"{name}: ") and str(exc).endswith("skipped"), exc
            continue
        for doc in docs:  # what is read at all is text that chunks
            assert isinstance(doc.text, str), number
            chunk_documents(docs, PARAMS, FakeEmbedder().count_tokens)


# --- end to end ------------------------------------------------------------------------------


def test_index_of_pdf_docx_epub_cites_offsets_into_the_stored_text(
    tmp_path: Path, fake: FakeEmbedder
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "lakes.pdf").write_bytes(_pdf([PAGE_1, PAGE_2]))
    (corpus / "notes.docx").write_bytes(_docx())
    (corpus / "book.epub").write_bytes(_epub())
    settings = Settings(corpus=corpus, index=tmp_path / "index", model=fake.name)
    report = build_index(settings, embedder=fake)
    assert report.files == 3 and not report.skipped
    index = load_index(settings.index)
    sources = {c.source for c in index.chunks}
    assert sources == {"lakes.pdf", "notes.docx", "book.epub"}
    for c in index.chunks:
        stored = index.document(c.source, None)
        assert stored is not None
        assert stored.text[c.start : c.end] == c.text
        assert (c.page_start is not None) == (c.source == "lakes.pdf")
    stored = index.document("lakes.pdf", None)
    assert stored is not None and stored.pages == pdf.read("a.pdf", _pdf([PAGE_1, PAGE_2]))[0].pages
