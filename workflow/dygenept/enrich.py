"""The enrich stage: genes with thin text get a clearly marked paragraph about their nearest neighbours.

Embedded default neighbours: Gene Ontology annotation similarity (cosine of IDF-weighted annotation
vectors over all human genes), so generic terms such as "protein binding" count for little. A STRING
interaction source slots in as another ``NeighbourSource``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import annotations
from .errors import InputError
from .artifacts import atomic_path

log = logging.getLogger(__name__)

NEIGHBOUR_MARKER = "[Neighbour context]"


@dataclass(frozen=True)
class Neighbour:
    entrez_id: str
    symbol: str
    score: float
    summary: str


@dataclass(frozen=True)
class AnnotationMatrix:
    """Genes × GO terms, rows L2-normalised after IDF weighting."""

    gene_ids: list[str]
    term_ids: list[str]
    weighted: sp.csr_matrix
    row_of: dict[str, int]

    @classmethod
    def build(cls, gene_annotations: dict[str, set[tuple[str, str]]]) -> "AnnotationMatrix":
        gene_ids = sorted(gene_annotations)
        term_ids = sorted({go_id for pairs in gene_annotations.values() for go_id, _ in pairs})
        term_index = {term: i for i, term in enumerate(term_ids)}
        rows, cols = [], []
        for row, gene in enumerate(gene_ids):
            for go_id, _ in gene_annotations[gene]:
                rows.append(row)
                cols.append(term_index[go_id])
        binary = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(gene_ids), len(term_ids)))
        document_frequency = np.asarray(binary.sum(axis=0)).ravel()
        idf = np.log(len(gene_ids) / document_frequency).astype(np.float32)
        weighted = binary @ sp.diags(idf)
        norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        row_of = {gene: i for i, gene in enumerate(gene_ids)}
        return cls(gene_ids, term_ids, sp.csr_matrix(sp.diags(1.0 / norms) @ weighted), row_of)

    def nearest(self, entrez_id: str, k: int, min_score: float) -> list[tuple[str, float]]:
        if entrez_id not in self.row_of:
            return []
        query = self.weighted[self.row_of[entrez_id]]
        scores = (self.weighted @ query.T).toarray().ravel()
        scores[self.row_of[entrez_id]] = -1.0
        order = np.argsort(-scores, kind="stable")[:k]
        return [(self.gene_ids[i], float(scores[i])) for i in order if scores[i] >= min_score]

    def top_terms(self, entrez_id: str, n: int) -> list[str]:
        """The gene's most specific (highest-IDF) terms."""
        row = self.weighted[self.row_of[entrez_id]]
        order = np.argsort(-row.data, kind="stable")[:n]
        return [self.term_ids[row.indices[i]] for i in order]


def neighbour_paragraph(symbol: str, neighbours: list[Neighbour], source: str) -> str:
    described = " ".join(n.summary for n in neighbours)
    return (
        f"{NEIGHBOUR_MARKER} Genes most similar to {symbol} by {source} (context, not direct knowledge of "
        f"{symbol}): {described}"
    )


NeighbourSource = Callable[[list[str], dict[str, Path], dict], dict[str, list[Neighbour]]]


def go_similarity_source(entrez_ids: list[str], inputs: dict[str, Path], params: dict) -> dict[str, list[Neighbour]]:
    gene_annotations = annotations.gene_go_annotations(inputs["org_db"], None, params["excluded_evidence"])
    matrix = AnnotationMatrix.build(gene_annotations)
    records = annotations.gene_records(inputs["org_db"])
    terms = annotations.go_terms(inputs["go_db"])
    result = {}
    for entrez_id in entrez_ids:
        neighbours = []
        for neighbour_id, score in matrix.nearest(entrez_id, params["top_k"], params["min_score"]):
            record = records[neighbour_id]
            top = ", ".join(terms[t].term for t in matrix.top_terms(neighbour_id, params["terms_per_neighbour"]))
            summary = f"{record.symbol} ({record.name}; similarity {score:.2f}) is annotated with {top}."
            neighbours.append(Neighbour(neighbour_id, record.symbol, round(score, 4), summary))
        result[entrez_id] = neighbours
    return result


NEIGHBOUR_SOURCES: dict[str, tuple[str, NeighbourSource]] = {
    "go_similarity": ("Gene Ontology annotation similarity", go_similarity_source),
}


def run(inputs: dict[str, Path], outputs: dict[str, Path], params: dict) -> dict:
    table = pd.read_parquet(inputs["gene_text"])
    thin = table.loc[table["n_chars"] < params["min_chars"], "entrez_id"].tolist()
    if params["neighbours"] not in NEIGHBOUR_SOURCES:
        raise InputError(f"config 'enrich.neighbours' is '{params['neighbours']}'; known: {sorted(NEIGHBOUR_SOURCES)}")
    description, source = NEIGHBOUR_SOURCES[params["neighbours"]]
    neighbours = source(thin, inputs, params) if thin else {}
    enriched_text, enriched_flag, neighbour_lists = [], [], []
    for gene in table.itertuples(index=False):
        found = neighbours.get(gene.entrez_id, [])
        if found:
            enriched_text.append(f"{gene.text}\n\n{neighbour_paragraph(gene.symbol, found, description)}".strip())
        else:
            enriched_text.append(gene.text)
        enriched_flag.append(bool(found))
        neighbour_lists.append([{"entrez_id": n.entrez_id, "symbol": n.symbol, "score": n.score} for n in found])
    table = table.assign(text=enriched_text, enriched=enriched_flag, neighbours=neighbour_lists)
    table["n_chars"] = table["text"].str.len()
    with atomic_path(outputs["gene_text"]) as tmp:
        table.to_parquet(tmp, index=False)
    enriched = table.loc[table["enriched"], "symbol"].tolist()
    log.info("%d thin genes (< %d chars); enriched: %s", len(thin), params["min_chars"], enriched)
    return {"thin_genes": len(thin), "enriched": enriched, "neighbour_source": params["neighbours"]}
