"""The ``extractive`` facet backend: each facet is made of the gene's own source sentences; no LLM.

A sentence of the gene's text (``GeneText.sentences``) goes to a facet when

1. it is a GO annotation sentence (its ``ref`` a GO id) whose term lies at or under the facet's roots;
2. it names a GO term under the facet's roots (its name, or a synonym of several words, as whole words);
3. its cosine similarity to the facet's name and description, with the facet-embedding encoder, reaches
   ``min_similarity_annotated``, is within ``margin`` of its closest facet's, and the gene's own GO
   annotations lie under the facet's roots; or
4. its similarity reaches ``min_similarity`` and no other facet is closer to it.

The margin keeps a vague sentence ("involved in cell proliferation, migration, and differentiation") out of
every facet its gene happens to be annotated in.

A facet's text is at most ``max_sentences`` of its sentences: the prose ones (NCBI, UniProt, the gene's
name line) closest to the facet first, then GO annotation sentences from the most specific term; prose is
written in text order, then the GO sentences. A facet no sentence qualifies for is NONE. Nothing is
written that the source text does not say, word for word, so the backend is grounded by construction; it
is also the reference that the LLM backends' hallucination guard compares with.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..data import annotation_db
from ..formats.facet_spec import FacetSpec
from ..registry import SOURCE_LABELS
from ..settings import read_fields
from ..text_encoders import TextEncoder, TextEncoderSettings
from .base import FacetSet, GeneText
from .go_rules import facet_subtrees

log = logging.getLogger(__name__)

_WORD = re.compile(r"[a-z0-9]+(?:[-'/][a-z0-9]+)*")
GO_LABEL = SOURCE_LABELS["go"]


def words(text: str) -> tuple[str, ...]:
    """Lower-case words, hyphenated and slashed compounds kept whole ("DNA-templated" is one word)."""
    return tuple(_WORD.findall(text.casefold()))


@dataclass(frozen=True)
class TermIndex:
    """GO term names and synonyms as word sequences, to find the terms a sentence names."""

    phrases: dict[tuple[str, ...], frozenset[str]]
    longest: int

    @classmethod
    def build(
        cls, names: dict[str, str], synonyms: dict[str, Iterable[str]], min_chars: int
    ) -> TermIndex:
        """``names``: GO id → term name; ``synonyms``: GO id → its synonyms. One-word synonyms are left
        out (GO.db keeps no synonym scope, and its broad ones mislead: "pathogenesis" is a synonym of a
        host cell death term), and so are one-word names shorter than ``min_chars``."""
        phrases: dict[tuple[str, ...], set[str]] = {}
        labels = [(go_id, name, True) for go_id, name in names.items()]
        labels += [(go_id, s, False) for go_id, found in synonyms.items() for s in found]
        for go_id, label, is_name in labels:
            phrase = words(label)
            if len(phrase) > 1 or (phrase and is_name and len(phrase[0]) >= min_chars):
                phrases.setdefault(phrase, set()).add(go_id)
        longest = max((len(p) for p in phrases), default=0)
        return cls({p: frozenset(ids) for p, ids in phrases.items()}, longest)

    def named(self, text: str) -> set[str]:
        """GO ids whose name or synonym occurs in ``text`` as whole words."""
        tokens = words(text)
        found: set[str] = set()
        for start in range(len(tokens)):
            for end in range(start + 1, min(start + self.longest, len(tokens)) + 1):
                found |= self.phrases.get(tokens[start:end], frozenset())
        return found


def facet_prototype(facet: FacetSpec) -> str:
    """What a sentence is compared with: the facet's name and description from facets.yaml."""
    return f"{facet.name}: {facet.description}"


def is_go_sentence(sentence: dict) -> bool:
    return sentence["source"] == GO_LABEL


@dataclass(frozen=True)
class Thresholds:
    min_similarity: float
    min_similarity_annotated: float
    margin: float


@dataclass(frozen=True)
class ExtractiveSettings:
    excluded_evidence: tuple[str, ...]
    max_sentences: int
    thresholds: Thresholds
    min_term_chars: int
    encoder: TextEncoderSettings  # the facet_embed section: the same encoder embeds the facets

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ExtractiveSettings:
        """From the validated ``facets`` section (with ``extractive``, ``facet_embed``, ``excluded_evidence``)."""
        section = params["extractive"]
        return read_fields(
            cls,
            params,
            excluded_evidence=tuple(params["excluded_evidence"]),
            thresholds=read_fields(Thresholds, section),
            min_term_chars=section["min_term_chars"],
            encoder=TextEncoderSettings.from_params(params["facet_embed"]),
        )


def prose_facets(
    similarity: np.ndarray,
    named: set[str],
    annotated: Sequence[bool],
    subtrees: Sequence[set[str]],
    thresholds: Thresholds,
) -> list[int]:
    """The facets (positions) one prose sentence goes to: rules 2–4 of the module docstring."""
    best = int(np.argmax(similarity))
    return [
        k
        for k in range(len(subtrees))
        if named & subtrees[k]
        or (
            annotated[k]
            and similarity[k] >= thresholds.min_similarity_annotated
            and similarity[k] >= similarity[best] - thresholds.margin
        )
        or (k == best and similarity[k] >= thresholds.min_similarity)
    ]


def facet_text(
    sentences: Sequence[dict],
    prose: Sequence[tuple[int, float]],
    go: Sequence[tuple[int, int]],
    max_sentences: int,
) -> tuple[str, list[int]] | None:
    """The facet's paragraph from its qualifying sentences, or None.

    ``prose``: (position, similarity) pairs; ``go``: (position, offspring count of the sentence's term).
    The closest prose and then the most specific GO sentences fill ``max_sentences``; prose is written in
    text order, then the GO sentences from the most specific."""
    kept_prose = sorted(sorted(prose, key=lambda item: (-item[1], item[0]))[:max_sentences])
    room = max_sentences - len(kept_prose)
    kept_go = sorted(go, key=lambda item: (item[1], sentences[item[0]]["text"]))[:room]
    chosen = [position for position, _ in kept_prose] + [position for position, _ in kept_go]
    if not chosen:
        return None
    return " ".join(sentences[position]["text"] for position in chosen), chosen


@dataclass
class ExtractiveBackend:
    org_db: Path
    go_db: Path
    encoder: TextEncoderSettings  # facet_embed's: the same encoder embeds the facets
    excluded_evidence: tuple[str, ...]
    max_sentences: int
    thresholds: Thresholds
    min_term_chars: int
    name: str = "extractive"

    def similarities(
        self, texts: Sequence[str], facets: Sequence[FacetSpec]
    ) -> dict[str, np.ndarray]:
        """Text → its cosine similarity to each facet's prototype (one encoder pass over distinct texts)."""
        distinct = sorted(set(texts))
        if not distinct:
            return {}
        unit_vectors = replace(self.encoder, encoder=replace(self.encoder.encoder, normalize=True))
        encoder = TextEncoder.from_settings(unit_vectors)
        log.info("extractive: encoding %d distinct prose sentences", len(distinct))
        facet_vectors = encoder.encode([facet_prototype(facet) for facet in facets])
        sentence_vectors = encoder.encode(distinct)
        return dict(zip(distinct, sentence_vectors @ facet_vectors.T))

    def generate(self, genes: Sequence[GeneText], facets: Sequence[FacetSpec]) -> list[FacetSet]:
        subtrees = facet_subtrees(self.go_db, facets)
        in_any = set().union(*subtrees)
        terms = annotation_db.go_terms(self.go_db)
        synonyms = annotation_db.go_synonyms(self.go_db)
        index = TermIndex.build(
            {go_id: terms[go_id].term for go_id in in_any if go_id in terms},
            {go_id: synonyms.get(go_id, []) for go_id in in_any},
            self.min_term_chars,
        )
        specificity = annotation_db.offspring_counts(self.go_db)
        annotations = annotation_db.gene_go_annotations(
            self.org_db, [g.entrez_id for g in genes], self.excluded_evidence
        )
        similarity = self.similarities(
            [s["text"] for g in genes for s in g.sentences if not is_go_sentence(s)], facets
        )
        return [
            self.facet_set(
                gene,
                {go_id for go_id, _ in annotations.get(gene.entrez_id, set())},
                subtrees,
                index,
                specificity,
                similarity,
            )
            for gene in genes
        ]

    def facet_set(
        self,
        gene: GeneText,
        gene_terms: set[str],
        subtrees: Sequence[set[str]],
        index: TermIndex,
        specificity: dict[str, int],
        similarity: dict[str, np.ndarray],
    ) -> FacetSet:
        """One gene's facets; a facet's evidence is its sentences' refs and the GO terms they name."""
        annotated = [bool(gene_terms & subtree) for subtree in subtrees]
        prose: list[list[tuple[int, float]]] = [[] for _ in subtrees]
        go: list[list[tuple[int, int]]] = [[] for _ in subtrees]
        named: dict[int, set[str]] = {}
        for position, sentence in enumerate(gene.sentences):
            if is_go_sentence(sentence):
                for k, subtree in enumerate(subtrees):
                    if sentence["ref"] in subtree:
                        go[k].append((position, specificity.get(sentence["ref"], 0)))
                continue
            scores = similarity[sentence["text"]]
            named[position] = index.named(sentence["text"])
            for k in prose_facets(scores, named[position], annotated, subtrees, self.thresholds):
                prose[k].append((position, float(scores[k])))
        texts: list[str | None] = []
        evidence: list[tuple[str, ...]] = []
        for k, subtree in enumerate(subtrees):
            made = facet_text(gene.sentences, prose[k], go[k], self.max_sentences)
            if made is None:
                texts.append(None)
                evidence.append(())
                continue
            refs = {gene.sentences[p]["ref"] for p in made[1]}
            terms = {go_id for p in made[1] for go_id in named.get(p, set()) & subtree}
            texts.append(made[0])
            evidence.append(tuple(sorted(refs | terms)))
        return FacetSet(gene.entrez_id, tuple(texts), tuple(evidence))


def make(inputs: dict[str, Path], settings: ExtractiveSettings) -> ExtractiveBackend:
    return ExtractiveBackend(
        org_db=Path(inputs["org_db"]),
        go_db=Path(inputs["go_db"]),
        encoder=settings.encoder,
        excluded_evidence=settings.excluded_evidence,
        max_sentences=settings.max_sentences,
        thresholds=settings.thresholds,
        min_term_chars=settings.min_term_chars,
    )
