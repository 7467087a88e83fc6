"""Article-body extraction from saved web pages: qa's HTML reader and the alternatives it was
chosen from, on ../shared/data/html-articles (91 news pages, human-annotated bodies).

Usage: .venv/bin/python bench/html.py [--systems qa,trafilatura,...] [--no-write]
Prints mean precision / recall / F1 and ms per page for each system and writes
bench/results/html.md (unless --no-write). `--systems all` runs every candidate.

Metric, as the Scrapinghub/Zyte article-extraction benchmark defines it (its README, and
../shared/data/README.md): both texts split into \\w+ tokens, 4-token shingles with counts;
per page tp = shared, fp = extra, fn = missing shingles, each divided by tp + fp + fn so
every page weighs alike; precision and recall are means over pages (precision over pages
where something was predicted or expected, likewise recall), F1 comes from those two means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "html-articles"
RESULTS = REPO / "bench" / "results" / "html.md"
TARGET = 0.96
# Run as a script, this file's folder comes first on sys.path, and this file would shadow the
# standard library's `html` module that trafilatura, lxml and readability import.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]

Extractor = Callable[[str, bytes], str]


# --- the metric ------------------------------------------------------------------------------


def shingles(text: str, n: int = 4) -> Counter[tuple[str, ...]]:
    import re

    tokens = re.findall(r"\w+", text)
    # a text shorter than n tokens is one (short) shingle; an empty one has none
    return Counter(tuple(tokens[i : i + n]) for i in range(max(1, len(tokens) - n + 1)) if tokens)


def page_scores(truth: str, predicted: str) -> tuple[float, float, float]:
    """(tp, fp, fn) over 4-shingles, normalised to sum to 1 (all zero when both are empty)."""
    want, got = shingles(truth), shingles(predicted)
    tp = sum((want & got).values())
    fp = sum((got - want).values())
    fn = sum((want - got).values())
    total = tp + fp + fn
    return (tp / total, fp / total, fn / total) if total else (0.0, 0.0, 0.0)


def means(pages: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    def ratio(tp: float, other: float, fp: float, fn: float) -> float:
        if fp == fn == 0:
            return 1.0  # identical texts
        return tp / (tp + other) if tp + other else 0.0

    precision = statistics.mean(ratio(tp, fp, fp, fn) for tp, fp, fn in pages if tp + fp > 0)
    recall = statistics.mean(ratio(tp, fn, fp, fn) for tp, fp, fn in pages if tp + fn > 0)
    return precision, recall, 2 * precision * recall / (precision + recall)


# --- the systems -----------------------------------------------------------------------------


def qa_reader(source: str, data: bytes) -> str:
    from qa.corpus import SkippedSource
    from qa.readers import html

    try:
        return html.read(source, data)[0].text
    except SkippedSource:
        return ""


def trafilatura_with(**options: object) -> Extractor:
    def run(source: str, data: bytes) -> str:
        import trafilatura

        return trafilatura.extract(data, **options) or ""  # type: ignore[arg-type]

    return run


def blocks_text(fragment: str) -> str:
    """Plain text of an HTML fragment, a line per block (so words never run together)."""
    from resiliparse.extract.html2text import extract_plain_text

    return str(extract_plain_text(fragment, main_content=False, alt_texts=False))


def page_str(data: bytes) -> str:
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    return str(bytes_to_str(data, detect_encoding(data)))


def readability(source: str, data: bytes) -> str:
    from readability import Document

    return blocks_text(Document(data).summary(html_partial=True))


def justext_paragraphs(source: str, data: bytes) -> str:
    import justext

    paragraphs = justext.justext(data, justext.get_stoplist("English"))
    return "\n\n".join(p.text for p in paragraphs if not p.is_boilerplate)


def resiliparse(source: str, data: bytes) -> str:
    from resiliparse.extract.html2text import extract_plain_text

    return str(extract_plain_text(page_str(data), main_content=True, alt_texts=False))


def whole_page(source: str, data: bytes) -> str:
    """Every visible word (no boilerplate removal): the floor a tool without it gets."""
    from resiliparse.extract.html2text import extract_plain_text

    return str(extract_plain_text(page_str(data), main_content=False, alt_texts=False))


def vote(*names: str) -> Extractor:
    """The output the others agree with most (summed shared-shingle share): a medoid vote."""

    def run(source: str, data: bytes) -> str:
        texts = [SYSTEMS[name][0](source, data) for name in names]
        return max(
            texts,
            key=lambda t: sum(page_scores(t, other)[0] for other in texts if other is not t),
        )

    return run


def fallback(first: str, second: str, min_words: int = 50) -> Extractor:
    """first's text, or second's when first finds fewer than min_words words."""

    def run(source: str, data: bytes) -> str:
        text = SYSTEMS[first][0](source, data)
        return text if len(text.split()) >= min_words else SYSTEMS[second][0](source, data)

    return run


SYSTEMS: dict[str, tuple[Extractor, str]] = {
    "qa": (qa_reader, "qa.readers.html.read (the chosen reader), Document.text"),
    "trafilatura": (trafilatura_with(), "trafilatura.extract(bytes), defaults (comments kept)"),
    "trafilatura-nocomments": (
        trafilatura_with(include_comments=False),
        "trafilatura.extract, include_comments=False",
    ),
    "trafilatura-precision": (
        trafilatura_with(include_comments=False, favor_precision=True),
        "trafilatura.extract, favor_precision, no comments",
    ),
    "trafilatura-recall": (
        trafilatura_with(include_comments=False, favor_recall=True),
        "trafilatura.extract, favor_recall, no comments",
    ),
    "trafilatura-fast": (
        trafilatura_with(include_comments=False, fast=True),
        "trafilatura.extract, fast (no readability/jusText fallback), no comments",
    ),
    "readability": (readability, "readability-lxml Document.summary(), to text by resiliparse"),
    "justext": (justext_paragraphs, "jusText, English stoplist, non-boilerplate paragraphs"),
    "resiliparse": (resiliparse, "resiliparse extract_plain_text(main_content=True)"),
    "vote-3": (
        vote("trafilatura-precision", "readability", "trafilatura-fast"),
        "medoid vote of trafilatura-precision, readability, trafilatura-fast",
    ),
    "vote-3-resiliparse": (
        vote("trafilatura-precision", "readability", "resiliparse"),
        "medoid vote of trafilatura-precision, readability, resiliparse",
    ),
    "precision-else-readability": (
        fallback("trafilatura-precision", "readability"),
        "trafilatura-precision; readability when it finds < 50 words",
    ),
    "whole-page": (whole_page, "resiliparse extract_plain_text(main_content=False): no removal"),
}
DEFAULT = ["qa"]


def run(name: str, pages: dict[str, bytes], truth: dict[str, str]) -> dict[str, float]:
    extract = SYSTEMS[name][0]
    extract("warm-up.html", next(iter(pages.values())))  # imports and caches outside the timing
    scores, seconds = [], 0.0
    for key, data in pages.items():
        start = time.perf_counter()
        text = extract(f"{key}.html", data)
        seconds += time.perf_counter() - start
        scores.append(page_scores(truth[key], text))
    precision, recall, f1 = means(scores)
    # 95% interval of F1 by resampling pages (1000 bootstrap samples, seeded), as the
    # benchmark's evaluate.py reports it
    rng = random.Random(0)
    resampled = sorted(means(rng.choices(scores, k=len(scores)))[2] for _ in range(1000))
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "low": resampled[25],
        "high": resampled[974],
        "ms": 1000 * seconds / len(pages),
    }


def metadata(pages: dict[str, bytes], urls: dict[str, str]) -> str:
    """What qa's reader finds in the pages' metadata: how many have each field, and how many
    URLs are the one the benchmark saved the page from (a canonical link may name another)."""
    from qa.corpus import SkippedSource
    from qa.readers import html

    def bare(url: str | None) -> str:
        return (url or "").split("://")[-1].split("?")[0].rstrip("/").removeprefix("www.")

    found: Counter[str] = Counter()
    for key, data in pages.items():
        try:
            doc = html.read(f"{key}.html", data)[0]
        except SkippedSource:
            continue
        for name in ("title", "date", "author", "url"):
            found[name] += getattr(doc, name) is not None
        found["tags"] += bool(doc.tags)
        found["url as saved"] += doc.url is not None and bare(doc.url) == bare(urls[key])
    return ", ".join(f"{name} {found[name]}" for name in found) + f" (of {len(pages)} pages)"


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for package in ("trafilatura", "lxml", "readability-lxml", "justext", "resiliparse"):
        try:
            out.append(f"{package} {version(package)}")
        except PackageNotFoundError:
            pass
    return ", ".join(out)


def report(rows: dict[str, dict[str, float]], command: str, found: str | None, load: str) -> str:
    lines = [
        "# Article-body extraction from saved web pages (bench/html.py)",
        "",
        f"Command: `{command}`  ",
        f"Date: {date.today().isoformat()}; Python {platform.python_version()}; {versions()}  ",
        "Data: ../shared/data/html-articles, 91 news/blog pages with human-annotated article "
        "bodies (the even half of the Scrapinghub/Zyte article-extraction benchmark).  ",
        "Metric: the benchmark's: 4-token shingles, per page tp/fp/fn normalised so each page "
        "weighs alike; P and R are means over pages, F1 from the two means. "
        f"Target F1 >= {TARGET}. Published on all 181 pages: trafilatura 2.0.0 0.958, "
        "readability-lxml 0.922, jusText 0.804, html2text 0.662, best listed 0.970.  ",
        "F1 95%: bootstrap over pages (1000 samples); differences inside it are noise. The "
        "settings were chosen on these same pages (the other half of the benchmark is not "
        "here), so the qa row is optimistic by whatever that selection is worth.  ",
        "ms/page: mean wall time of one page's extraction on this machine (2 cores shared with "
        f"other work, load average {load} at the start: timings vary by about 1.5x between "
        "runs); the qa row includes decoding and metadata (htmldate, JSON-LD), the others "
        "extract the body alone.",
        "",
        "| system | precision | recall | F1 | F1 95% | ms/page | meets target | what it runs |",
        "|---|---:|---:|---:|---|---:|:-:|---|",
    ]
    for name, r in sorted(rows.items(), key=lambda item: -item[1]["f1"]):
        lines.append(
            f"| {name} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | "
            f"{r['low']:.3f}-{r['high']:.3f} | {r['ms']:.1f} | "
            f"{'yes' if r['f1'] >= TARGET else ''} | {SYSTEMS[name][1]} |"
        )
    if found:
        lines += ["", f"Metadata qa's reader reads from the pages: {found}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--systems",
        default=",".join(DEFAULT),
        help=f"comma-separated, or 'all': {', '.join(SYSTEMS)}",
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    names = list(SYSTEMS) if args.systems == "all" else args.systems.split(",")
    unknown = [n for n in names if n not in SYSTEMS]
    if unknown:
        parser.error(f"unknown systems: {', '.join(unknown)}")
    annotated = json.loads((DATA / "ground-truth.json").read_text())
    truth = {key: value.get("articleBody", "") for key, value in annotated.items()}
    pages = {key: (DATA / "pages" / f"{key}.html").read_bytes() for key in sorted(truth)}
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    rows = {}
    for name in names:
        rows[name] = r = run(name, pages, truth)
        print(
            f"{name:<24} precision={r['precision']:.3f} recall={r['recall']:.3f} "
            f"F1={r['f1']:.3f} ({r['low']:.3f}-{r['high']:.3f})  {r['ms']:.1f} ms/page",
            flush=True,
        )
    found = None
    if "qa" in rows:
        found = metadata(pages, {key: value.get("url", "") for key, value in annotated.items()})
        print(f"qa metadata: {found}")
    if not args.no_write:
        command = " ".join([".venv/bin/python", "bench/html.py", *sys.argv[1:]])
        RESULTS.write_text(report(rows, command, found, load))
        print(f"wrote {RESULTS.relative_to(REPO)}")


if __name__ == "__main__":
    main()
