"""The hallucination guard: is each facet grounded in the gene's own text, and does it agree with GO?

1. Grounding. Each sentence of a facet paragraph is scored by the share of its content words (gene,
   molecule and process names; stop words and the gene's own symbol left out) that the gene's source
   text also contains, compared by their first six letters so that "catalyses" meets "catalyzes". A
   facet scores its weakest sentence: one invented sentence is enough to flag it. Flagged facets are
   reported and, where config asks, replaced by NONE.
2. GO agreement. A facet "has a role" when it is not NONE; the gene's GO annotations say it has one
   when it is annotated at or under one of the facet's roots. Precision and recall per facet and
   overall (micro), over the genes with at least one GO annotation.
3. Two-backend vote (optional): keep a facet only where two backends both say the gene has a role.

Answers are ``{entrez_id: {facet_id: paragraph or NONE}}``; ``answers_from_facet_sets`` makes them from
any backend's ``FacetSet``s, so the facets stage can report the guard for every backend.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data import annotation_db
from ..formats.facet_spec import FacetSpec
from ..settings import read_fields
from .base import NONE_MARKER, FacetSet, GeneText

STOP_WORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "been",
        "being",
        "by",
        "can",
        "could",
        "do",
        "does",
        "for",
        "from",
        "has",
        "have",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "may",
        "might",
        "of",
        "on",
        "or",
        "that",
        "the",
        "their",
        "them",
        "these",
        "this",
        "those",
        "through",
        "thereby",
        "to",
        "was",
        "were",
        "which",
        "while",
        "with",
        "within",
        "without",
        "also",
        "both",
        "each",
        "either",
        "other",
        "such",
        "than",
        "then",
        "there",
        "via",
        "when",
        "where",
        "who",
        "whose",
        "not",
        "no",
        "gene",
        "genes",
        "protein",
        "proteins",
        "encoded",
        "encodes",
        "encoding",
        "role",
        "roles",
        "function",
        "functions",
        "involved",
        "act",
        "acts",
        "cell",
        "cells",
        "text",
        "says",
        "say",
        "said",
        "human",
    ]
)


@dataclass(frozen=True)
class GroundingSettings:
    """Config ``facets.llm.grounding``."""

    threshold: float  # a facet whose weakest sentence scores below this is flagged
    replace_ungrounded: bool  # flagged facets become NONE

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> GroundingSettings:
        """From the validated ``facets.llm.grounding`` section."""
        return read_fields(cls, params)


SENTENCE_END = re.compile(r"(?<=[.;!?])\s+(?=[A-Z0-9(])")
TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9+\-/]*")
STEM = 6


def answers_from_facet_sets(
    facet_sets: Sequence[FacetSet], facets: Sequence[FacetSpec]
) -> dict[str, dict[str, str]]:
    return {
        s.entrez_id: {
            f.id: NONE_MARKER if text is None else text for f, text in zip(facets, s.texts)
        }
        for s in facet_sets
    }


def vote(
    first: Mapping[str, Mapping[str, str]], second: Mapping[str, Mapping[str, str]]
) -> dict[str, dict[str, str]]:
    """``first``'s answers, NONE wherever ``second`` says NONE (or lacks the gene or facet)."""
    return {
        entrez: {
            fid: text
            if text != NONE_MARKER and second.get(entrez, {}).get(fid, NONE_MARKER) != NONE_MARKER
            else NONE_MARKER
            for fid, text in answer.items()
        }
        for entrez, answer in first.items()
    }


def go_roles(
    entrez_ids: Iterable[str],
    gene_terms: Mapping[str, set[str]],
    facet_descendants: Mapping[str, set[str]],
) -> dict[str, dict[str, str]]:
    """The go-rules backend's verdict as answers: a facet has a role ("GO") where the gene is
    annotated under its roots, else NONE. With ``vote``, it keeps only LLM facets GO also sees."""
    return {
        entrez: {
            fid: "GO" if gene_terms.get(entrez, set()) & descendants else NONE_MARKER
            for fid, descendants in facet_descendants.items()
        }
        for entrez in entrez_ids
    }


def content_terms(text: str, ignore: Iterable[str] = ()) -> set[str]:
    ignored = {word.casefold() for word in ignore}
    terms = set()
    for token in TOKEN.findall(text):
        word = token.casefold().strip("-/")
        if len(word) < 3 or word in STOP_WORDS or word in ignored:
            continue
        terms.add(word[:STEM])
    return terms


def split_sentences(text: str) -> list[str]:
    return [part.strip() for part in SENTENCE_END.split(text) if part.strip()]


def grounding_score(paragraph: str, source: str, symbol: str) -> tuple[float, str]:
    """(the weakest sentence's share of content words found in ``source``, that sentence)."""
    known = content_terms(source)
    weakest = (1.0, "")
    for sentence in split_sentences(paragraph):
        terms = content_terms(sentence, ignore=(symbol,))
        if not terms:
            continue
        score = len(terms & known) / len(terms)
        if score < weakest[0]:
            weakest = (score, sentence)
    return weakest


def grounding(
    answers: Mapping[str, Mapping[str, str]], genes: Sequence[GeneText], threshold: float
) -> list[dict]:
    """One row per non-NONE facet: entrez_id, symbol, facet, score, weakest sentence, flagged."""
    rows = []
    for gene in genes:
        for fid, text in answers.get(gene.entrez_id, {}).items():
            if text == NONE_MARKER:
                continue
            score, sentence = grounding_score(text, gene.text, gene.symbol)
            rows.append(
                {
                    "entrez_id": gene.entrez_id,
                    "symbol": gene.symbol,
                    "facet": fid,
                    "score": round(score, 4),
                    "weakest_sentence": sentence,
                    "flagged": score < threshold,
                }
            )
    return rows


def drop_flagged(
    answers: Mapping[str, Mapping[str, str]], rows: Sequence[dict]
) -> dict[str, dict[str, str]]:
    """The answers with every flagged facet replaced by NONE."""
    result = {entrez: dict(answer) for entrez, answer in answers.items()}
    for row in rows:
        if row["flagged"]:
            result[row["entrez_id"]][row["facet"]] = NONE_MARKER
    return result


def _ratio(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def go_agreement(
    answers: Mapping[str, Mapping[str, str]],
    gene_terms: Mapping[str, set[str]],
    facet_descendants: Mapping[str, set[str]],
) -> dict:
    """Precision / recall of "facet is not NONE" against "gene is annotated under the facet's roots"."""
    scored = [entrez for entrez in answers if gene_terms.get(entrez)]
    per_facet, totals = {}, [0, 0, 0]
    for fid, descendants in facet_descendants.items():
        tp = fp = fn = 0
        for entrez in scored:
            said = answers[entrez].get(fid, NONE_MARKER) != NONE_MARKER
            annotated = bool(gene_terms[entrez] & descendants)
            tp += said and annotated
            fp += said and not annotated
            fn += annotated and not said
        per_facet[fid] = {
            "true_positive": tp,
            "false_positive": fp,
            "false_negative": fn,
            "precision": _ratio(tp, tp + fp),
            "recall": _ratio(tp, tp + fn),
        }
        totals = [totals[0] + tp, totals[1] + fp, totals[2] + fn]
    tp, fp, fn = totals
    return {
        "genes_scored": len(scored),
        "per_facet": per_facet,
        "overall": {"precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn)},
    }


def go_sets(
    org_db: str | Path,
    go_db: str | Path,
    facets: Sequence[FacetSpec],
    entrez_ids: Iterable[str],
    excluded_evidence: Iterable[str],
) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(gene → its annotated GO ids, facet id → every GO id at or under its roots)."""
    roots = sorted({root for facet in facets for root in facet.go_roots})
    descendants = annotation_db.go_descendants(go_db, roots)
    facet_descendants = {
        f.id: set().union(*(descendants[root] for root in f.go_roots)) for f in facets
    }
    annotations = annotation_db.gene_go_annotations(org_db, entrez_ids, excluded_evidence)
    gene_terms = {entrez: {go for go, _ in terms} for entrez, terms in annotations.items()}
    return gene_terms, facet_descendants


def guard_report(
    answers: Mapping[str, Mapping[str, str]],
    genes: Sequence[GeneText],
    gene_terms: Mapping[str, set[str]],
    facet_descendants: Mapping[str, set[str]],
    threshold: float,
) -> dict:
    """Grounding (per facet: facets written, mean score, flagged; and the flagged facets themselves)
    and GO agreement, for ``facets_report.json``."""
    rows = grounding(answers, genes, threshold)
    per_facet = {}
    for fid in facet_descendants:
        scores = [row["score"] for row in rows if row["facet"] == fid]
        per_facet[fid] = {
            "written": len(scores),
            "mean_score": round(sum(scores) / len(scores), 4) if scores else None,
            "flagged": sum(row["facet"] == fid and row["flagged"] for row in rows),
        }
    return {
        "grounding": {
            "threshold": threshold,
            "facets_written": len(rows),
            "flagged": sum(row["flagged"] for row in rows),
            "per_facet": per_facet,
            "flagged_facets": [row for row in rows if row["flagged"]],
        },
        "go_agreement": go_agreement(answers, gene_terms, facet_descendants),
    }
