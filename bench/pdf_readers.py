"""Which PDF library qa reads with: reading order, noise and speed of pypdf, pypdfium2 and
pdfminer.six on generated two-column PDFs (bench/pdfs.py: running header and footer with page
numbers, words hyphenated at line ends), and of qa's own reader built on the chosen one.

Usage: .venv/bin/python bench/pdf_readers.py [--articles N]   (writes bench/results/pdf_readers.md)

Each PDF is drawn twice: in reading order ("reading": column 1, then column 2, as LaTeX and Word
write them) and row by row across the columns ("rows"), so an extractor that follows the drawing
order reads the columns interleaved. Scores, against the words as written (the title and the
paragraphs; hyphens and case ignored, a word broken at a line end counts as one):
- order: words of the truth found in order (longest matching subsequence) / words of the truth
- noise: words extracted that are not in that subsequence / words extracted (headers, footers,
  page numbers, and words a wrong order puts out of sequence)
- paragraphs: the truth's paragraphs found whole, as one blank-line separated paragraph
- s/page: seconds per page, text extraction alone (one core, best of 3)
"""

from __future__ import annotations

import argparse
import io
import platform
import re
import time
from collections.abc import Callable
from difflib import SequenceMatcher
from pathlib import Path

from pdfs import Layout, article, write_pdf

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "squad" / "corpus"
OUT = Path(__file__).resolve().parent / "results" / "pdf_readers.md"
ARTICLES = ["Super_Bowl_50.txt", "Amazon_rainforest.txt", "Black_Death.txt", "Huguenot.txt"]


def pypdf_plain(data: bytes) -> str:
    import pypdf

    return "\n\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)


def pypdf_layout(data: bytes) -> str:
    import pypdf

    reader = pypdf.PdfReader(io.BytesIO(data))
    return "\n\n".join(page.extract_text(extraction_mode="layout") for page in reader.pages)


def pypdfium2_text(data: bytes) -> str:
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(data)
    try:
        return "\n\n".join(page.get_textpage().get_text_range() for page in pdf)
    finally:
        pdf.close()


def pdfminer_text(data: bytes) -> str:
    from pdfminer.high_level import extract_text

    return str(extract_text(io.BytesIO(data)))


def qa_reader(data: bytes) -> str:
    from qa.readers import pdf

    return pdf.read("bench.pdf", data)[0].text


EXTRACTORS: list[tuple[str, Callable[[bytes], str]]] = [
    ("pypdf 'plain'", pypdf_plain),
    ("pypdf 'layout'", pypdf_layout),
    ("pypdfium2 get_text_range", pypdfium2_text),
    ("pdfminer.six extract_text (LAParams defaults)", pdfminer_text),
    ("**qa.readers.pdf** (pypdfium2 boxes + qa.readers.pages)", qa_reader),
]


def words(text: str) -> list[str]:
    text = text.replace("\ufffe", "-").replace("\x02", "-")
    text = re.sub(r"-\s+", "", text).replace("-", "")
    return re.findall(r"\w+", text.lower())


def scores(truth_paragraphs: list[str], text: str) -> tuple[float, float, float]:
    truth = words("\n\n".join(truth_paragraphs))
    got = words(text)
    matcher = SequenceMatcher(None, truth, got, autojunk=False)
    matched = sum(block.size for block in matcher.get_matching_blocks())
    found = {" ".join(p.split()) for p in re.split(r"\n\s*\n", text)}
    whole = sum(" ".join(p.split()) in found for p in truth_paragraphs) / len(truth_paragraphs)
    return matched / len(truth), (len(got) - matched) / max(len(got), 1), whole


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--articles", type=int, default=len(ARTICLES))
    args = parser.parse_args()
    pdfs: list[tuple[str, bytes, list[str], int]] = []
    for name in ARTICLES[: args.articles]:
        title, paragraphs = article(DATA / name)
        for order in ("reading", "rows"):
            buffer = io.BytesIO()
            written = write_pdf(buffer, title, paragraphs, Layout(order=order))
            pdfs.append((order, buffer.getvalue(), [title, *paragraphs], written.pages))
    pages = sum(p[3] for p in pdfs) // 2
    rows = []
    for label, extract in EXTRACTORS:
        results: dict[str, list[tuple[float, float, float]]] = {"reading": [], "rows": []}
        seconds = 0.0
        for order, data, truth, _ in pdfs:
            best = float("inf")
            for _ in range(3 if order == "reading" else 1):
                started = time.perf_counter()
                text = extract(data)
                best = min(best, time.perf_counter() - started)
            if order == "reading":
                seconds += best
            results[order].append(scores(truth, text))
        cells = [label]
        for order in ("reading", "rows"):
            got = results[order]
            cells += [f"{sum(r[i] for r in got) / len(got):.3f}" for i in range(3)]
        cells.append(f"{seconds / pages:.4f}")
        rows.append(cells)
        print(" | ".join(cells), flush=True)
    doc = __doc__.split("\n\n", 2)[2]  # how the PDFs are drawn and what each column means
    lines = [
        "# PDF libraries: reading order, noise and speed",
        "",
        "Regenerate: `.venv/bin/python bench/pdf_readers.py` (repo root; about a minute).",
        "",
        f"{args.articles} SQuAD articles as two-column PDFs ({pages} pages), each drawn two ways; "
        f"Python {platform.python_version()}, a shared 2-core machine, so times are rough.",
        "",
        doc.strip(),
        "",
        "| extractor | reading: order | noise | paragraphs | rows: order | noise | paragraphs "
        "| s/page |",
        "|---|---|---|---|---|---|---|---|",
        *("| " + " | ".join(cells) + " |" for cells in rows),
        "",
        "The libraries' own text keeps each line on its own (pdfminer.six aside, whose text boxes "
        "are blank-line separated), so no paragraph of theirs is whole; noise is the running "
        "header and footer. Following the drawing order (pypdf, pypdfium2) reads the 'rows' PDFs "
        "interleaved, and pypdf's layout mode sets the columns side by side on every line. "
        "pdfminer.six's layout analysis keeps the columns apart but costs ~10x pypdfium2 in "
        "pure Python. qa reads with pypdfium2: its character boxes come from C, fast enough to "
        "lay each page out from geometry (qa.readers.pages), so the drawing order does not "
        "matter. What is left of 'paragraphs' is mostly lower-case compounds broken at their "
        "hyphen (home-|field: the hyphen is taken out unless the document spells the word with "
        "it elsewhere or uses both halves as words) and paragraphs that end exactly at a column's "
        "foot.",
        "",
    ]
    OUT.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
