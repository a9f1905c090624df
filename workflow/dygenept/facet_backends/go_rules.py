"""The ``go-rules`` facet backend: Gene Ontology annotations assigned to facets through the GO DAG.

A gene's facet paragraph names its annotated terms that lie at or under the facet's roots, the
sentences of its text that name those terms, and the definition of its most specific such terms.
A facet with no such annotation is NONE: nothing is written that the annotations do not say.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..data import annotation_db
from ..errors import InputError
from ..formats.facet_spec import FacetSpec
from ..settings import read_fields
from .base import FacetSet, GeneText


class ObsoleteRootError(InputError):
    pass


def facet_subtrees(go_db: Path, facets: Sequence[FacetSpec]) -> list[set[str]]:
    """Each facet's GO terms: its roots and all their offspring. Obsolete or unknown roots stop the run."""
    roots = sorted({root for facet in facets for root in facet.go_roots})
    obsolete = annotation_db.obsolete_go_ids(go_db, roots)
    if obsolete:
        raise ObsoleteRootError(
            f"facets.yaml uses GO roots that are obsolete in {go_db}: {sorted(obsolete)}. "
            "Fix: replace them (e.g. GO:0006928 → cell motility GO:0048870 and cell adhesion GO:0007155)."
        )
    try:
        descendants = annotation_db.go_descendants(go_db, roots)
    except KeyError as error:
        raise ObsoleteRootError(
            f"facets.yaml names GO root {error} that {go_db} does not know."
        ) from None
    return [set().union(*(descendants[root] for root in facet.go_roots)) for facet in facets]


def assign_terms_to_facets(
    gene_terms: set[str], facet_descendants: Sequence[set[str]]
) -> list[set[str]]:
    """For each facet, the gene's terms inside that facet's subtree."""
    return [gene_terms & descendants for descendants in facet_descendants]


def sentences_naming(sentences: Sequence[dict], term_names: set[str], limit: int) -> list[str]:
    """Sentences that cite one of the terms (by GO id) or name one (by text), in text order."""
    lowered = {name.casefold() for name in term_names}
    chosen = []
    for sentence in sentences:
        text = sentence["text"]
        if sentence.get("ref") in term_names or any(name in text.casefold() for name in lowered):
            chosen.append(text)
        if len(chosen) == limit:
            break
    return chosen


def facet_paragraph(
    gene: GeneText,
    facet: FacetSpec,
    term_ids: set[str],
    terms: dict[str, annotation_db.GoTerm],
    specificity: dict[str, int],
    max_sentences: int,
    max_definitions: int,
) -> str:
    ordered = sorted(term_ids, key=lambda go_id: (specificity.get(go_id, 0), terms[go_id].term))
    names = [terms[go_id].term for go_id in ordered]
    sentences = sentences_naming(gene.sentences, set(term_ids) | set(names), max_sentences)
    parts = [f"{gene.symbol} in {facet.name}: annotated with {', '.join(names[:max_sentences])}."]
    parts += [s for s in sentences if s not in parts]
    for go_id in ordered[:max_definitions]:
        if terms[go_id].definition:
            parts.append(
                f"{terms[go_id].term[:1].upper()}{terms[go_id].term[1:]}: {terms[go_id].definition}"
            )
    return " ".join(parts)


@dataclass(frozen=True)
class GoRulesSettings:
    excluded_evidence: tuple[str, ...]
    max_sentences: int
    max_definitions: int

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> GoRulesSettings:
        """From the validated ``facets`` section (with ``excluded_evidence``)."""
        return read_fields(cls, params, excluded_evidence=tuple(params["excluded_evidence"]))


@dataclass
class GoRulesBackend:
    org_db: Path
    go_db: Path
    excluded_evidence: tuple[str, ...]
    max_sentences: int
    max_definitions: int
    name: str = "go-rules"

    def generate(self, genes: Sequence[GeneText], facets: Sequence[FacetSpec]) -> list[FacetSet]:
        facet_descendants = facet_subtrees(self.go_db, facets)
        terms = annotation_db.go_terms(self.go_db)
        specificity = annotation_db.offspring_counts(self.go_db)
        gene_annotations = annotation_db.gene_go_annotations(
            self.org_db, [g.entrez_id for g in genes], self.excluded_evidence
        )
        result = []
        for gene in genes:
            gene_terms = {
                go_id for go_id, _ in gene_annotations.get(gene.entrez_id, set()) if go_id in terms
            }
            per_facet = assign_terms_to_facets(gene_terms, facet_descendants)
            texts = tuple(
                facet_paragraph(
                    gene, facet, ids, terms, specificity, self.max_sentences, self.max_definitions
                )
                if ids
                else None
                for facet, ids in zip(facets, per_facet)
            )
            result.append(
                FacetSet(gene.entrez_id, texts, tuple(tuple(sorted(ids)) for ids in per_facet))
            )
        return result


def make(inputs: dict[str, Path], settings: GoRulesSettings) -> GoRulesBackend:
    return GoRulesBackend(
        org_db=Path(inputs["org_db"]),
        go_db=Path(inputs["go_db"]),
        excluded_evidence=settings.excluded_evidence,
        max_sentences=settings.max_sentences,
        max_definitions=settings.max_definitions,
    )
