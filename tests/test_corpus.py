from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qa.config import Reading
from qa.corpus import (
    ChunkingParams,
    SkippedSource,
    chunk_documents,
    sentence_spans,
)
from qa.errors import CorpusError
from qa.readers import read_documents
from qa.readers.meta import decode
from qa.sources import list_sources

from .conftest import REPO, FakeEmbedder

PARAMS = ChunkingParams(max_tokens=64)


def chunks_of(source: str, text: str, params: ChunkingParams = PARAMS) -> list:
    return chunk_documents(
        read_documents(source, text.encode()), params, FakeEmbedder().count_tokens
    )


def test_paragraphs_are_cited_as_a_reader_counts_them() -> None:
    text = (
        "First paragraph has enough words to stand on its own here.\n\n"
        "Second paragraph\nspans two lines and has plenty of words in it too.\n"
    )
    chunks = chunks_of("a.txt", text)
    assert [(c.id, c.paragraph, c.line_start, c.line_end) for c in chunks] == [
        ("a.txt#1", 1, 1, 1),
        ("a.txt#2", 2, 3, 4),
    ]
    assert all(text[c.start : c.end] == c.text for c in chunks)


def test_title_line_is_context_not_a_passage() -> None:
    text = "Lake Baikal\n\nLake Baikal is the deepest lake in the world by a long way.\n"
    [chunk] = chunks_of("baikal.txt", text)
    assert chunk.title == "Lake Baikal"
    assert chunk.paragraph == 2
    assert chunk.embed_text() == "Lake Baikal " + chunk.text


def test_markdown_heading_and_front_matter_titles() -> None:
    [doc] = read_documents("a.md", b"# A heading\n\nbody text")
    assert doc.title == "A heading"
    [doc] = read_documents("b.md", b"---\ntitle: 'From front matter'\n---\n# Other\n\nbody")
    assert doc.title == "From front matter"


def test_a_long_first_line_is_not_a_title() -> None:
    [doc] = read_documents("a.txt", (REPO / "corpus/000_b577fc557edadd91.txt").read_bytes())
    assert doc.title is None


def test_fragments_merge_forward_and_trailing_ones_are_dropped() -> None:
    text = (
        "Intro text long enough to be a real paragraph of this article.\n\n"
        "## Results\n\n"
        "The results were good and everybody involved was very happy.\n\n"
        "Daily Insights in Your Inbox\n\nEdit your preferences or unsubscribe\n"
    )
    chunks = chunks_of("a.md", text)
    assert [c.paragraph for c in chunks] == [1, 2]
    assert chunks[1].text.startswith("## Results\n\nThe results")
    assert not any("unsubscribe" in c.text for c in chunks)


def test_a_document_of_fragments_only_is_kept_whole() -> None:
    [chunk] = chunks_of("short.txt", "Too short.\n\nAlso short.\n")
    assert chunk.text == "Too short.\n\nAlso short."


def test_long_paragraph_is_split_at_sentences_into_balanced_parts_that_fit() -> None:
    sentence = "This sentence has exactly eight words in it. "
    text = "Long Title Here\n\n" + sentence * 30
    params = ChunkingParams(max_tokens=60)
    counter = FakeEmbedder().count_tokens
    chunks = chunk_documents(read_documents("long.txt", text.encode()), params, counter)
    assert len(chunks) == 5  # 240 words + title context in parts of at most 60 tokens
    assert [c.id for c in chunks] == [f"long.txt#2.{i}" for i in range(1, 6)]
    assert all(counter([c.embed_text()])[0] <= 60 for c in chunks)
    assert all(c.text.endswith("in it.") for c in chunks)  # cut between sentences
    assert max(len(c.text) for c in chunks) - min(len(c.text) for c in chunks) <= len(sentence)
    # Nothing is lost: the parts cover the paragraph exactly.
    assert " ".join(c.text for c in chunks) == text.split("\n\n")[1].strip()


def test_sentences_skip_abbreviations_and_decimals() -> None:
    text = 'Mr. Smith paid $1.5 million. "Then he left." Dr. Who? Yes! U.S. policy, e.g. this.'
    assert [text[s:e] for s, e in sentence_spans(text)] == [
        "Mr. Smith paid $1.5 million.",
        '"Then he left."',
        "Dr. Who?",
        "Yes!",
        "U.S. policy, e.g. this.",
    ]


def test_bom_and_crlf_are_normalised() -> None:
    text, encoding = decode("\ufeffTitle\r\n\r\nBody line one.\r\nline two.\r\n".encode(), "x")
    assert (text, encoding) == ("Title\n\nBody line one.\nline two.\n", "utf-8-sig")


FRENCH = (
    "Le café du matin\n\nÀ l'aube, la boulangère prépare les croissants et le pain de "
    "campagne ; les élèves passent, pressés, avant l'école. Déjà l'été s'achève à Besançon.\n"
)


@pytest.mark.parametrize(
    ("encoded", "expected"),
    [
        (FRENCH.encode("utf-16"), "utf-16"),
        (FRENCH.encode("utf-32"), "utf-32"),
        (FRENCH.encode("utf-8"), "utf-8"),
        (FRENCH.encode("latin-1"), None),  # detected: latin-1 or cp1252, both right here
        (FRENCH.encode("cp1252"), None),
    ],
)
def test_encodings_are_detected_and_recorded(encoded: bytes, expected: str | None) -> None:
    [doc] = read_documents("fr.txt", encoded)
    assert doc.text == FRENCH and doc.title == "Le café du matin"
    assert doc.encoding == expected if expected else doc.encoding in ("iso8859-1", "cp1252")


def test_binary_files_are_skipped_with_their_name() -> None:
    with pytest.raises(SkippedSource, match="bin.txt: binary"):
        read_documents("bin.txt", b"abc\x00def")
    with pytest.raises(SkippedSource, match="x.png: not an article format"):
        read_documents("x.png", b"\x89PNG")


def test_jsonl_documents_with_ids_titles_and_bad_lines(caplog: pytest.LogCaptureFixture) -> None:
    lines = [
        json.dumps({"_id": 7, "title": "T", "text": "Body of seven.", "url": "http://x"}),
        "not json",
        json.dumps({"id": "b", "text": "Body of b."}),
        json.dumps({"id": "b", "text": "duplicate"}),
        json.dumps({"title": "no id"}),
    ]
    docs = read_documents("c.jsonl", "\n".join(lines).encode())
    assert [(d.doc_id, d.title, d.url) for d in docs] == [("7", "T", "http://x"), ("b", None, None)]
    assert "c.jsonl:2: not valid JSON" in caplog.text
    assert "duplicate id 'b'" in caplog.text
    chunks = chunk_documents(docs, PARAMS, FakeEmbedder().count_tokens)
    assert [(c.id, c.line_start) for c in chunks] == [("c.jsonl:7#1", None), ("c.jsonl:b#1", None)]


def test_sources_are_listed_recursively_and_beir_folders_give_their_corpus(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ["a/b/x.md", "y.txt", "z.jsonl", "skip.png", ".hidden/h.txt"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")

    def listed(root: Path) -> list[tuple[str, Path]]:
        return [(s.name, s.path) for s in list_sources(root, Reading()).sources]

    assert [name for name, _ in listed(tmp_path)] == ["a/b/x.md", "y.txt", "z.jsonl"]
    assert listed(tmp_path)[0][1] == tmp_path / "a" / "b" / "x.md"
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text("{}")
    assert listed(tmp_path) == [("corpus.jsonl", tmp_path / "corpus.jsonl")]
    assert listed(tmp_path / "corpus.jsonl") == [("corpus.jsonl", tmp_path / "corpus.jsonl")]
    with pytest.raises(CorpusError, match="is a file"):
        listed(tmp_path / "y.txt")
    with pytest.raises(CorpusError, match="does not exist"):
        listed(tmp_path / "nope")


words = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=12
)
paragraph = st.lists(words, min_size=1, max_size=40).map(" ".join)
separator = st.sampled_from(["\n\n", "\n \n", "\r\n\r\n", "\n\n\n", "\n\t\n"])


@settings(max_examples=200, deadline=None)
@given(
    paragraphs=st.lists(paragraph, min_size=1, max_size=8),
    seps=st.lists(separator, min_size=8, max_size=8),
    bom=st.booleans(),
    suffix=st.sampled_from(["doc.txt", "doc.md"]),
)
def test_offsets_slice_the_decoded_text_exactly(
    paragraphs: list[str], seps: list[str], bom: bool, suffix: str
) -> None:
    raw = "".join(p + s for p, s in zip(paragraphs, seps, strict=False))
    data = ("\ufeff" if bom else "").encode() + raw.encode("utf-8")
    text = data.decode("utf-8-sig").replace("\r\n", "\n").replace("\r", "\n")
    docs = read_documents(suffix, data)
    chunks = chunk_documents(docs, ChunkingParams(max_tokens=16), FakeEmbedder().count_tokens)
    lines = text.split("\n")
    for chunk in chunks:
        assert text[chunk.start : chunk.end] == chunk.text
        assert chunk.text.strip() == chunk.text and chunk.text
        assert FakeEmbedder().count_tokens([chunk.embed_text()])[0] <= 16
        assert chunk.line_start is not None and chunk.line_end is not None
        assert "\n".join(lines[chunk.line_start - 1 : chunk.line_end]).find(chunk.text) >= 0
    starts = [c.start for c in chunks]
    assert starts == sorted(starts)
    assert all(a.end <= b.start for a, b in zip(chunks, chunks[1:], strict=False))


def test_shipped_articles_cite_exact_slices() -> None:
    from qa.embed import SentenceTransformerEmbedder

    tokens = SentenceTransformerEmbedder("all-MiniLM-L6-v2")  # tokenizer only: nothing loaded
    for path in sorted((REPO / "corpus").iterdir()):
        text = path.read_text(encoding="utf-8-sig")
        chunks = chunk_documents(
            read_documents(path.name, path.read_bytes()),
            ChunkingParams(max_tokens=tokens.max_tokens),
            tokens.count_tokens,
        )
        assert chunks
        for chunk in chunks:
            assert text[chunk.start : chunk.end] == chunk.text
            assert tokens.count_tokens([chunk.embed_text()])[0] <= 256
            assert "unsubscribe" not in chunk.text
