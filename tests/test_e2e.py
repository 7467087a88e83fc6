"""End to end with the real bundled model (offline) over the shipped corpus/."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from qa.config import Settings
from qa.embed import SentenceTransformerEmbedder, index_embedder, load_embedder
from qa.errors import IndexCorruptError
from qa.indexer import build_index
from qa.runtime import PASSAGE_ENCODER, OnnxEmbedder, has_encoder, token_matches
from qa.search import Answers, ask
from qa.store import load_index

from .conftest import REPO, generation

pytestmark = pytest.mark.model

# (question, text the top passage must contain)
QUESTIONS = [
    ("How much is JD.com paying for its stake in Farfetch?", "$397 million"),
    ("What valuation did Farfetch reach in 2015?", "$1 billion valuation"),
    ("What delivery service did JD.com reveal for luxury goods?", "white-glove"),
    ("What share of Index Fashion brands are available on Farfetch's China site?", "83%"),
    ("What is JD.com's official flagship adoption rate among Index Fashion brands?", "only 11%"),
    ("When did Tmall launch a luxury flash sales channel?", "In March 2016"),
    ("When is JD.com's New York Fashion Week show?", "February 17"),
    ("Where did JD.com make its runway debut?", "Milan Fashion Week"),
    (
        "Which designers will the New York Fashion Week show highlight?",
        "emerging Chinese designers",
    ),
    ("What payment system does JD.com offer Farfetch?", "JD Pay"),
    ("What share of Index Fashion brands does JD.com sell through its own stores?", "68%"),
    ("Who joined the Farfetch board?", "Richard Liu will take a seat on the Farfetch board"),
    ("What did Farfetch CEO José Neves say about JD.com?", "strict protection of IP"),
    ("What percentage of Fashion labels host flagships on Tmall?", "only 21% of Fashion labels"),
    ("What digital marketing platform does JD.com have?", "BlackDragon"),
]


@pytest.fixture(scope="session")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Path]:
    root = tmp_path_factory.mktemp("e2e")
    shutil.copytree(REPO / "corpus", root / "corpus")
    settings = Settings(corpus=root / "corpus", index=root / "index")
    return settings, root


@pytest.fixture(scope="session")
def answers(shipped: tuple[Settings, Path]) -> Answers:
    """Built as a user builds it: the model exported to ONNX, questions embedded by it."""
    settings, _ = shipped
    report = build_index(settings)
    assert report.embedded == report.chunks == 10
    assert has_encoder(generation(settings.index))
    return ask(settings, [q for q, _ in QUESTIONS], k=3)


def test_the_onnx_encoder_reproduces_sentence_transformers(
    answers: Answers, shipped: tuple[Settings, Path]
) -> None:
    settings, _ = shipped
    texts = [q for q, _ in QUESTIONS] + [c.embed_text() for c in load_index(settings.index).chunks]
    onnx = index_embedder(generation(settings.index), answers.model)
    assert isinstance(onnx, OnnxEmbedder)
    full = load_embedder(answers.model)
    exact = full.embed(texts)
    assert float((onnx.embed(texts) * exact).sum(axis=1).min()) >= 0.9999
    # The questions' token states (for the re-rank) agree too, token for token.
    questions = [q for q, _ in QUESTIONS]
    assert isinstance(full, SentenceTransformerEmbedder)
    for ours, theirs in zip(
        onnx.embed_with_tokens(questions)[1], full.embed_with_tokens(questions)[1], strict=True
    ):
        assert ours.shape == theirs.shape and float((ours * theirs).sum(axis=1).min()) >= 0.9999
    index = load_index(settings.index)
    assert index.search(onnx.embed(texts[:15]), 10) == index.search(exact[:15], 10) or all(
        [r for r, _ in a] == [r for r, _ in b]
        for a, b in zip(
            index.search(onnx.embed(texts[:15]), 10), index.search(exact[:15], 10), strict=True
        )
    )


def test_passages_are_int8_by_default_and_fp32_on_request(
    answers: Answers, shipped: tuple[Settings, Path]
) -> None:
    settings, _ = shipped
    index = load_index(settings.index)
    assert (
        index.manifest.precision == "int8"
        and (generation(settings.index) / PASSAGE_ENCODER).is_file()
    )
    exact = load_embedder(answers.model).embed([c.embed_text() for c in index.chunks])
    int8 = (index.vectors() * exact).sum(axis=1)
    assert 0.97 <= float(int8.min()) and float(int8.max()) < 0.9999  # close, not the same
    fp32 = replace(settings, index=settings.index.with_name("fp32"), precision="fp32")
    assert build_index(fp32).embedded == 10
    vectors = load_index(fp32.index).vectors()
    assert float((vectors * exact).sum(axis=1).min()) >= 0.9999
    assert not (fp32.index / PASSAGE_ENCODER).exists()
    # Switching an index's precision re-embeds every passage, and says why.
    back = build_index(replace(fp32, precision="int8"))
    assert (back.embedded, back.rebuilt) == (10, "passage precision changed from fp32 to int8")
    assert np.allclose(load_index(fp32.index).vectors(), index.vectors(), atol=1e-6)


def test_sentence_states_come_from_the_passage_pass_and_are_kept(
    answers: Answers, shipped: tuple[Settings, Path]
) -> None:
    settings, _ = shipped
    index = load_index(settings.index)
    assert index.manifest.sentence_vectors and index.manifest.sentence_tokens
    for row in range(len(index.chunks)):
        states = index.sentence_states(row)
        assert states is not None and len(states.vectors) == len(index.passage_sentences(row))
        assert np.allclose(np.linalg.norm(states.vectors, axis=1), 1, atol=1e-3)
        assert states.signs.shape == (states.counts.sum(), index.manifest.dim // 8)
        assert (states.counts > 0).all()  # the shipped passages are never truncated
    # Each sentence has its own vector, none the passage's own (the fallback for a sentence
    # the encoder never saw).
    top = max(range(len(index.chunks)), key=lambda r: len(index.passage_sentences(r)))
    states = index.sentence_states(top)
    assert states is not None and len(states.vectors) >= 3
    assert len({v.tobytes() for v in states.vectors}) == len(states.vectors)
    assert float((states.vectors @ index.vectors()[top]).max()) < 0.99
    # A question's tokens match best the sentence that says what it asks, token by token.
    chunk = index.chunks[top]
    for n, ((start, end), _) in enumerate(index.passage_sentences(top)):
        text = chunk.text[start - chunk.start : end - chunk.start]
        _, [tokens] = OnnxEmbedder(index.path).embed_with_tokens([text])
        [match] = token_matches(tokens, [states])
        assert int(np.argmax(match)) == n and match[n] > 0.5
    # An update reuses them: nothing is embedded, the states are the same.
    assert build_index(settings).embedded == 0
    again = load_index(settings.index).sentence_states(top)
    assert again is not None
    for part in ("vectors", "signs", "counts"):
        assert np.array_equal(getattr(again, part), getattr(states, part))
    # Sentence states that do not match the passages are reported, with the fix.
    for name in ("sentence_starts.npy", "token_starts.npy"):
        damaged = settings.index.with_name(f"damaged-{name}")
        shutil.copytree(settings.index, damaged)
        np.save(generation(damaged) / name, np.load(generation(damaged) / name)[:-1])
        with pytest.raises(IndexCorruptError, match=f"{name} has .*run `qa index --index"):
            load_index(damaged)
    # An index of qa 0.1 (its files straight in the folder, no checksums) from before token
    # states: read as it is, then given token states, checksums and generations by its next
    # build, which says why it re-embeds.
    older = settings.index.with_name("older")
    shutil.copytree(generation(settings.index), older)
    manifest = json.loads((older / "manifest.json").read_text())
    keys = ("sentence_tokens", "checksum", "contents", "corpus_absolute", "reading")
    for key in (*keys, "documents_kept", "unlisted"):
        del manifest[key]
    for name in ("documents.jsonl", "documents.offsets.json", "metadata.json", "document_rows.npy"):
        (older / name).unlink()
    manifest["corpus"] = os.path.relpath(settings.corpus, older)
    (older / "manifest.json").write_text(json.dumps(manifest))
    (older / "tokens.npy").unlink()
    assert load_index(older).sentence_states(top) is None
    report = build_index(replace(settings, index=older))
    assert report.embedded == 10 and "no sentence token states" in (report.rebuilt or "")
    rebuilt = load_index(older).sentence_states(top)
    assert rebuilt is not None and np.allclose(rebuilt.vectors, states.vectors, atol=1e-3)
    assert sorted(p.name for p in older.iterdir()) == [
        "CURRENT",
        "g000001",
        "qa-index.json",
        "write.lock",
    ]


def test_off_topic_questions_are_not_answered(
    shipped: tuple[Settings, Path], answers: Answers
) -> None:
    settings, _ = shipped
    result = ask(settings, ["What is the capital of Peru?", "Who joined the Farfetch board?"])
    assert [a.answered for a in result.answers] == [False, True]


@pytest.mark.parametrize(("number", "expected"), list(enumerate(e for _, e in QUESTIONS)))
def test_the_answer_is_in_the_top_passage(answers: Answers, number: int, expected: str) -> None:
    top = answers.answers[number].hits[0].chunk
    assert expected in top.text, f"{QUESTIONS[number][0]} -> {top.id}: {top.text[:120]}"


def test_citations_slice_the_shipped_articles(answers: Answers) -> None:
    for answer in answers.answers:
        for hit in answer.hits:
            c = hit.chunk
            text = (answers.corpus / c.source).read_text(encoding="utf-8-sig")
            assert text[c.start : c.end] == c.text
            lines = text.split("\n")[c.line_start - 1 : c.line_end]  # type: ignore[operator]
            assert c.text in "\n".join(lines)
            assert c.start <= hit.highlight[0] < hit.highlight[1] <= c.end
    first = answers.answers[0].hits[0]
    assert (first.chunk.source, first.chunk.paragraph, first.chunk.line_start) == (
        "000_b577fc557edadd91.txt",
        2,
        3,
    )


def test_a_second_build_embeds_nothing(answers: Answers, shipped: tuple[Settings, Path]) -> None:
    settings, root = shipped
    report = build_index(settings)
    assert (report.embedded, report.reused) == (0, 10)
    assert has_encoder(generation(settings.index))
    # An update handed a sentence-transformers embedder keeps the encoder it has (hard-linked
    # into the new index), instead of exporting the model again.
    encoder = (generation(settings.index) / "encoder.onnx").stat().st_ino
    (settings.corpus / "extra.md").write_text(
        "# Extra\n\nA short extra article about Tmall flagship stores and luxury brands in China."
    )
    embedder = load_embedder(answers.model)
    assert build_index(settings, embedder=embedder).embedded == 1
    assert (generation(settings.index) / "encoder.onnx").stat().st_ino == encoder
    (settings.corpus / "extra.md").unlink()
    build_index(settings)


def test_ask_and_updates_never_import_torch(
    answers: Answers, shipped: tuple[Settings, Path]
) -> None:
    settings, root = shipped
    (settings.corpus / "new.md").write_text(
        "# Gucci\n\nGucci opened a flagship store on "
        "Tmall's Luxury Pavilion in 2018, its first in China."
    )
    code = (
        "import sys, json\nfrom pathlib import Path\nfrom qa.config import Settings\n"
        "from qa.search import ask\n"
        f"s = Settings(corpus=Path({str(settings.corpus)!r}), "
        f"index=Path({str(settings.index)!r}))\n"
        "a = ask(s, ['Where did Gucci open a flagship store?'])\n"
        "print(json.dumps([a.answers[0].hits[0].chunk.source, 'torch' in sys.modules]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == ["new.md", False]
    (settings.corpus / "new.md").unlink()
    assert build_index(settings).removed == 1


def test_cli_end_to_end_in_a_subprocess(answers: Answers, shipped: tuple[Settings, Path]) -> None:
    _, root = shipped
    qa = [sys.executable, "-m", "qa"]
    done = subprocess.run(
        [*qa, "ask", "--json", "-k", "1", "How much is JD.com paying for its stake in Farfetch?"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)["results"]
    assert "$397 million" in result["text"] and result["paragraph"] == 2
    assert "(once)" not in done.stderr  # the index built above was current


def test_a_terminal_gets_styled_wrapped_output_and_a_pipe_plain(
    answers: Answers, shipped: tuple[Settings, Path]
) -> None:
    """In a real pseudo-terminal 60 columns wide: rich's styles and wrapping; in a pipe,
    none of them, and the highlight marked in plain text."""
    import fcntl
    import pty
    import struct
    import termios

    settings, root = shipped
    args = [sys.executable, "-m", "qa", "ask", "--index", str(settings.index), "--no-update"]
    args += ["-k", "1", "Who joined the Farfetch board?"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TERM": "xterm"}
    env.pop("NO_COLOR", None)
    env.pop("COLUMNS", None)
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 60, 0, 0))
    child = subprocess.Popen(args, stdout=secondary, stderr=secondary, env=env, cwd=root)
    os.close(secondary)
    screen = b""
    while True:
        try:
            chunk = os.read(primary, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        screen += chunk
    child.wait(timeout=60)
    os.close(primary)
    text = screen.decode("utf-8", "replace")
    assert child.returncode == 0, text
    assert "\x1b[" in text and "»" not in text  # styled: the highlight is bold, not marked
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    assert max(len(line) for line in plain.replace("\r", "").splitlines()) <= 60
    piped = subprocess.run(args, capture_output=True, text=True, env=env, cwd=root, check=True)
    assert "\x1b[" not in piped.stdout and "»" in piped.stdout
    assert all(line == line.rstrip() for line in piped.stdout.splitlines())
    assert len(piped.stdout.splitlines()[1]) > 60  # one passage, one line


def test_answers_are_relevant_on_the_calibrated_scale(answers: Answers) -> None:
    tops = [answer.hits[0] for answer in answers.answers]
    assert all(a.answered for a in answers.answers)
    assert all(h.sentence is not None and h.sentence.token_match is not None for h in tops)
    assert all(0.0 < h.relevance < 1.0 for a in answers.answers for h in a.hits)
    assert np.mean([h.relevance for h in tops]) > 0.4  # 0.58 when written
