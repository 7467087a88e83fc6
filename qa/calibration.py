"""Relevance: the estimated probability that a passage answers the question, from its measures.

One logistic regression per retrieval mode over Hit.features(), measures that mean the same
from question to question (cosines, the share of BM25 the question could give, coverage, token
match), never a min-max or rank-relative score. The constants are what `bench/calibrate.py`
prints: fit on half the SQuAD questions and half the SciFact test claims (each set weighing
alike), top-10 passages each, a passage answering when it holds a SQuAD answer span or belongs
to a document judged relevant; reliability on the other halves in bench/results/calibration.txt.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Calibration:
    """relevance = 1 / (1 + exp(-(intercept + sum of weight * feature)))."""

    mode: str
    intercept: float
    weights: tuple[tuple[str, float], ...]  # (Hit.features() name, weight)

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.weights)

    def relevance(self, features: Mapping[str, float]) -> float:
        z = self.intercept + math.fsum(w * features[name] for name, w in self.weights)
        return 0.5 * (1.0 + math.tanh(0.5 * z))  # the logistic function, without overflow


# Ordered by the blend of BM25 and meaning, re-ranked by the best sentence: the passage's
# cosine, its BM25 share, and its best sentence's token match and term coverage.
HYBRID = Calibration(
    "hybrid",
    -8.91,
    (("dense", 3.88), ("lexical_share", 4.72), ("token_match", 7.22), ("terms", 1.03)),
)
# The same mode over an index without sentence states (re-ranked by words only).
HYBRID_WORDS = Calibration(
    "hybrid-words", -8.04, (("dense", 7.25), ("lexical_share", 3.40), ("terms", 3.22))
)
DENSE = Calibration("dense", -7.89, (("dense", 10.69),))
# Ordered by BM25 alone; its relevance also weighs the passage's cosine, which the no-answer
# decision of every mode has always read.
LEXICAL = Calibration("lexical", -8.57, (("dense", 8.45), ("lexical_share", 2.27), ("terms", 3.78)))
CALIBRATIONS = {c.mode: c for c in (HYBRID, HYBRID_WORDS, DENSE, LEXICAL)}

# No passage of the top k at this relevance or above: "no answer". Hybrid, top 5: 0.2% of SQuAD
# questions and 0.3% of SciFact claims flagged, 80.0% of SQuAD questions asked of SciFact and
# 95.0% of SciFact claims asked of SQuAD caught, 10 of 10 off-topic questions; the cosine rule
# it replaces (best cosine < 0.30) flagged 1.4% and 0.3% and caught 76.0% and 88.3%
# (bench/results/calibration.txt, every mode).
ANSWER_THRESHOLD = 0.01


def calibration(mode: str, sentence_states: bool = True) -> Calibration:
    """The model for a retrieval mode; hybrid without sentence states has its own."""
    if mode == "hybrid" and not sentence_states:
        return HYBRID_WORDS
    return CALIBRATIONS[mode]
