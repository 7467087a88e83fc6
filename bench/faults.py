"""Fault injection, the long part: kill -9 during `qa index` updates, and asks during updates.

qa runs as a user runs it: separate processes, the real bundled model, offline, over a small
corpus (this repo's corpus/ and three SQuAD articles) copied into a scratch folder. The corpus
moves between four states (an edit, an added file, a deleted file); the answers to four
questions are compared.

1. Kill trials: change the corpus; update a copy of the folder without interruption (what
   "after" means); start `qa index`, SIGKILL it at a random moment (half of the moments
   anywhere in the copy's update time, half in its last 30 %, where it writes), then check
   what is left: the index opens and answers as before the run or as the copy, `qa status
   --verify` is clean, no file of the user's changed; then a plain `qa index` must finish,
   leave no tmp-* work folders, and answer as the copy.
2. Asks during updates: a writer moves the corpus from state to state, runs `qa index` and
   asks once (the new generation's answers); meanwhile asks run one after another, and each
   must answer as one of the writer's generations.

A state's answers depend on the index's history, not only on the corpus (seen: a passage's
dense score differs by up to 0.01 between an index that saw its file deleted and added back and
one built from scratch, as if a vector depended on the batch it was embedded in), so answers
are compared with a run from the same index, never with a build from scratch. Answers are the
same when they cite the same passages in the same order with scores within 0.001.

Usage (repo root; prints a markdown table and writes it to bench/faults.md):
  .venv/bin/python bench/faults.py                        # 50 kill trials, 200 asks (~15 min)
  .venv/bin/python bench/faults.py --kills 3 --asks 10    # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SQUAD = REPO.parent / "shared" / "data" / "squad" / "corpus"
ARTICLES = ("Black_Death.txt", "Amazon_rainforest.txt")
ADDED = "Sky_United_Kingdom.txt"
QUESTIONS = [
    "How much is JD.com paying for its stake in Farfetch?",
    "Where did the Black Death originate?",
    "What is the Amazon rainforest called in Portuguese?",
    "Where is the warehouse for returns of the revised Farfetch agreement?",
]
TOLERANCE = 1e-3
LEFTOVERS = ("tmp-*",)  # inside the index: a writer's work in progress
SIBLINGS = (".index.tmp-*", ".index.old", ".index.encoder-*")  # beside it (older layouts)


def python() -> str:
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def qa_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    env.update(
        PYTHONPATH=str(REPO),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        NO_COLOR="1",
        COLUMNS="200",
    )
    return env


@dataclass
class Figures:
    tracebacks: int = 0
    examples: list[str] = field(default_factory=list)

    def note(self, what: str, output: str) -> None:
        if len(self.examples) < 8:
            text = " ".join(output.replace("│", " ").replace("╰", " ").replace("─", "").split())
            self.examples.append(f"{what}: {text[-300:]}")


class Bench:
    def __init__(self, work: Path, py: str) -> None:
        self.home = work / "home"
        self.corpus = self.home / "corpus"
        self.index = self.home / "index"
        self.py = py
        self.env = qa_env()
        self.figures = Figures()
        self.lock = threading.Lock()  # the writer thread of asks() counts tracebacks too
        self.twin = work / "control"  # a copy updated without a kill, for comparison
        self.states: list[dict[str, bytes]] = []

    # --- running qa ---------------------------------------------------------------------------

    def command(self, *args: str) -> list[str]:
        return [self.py, "-m", "qa", *args]

    def qa(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            self.command(*args),
            cwd=self.home,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        self.look(f"qa {' '.join(args)}", done.stdout + done.stderr)
        return done

    def look(self, what: str, output: str) -> None:
        if "Traceback" in output:
            with self.lock:
                self.figures.tracebacks += 1
                self.figures.note(f"traceback in {what}", output)

    def answers(self) -> tuple[subprocess.CompletedProcess[str], list[list[tuple[object, ...]]]]:
        done = self.qa("ask", "--no-update", "--questions", "questions.txt", "-k", "3")
        found = []
        if done.returncode == 0:
            found = [hits(json.loads(line)) for line in done.stdout.splitlines()]
        return done, found

    # --- the corpus ---------------------------------------------------------------------------

    def setup(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)
        self.corpus.mkdir(parents=True)
        base = {p.name: p.read_bytes() for p in sorted((REPO / "corpus").glob("*.txt"))}
        base |= {name: (SQUAD / name).read_bytes() for name in ARTICLES}
        first, second = sorted(p for p in base if p[0].isdigit())[:2]
        edit = (
            b"\n\nThe revised Farfetch agreement added a warehouse in Shanghai for returns, "
            b"run by JD.com's own logistics arm.\n"
        )
        self.states = [
            dict(base),
            {**base, first: base[first] + edit},
            {**base, ADDED: (SQUAD / ADDED).read_bytes()},
            {
                **{k: v for k, v in base.items() if k != ARTICLES[1]},
                second: base[second] + b"\n\nThe show was moved to a later date in March.\n",
            },
        ]
        (self.home / "questions.txt").write_text("\n".join(QUESTIONS) + "\n")
        (self.home / "notes.md").write_text("A note of the user's, beside the corpus.\n")
        self.apply(0)

    def apply(self, state: int) -> None:
        files = self.states[state]
        for path in self.corpus.iterdir():
            if path.name not in files:
                path.unlink()
        for name, data in files.items():
            target = self.corpus / name
            if not target.exists() or target.read_bytes() != data:
                target.write_bytes(data)

    def snapshot(self, corpus: bool = True) -> dict[str, tuple[int, bytes | str]]:
        """Every entry outside the index (and the corpus, unless corpus): mode and bytes (or
        link target)."""
        seen: dict[str, tuple[int, bytes | str]] = {}
        skip = {self.index} if corpus else {self.index, self.corpus}
        for dirpath, dirnames, filenames in os.walk(self.home):
            here = Path(dirpath)
            dirnames[:] = [d for d in dirnames if here / d not in skip]
            for name in dirnames + filenames:
                path = here / name
                st = path.lstat()
                rel = str(path.relative_to(self.home))
                if path.is_symlink():
                    seen[rel] = (st.st_mode, os.readlink(path))
                elif path.is_file():
                    seen[rel] = (st.st_mode, path.read_bytes())
                else:
                    seen[rel] = (st.st_mode, "")
        return seen

    def leftovers(self) -> list[str]:
        found = [p.name for pattern in LEFTOVERS for p in self.index.glob(pattern)]
        found += [p.name for pattern in SIBLINGS for p in self.home.glob(pattern)]
        return found

    def answers_in(self, home: Path) -> list[list[tuple[object, ...]]] | None:
        """The answers of the index in another folder (a control copy), None if it fails."""
        done = subprocess.run(
            self.command("ask", "--no-update", "--questions", "questions.txt", "-k", "3"),
            cwd=home,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            return None
        return [hits(json.loads(line)) for line in done.stdout.splitlines()]

    def control(self) -> tuple[list[list[tuple[object, ...]]] | None, float]:
        """What an uninterrupted update from the index as it is gives: a copy of the folder
        (the large ONNX files hard-linked, as qa links them itself) is updated; its answers
        and the update's seconds."""
        shutil.rmtree(self.twin, ignore_errors=True)

        def copy(source: str, target: str) -> None:
            if source.endswith(".onnx"):
                os.link(source, target)
            else:
                shutil.copy2(source, target)

        shutil.copytree(self.home, self.twin, symlinks=True, copy_function=copy)
        started = time.perf_counter()
        done = subprocess.run(
            self.command("index"), cwd=self.twin, env=self.env, capture_output=True, check=False
        )
        seconds = time.perf_counter() - started
        if done.returncode:
            sys.stderr.write(done.stderr.decode("utf-8", "replace")[-2000:])
        return (None if done.returncode else self.answers_in(self.twin)), seconds

    # --- the first build ----------------------------------------------------------------------

    def prelude(self) -> float:
        """Build, then visit every state once; returns a typical update's seconds."""
        started = time.perf_counter()
        built = self.qa("index", "corpus")
        if built.returncode:
            raise SystemExit(f"the first build failed: {built.stderr[-2000:]}")
        print(f"first build: {time.perf_counter() - started:.1f} s", file=sys.stderr)
        seconds = []
        for state in (*range(1, len(self.states)), 0):
            self.apply(state)
            started = time.perf_counter()
            done = self.qa("index")
            seconds.append(time.perf_counter() - started)
            if done.returncode:
                raise SystemExit(f"an update failed: {done.stderr[-2000:]}")
        asked, _ = self.answers()
        if asked.returncode:
            raise SystemExit(f"an ask failed: {asked.stderr[-2000:]}")
        return statistics.median(seconds)

    # --- 1. kill -9 during updates ------------------------------------------------------------

    def kills(
        self, trials: int, update: float, rng: random.Random, deadline: float
    ) -> dict[str, int]:
        f = dict.fromkeys(
            (
                "trials",
                "killed before the end",
                "user files changed",
                "files written outside the index",
                "half indexes",
                "status --verify not clean",
                "next run failed",
                "leftover tmp folders after the next run",
                "silently changed answers",
            ),
            0,
        )
        state = 0
        for trial in range(trials):
            if time.monotonic() > deadline:
                break
            f["trials"] += 1
            _, before_answers = self.answers()
            target = rng.choice([s for s in range(len(self.states)) if s != state])
            self.apply(target)
            after_answers, seconds = self.control()
            if after_answers is None:
                raise SystemExit("an uninterrupted update of the control copy failed")
            update = seconds or update
            before = self.snapshot()
            if trial % 2:
                delay = rng.uniform(0.7 * update, 1.05 * update)
            else:
                delay = rng.uniform(0, 1.1 * update)
            proc = subprocess.Popen(
                self.command("index"),
                cwd=self.home,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            time.sleep(delay)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)  # the group we started: qa and its children
                f["killed before the end"] += 1
                proc.communicate()
            else:
                out, err = proc.communicate()
                self.look("qa index (not killed)", out + err)
            after = self.snapshot()
            changed = [k for k in before if after.get(k) != before[k]]
            added = [k for k in after if k not in before]
            f["user files changed"] += len(changed)
            f["files written outside the index"] += len(added)
            if changed or added:
                self.figures.note(f"trial {trial}: outside the index", f"{changed} {added}")
            verify = self.qa("status", "--verify")
            if verify.returncode:
                f["status --verify not clean"] += 1
                self.figures.note(f"trial {trial}: status --verify", verify.stderr)
            asked, found = self.answers()
            if asked.returncode:
                f["half indexes"] += 1
                self.figures.note(f"trial {trial}: ask after the kill", asked.stderr)
            elif not (same(found, before_answers) or same(found, after_answers)):
                f["silently changed answers"] += 1
                self.figures.note(f"trial {trial}: after the kill", "neither before nor after")
            done = self.qa("index")
            if done.returncode:
                f["next run failed"] += 1
                self.figures.note(f"trial {trial}: next qa index", done.stderr)
            if self.leftovers():
                f["leftover tmp folders after the next run"] += 1
                self.figures.note(f"trial {trial}: leftovers", " ".join(self.leftovers()))
            asked, found = self.answers()
            if asked.returncode or not same(found, after_answers):
                f["silently changed answers"] += 1
                self.figures.note(
                    f"trial {trial}: after the next run", asked.stderr or "not as uninterrupted"
                )
            # any change outside the index is put back, so the next trial starts clean
            for rel in added:
                path = self.home / rel
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
            state = target
            print(f"trial {trial + 1}/{trials}: {f}", file=sys.stderr)
        shutil.rmtree(self.twin, ignore_errors=True)
        return f

    # --- 2. asks during updates ---------------------------------------------------------------

    def asks(self, count: int, rng: random.Random, deadline: float) -> dict[str, int]:
        """Asks one after another while a writer updates; each must answer as one of the
        generations the writer made (the writer asks after each of its updates)."""
        f = dict.fromkeys(
            (
                "asks",
                "updates",
                "failed updates",
                'false "damaged" errors',
                "other failed asks",
                "silently changed answers",
                "user files changed",
            ),
            0,
        )
        others = self.snapshot(corpus=False)
        _, first = self.answers()
        generations = [first]
        seen: list[list[list[tuple[object, ...]]]] = []
        stop = threading.Event()
        last = [0]

        def writer() -> None:
            state = 0
            while not stop.is_set():
                state = rng.choice([s for s in range(len(self.states)) if s != state])
                self.apply(state)
                done = self.qa("index")
                _, made = self.answers()  # the only writer: this is the new generation's
                with self.lock:
                    f["updates"] += 1
                    f["failed updates"] += bool(done.returncode)
                    generations.append(made)
                    last[0] = state
                if done.returncode:
                    self.figures.note("update during asks", done.stderr)

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            while f["asks"] < count and time.monotonic() < deadline:
                asked, found = self.answers()
                f["asks"] += 1
                if asked.returncode:
                    damaged = "damaged" in asked.stderr.lower()
                    f['false "damaged" errors' if damaged else "other failed asks"] += 1
                    self.figures.note("ask during updates", asked.stderr)
                else:
                    seen.append(found)
                if f["asks"] % 20 == 0:
                    print(f"asks: {f}", file=sys.stderr)
        finally:
            stop.set()
            thread.join()
        for found in seen:
            if not any(same(found, g) for g in generations):
                f["silently changed answers"] += 1
                self.figures.note("ask during updates", "answers of no generation")
        now = self.snapshot(corpus=False)
        f["user files changed"] = sum(now.get(k) != v for k, v in others.items())
        expected = self.states[last[0]]
        f["user files changed"] += sum(
            (self.corpus / name).read_bytes() != data for name, data in expected.items()
        )
        return f


def hits(body: dict[str, list[dict[str, object]]]) -> list[tuple[object, ...]]:
    return [(r["source"], r["doc_id"], r["start"], r["end"], r["score"]) for r in body["results"]]


def same(a: list[list[tuple[object, ...]]], b: list[list[tuple[object, ...]]]) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if [r[:4] for r in x] != [r[:4] for r in y]:
            return False
        if any(abs(float(p[4]) - float(q[4])) > TOLERANCE for p, q in zip(x, y, strict=True)):
            return False
    return True


def table(kills: dict[str, int], asks: dict[str, int], tracebacks: int) -> str:
    k, a = kills, asks
    updates = f"{a['updates']} ({a['failed updates']} failed)"
    rows = [
        ("kill -9 trials", k["trials"], "", "≥ 50"),
        ("… killed before the run ended", k["killed before the end"], "", ""),
        ("asks during updates", "", a["asks"], "≥ 200"),
        ("… updates run meanwhile", "", updates, ""),
        ("tracebacks (all runs)", tracebacks, "", "0"),
        ("user files changed", k["user files changed"], a["user files changed"], "0"),
        ("files written outside the index", k["files written outside the index"], "", "0"),
        ("half indexes (ask fails after a kill)", k["half indexes"], "", "0"),
        ("`status --verify` not clean after a kill", k["status --verify not clean"], "", "0"),
        ("next `qa index` failed", k["next run failed"], "", "0"),
        (
            "leftover tmp folders after the next run",
            k["leftover tmp folders after the next run"],
            "",
            "0",
        ),
        ('false "damaged" errors', "", a['false "damaged" errors'], "0"),
        ("other failed asks", "", a["other failed asks"], "0"),
        (
            "silently changed answers",
            k["silently changed answers"],
            a["silently changed answers"],
            "0",
        ),
    ]
    lines = ["| figure | kill -9 during updates | asks during updates | target |"]
    lines += ["|---|---|---|---|"] + [f"| {w} | {x} | {y} | {z} |" for w, x, y, z in rows]
    return "\n".join(lines)


def commit() -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO), "log", "-1", "--format=%h %s"],
        capture_output=True,
        text=True,
        check=False,
    )
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "qa"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return done.stdout.strip() + (" (qa/ modified)" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=50, help="kill -9 trials (default 50)")
    parser.add_argument("--asks", type=int, default=200, help="asks during updates (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minutes", type=float, default=30, help="stop each part after this")
    parser.add_argument("--work", type=Path, default=Path("/tmp/qa-faults"))
    parser.add_argument("--python", default=python(), help="the Python that runs qa")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "faults.md")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    bench = Bench(args.work, args.python)
    bench.setup()
    started = time.perf_counter()
    update = bench.prelude()
    print(f"a typical update: {update:.1f} s", file=sys.stderr)
    kills = bench.kills(args.kills, update, rng, time.monotonic() + 60 * args.minutes)
    asks = bench.asks(args.asks, rng, time.monotonic() + 60 * args.minutes)
    seconds = time.perf_counter() - started
    body = table(kills, asks, bench.figures.tracebacks)
    print(body)
    rerun = " ".join(
        [".venv/bin/python", "bench/faults.py"]
        + ([f"--kills {args.kills}"] if args.kills != 50 else [])
        + ([f"--asks {args.asks}"] if args.asks != 200 else [])
        + ([f"--seed {args.seed}"] if args.seed else [])
    )
    examples = "\n".join(f"- {e}" for e in bench.figures.examples) or "- none"
    args.out.write_text(
        "# Fault injection: kill -9 during updates, asks during updates\n\n"
        f"Rerun (repo root): `{rerun}`. The fast part is `tests/test_faults.py`.\n\n"
        f"qa at {commit()}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; load {os.getloadavg()[0]:.1f} at the end; "
        f"{seconds / 60:.1f} min in all, a typical update {update:.1f} s.\n\n"
        f"{body}\n\n"
        "First failures seen (at most 8):\n\n"
        f"{examples}\n"
    )
    print(f"written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
