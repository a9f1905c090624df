"""The enrich stage: genes with thin text get a clearly marked paragraph about their nearest neighbours.

Neighbour sources: ``go_similarity`` (embedded default; cosine of IDF-weighted GO annotation vectors over
all human genes, so generic terms such as "protein binding" count for little) and ``string_table`` (a
local STRING edge table with Entrez ids, e.g. combined score ≥ 700). Each neighbour is described in one
sentence: its name, the score, and its most specific GO terms.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..data import annotation_db
from ..errors import InputError
from ..formats.gene_text import read_refseq_table
from ..io.artifacts import atomic_path, write_json_atomic
from ..registry import PROSE_LABELS, lowest_string_score
from ..text.cleaning import clean_sentences

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
    def build(cls, gene_annotations: dict[str, set[tuple[str, str]]]) -> AnnotationMatrix:
        gene_ids = sorted(gene_annotations)
        term_ids = sorted({go_id for pairs in gene_annotations.values() for go_id, _ in pairs})
        term_index = {term: i for i, term in enumerate(term_ids)}
        rows, cols = [], []
        for row, gene in enumerate(gene_ids):
            for go_id, _ in gene_annotations[gene]:
                rows.append(row)
                cols.append(term_index[go_id])
        binary = sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, cols)),
            shape=(len(gene_ids), len(term_ids)),
        )
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
        f"{NEIGHBOUR_MARKER} Neighbours of {symbol} by {source} (context, not direct knowledge of "
        f"{symbol}): {described}"
    )


Ranked = dict[str, list[tuple[str, float]]]  # gene → [(neighbour, score in 0..1)], best first


def go_similarity_neighbours(
    entrez_ids: list[str], inputs: dict[str, Path], params: dict, matrix: AnnotationMatrix
) -> Ranked:
    return {
        entrez_id: matrix.nearest(entrez_id, params["top_k"], params["min_score"])
        for entrez_id in entrez_ids
    }


STRING_COLUMNS = ("gene1_entrez", "gene2_entrez", "combined_score")


def read_string_edges(path: str | Path, min_combined_score: int) -> pd.DataFrame:
    """Undirected STRING edges (Entrez ids, combined score 0-1000) at or above the threshold, both directions."""
    edges = pd.read_csv(path, sep="\t", dtype={"gene1_entrez": str, "gene2_entrez": str})
    missing = [column for column in STRING_COLUMNS if column not in edges.columns]
    if missing:
        raise InputError(
            f"{path}: no column(s) {missing} (columns present: {', '.join(edges.columns)}). "
            "Fix: config 'enrich.string_table.path' needs an edge table with gene1_entrez, gene2_entrez, combined_score."
        )
    edges = edges.loc[edges["combined_score"] >= min_combined_score, list(STRING_COLUMNS)]
    flipped = edges.rename(columns={"gene1_entrez": "gene2_entrez", "gene2_entrez": "gene1_entrez"})
    return pd.concat([edges, flipped], ignore_index=True)


def string_neighbours(
    entrez_ids: list[str], inputs: dict[str, Path], params: dict, matrix: AnnotationMatrix
) -> Ranked:
    """Top-k STRING partners from the edge table: a local one (string_table) or STRING's own files (string_files)."""
    threshold = params[params["neighbours"]]["min_combined_score"]
    # A gene with no partner at the threshold takes its best medium-confidence ones (STRING: ≥ 400) if set.
    edges = read_string_edges(
        inputs["string_table"], lowest_string_score(threshold, params["string_fallback_min_score"])
    )
    edges = edges[edges["gene1_entrez"].isin(entrez_ids)].sort_values(
        ["gene1_entrez", "combined_score", "gene2_entrez"], ascending=[True, False, True]
    )
    ranked: Ranked = {entrez_id: [] for entrez_id in entrez_ids}
    for gene, group in edges.groupby("gene1_entrez", sort=False):
        strong = group[group["combined_score"] >= threshold]
        chosen = strong if len(strong) else group
        ranked[gene] = [
            (n, s / 1000.0) for n, s in zip(chosen["gene2_entrez"], chosen["combined_score"])
        ][: params["top_k"]]
    return ranked


NEIGHBOUR_SOURCES = {
    "go_similarity": (
        "Gene Ontology annotation similarity",
        "similarity",
        go_similarity_neighbours,
    ),
    "string_table": ("STRING protein interactions", "STRING score", string_neighbours),
    "string_files": ("STRING protein interactions", "STRING score", string_neighbours),
}


def first_prose_sentences(table: pd.DataFrame) -> dict[str, str]:
    """Each gene's first sentence from a prose source of the knowledge stage, where it has one."""
    found = {}
    for gene, sentences in zip(table["entrez_id"], table["sentences"]):
        prose = [s["text"] for s in sentences if s["source"] in PROSE_LABELS]
        if prose:
            found[gene] = prose[0]
    return found


def refseq_first_sentences(path: str | Path, entrez_ids: set[str]) -> dict[str, str]:
    summaries = read_refseq_table(path, entrez_ids)
    return {
        gene: sentences[0]
        for gene, summary in summaries.items()
        if (sentences := clean_sentences(summary))
    }


def describe(
    ranked: Ranked,
    matrix: AnnotationMatrix,
    records: dict,
    terms: dict,
    score_label: str,
    n_terms: int,
    prose: dict[str, str],
) -> dict[str, list[Neighbour]]:
    """A one-sentence summary of each neighbour: its name, the score, and its first prose sentence (knowledge
    text or RefSeq) or else its most specific GO terms."""
    described = {}
    for gene, neighbours in ranked.items():
        described[gene] = []
        for neighbour_id, score in neighbours:
            record = records.get(neighbour_id)
            if record is None:
                continue
            if neighbour_id in prose:
                about = f": {prose[neighbour_id]}"
            else:
                top = (
                    [terms[t].term for t in matrix.top_terms(neighbour_id, n_terms)]
                    if neighbour_id in matrix.row_of
                    else []
                )
                about = f" is annotated with {', '.join(top)}." if top else " has no GO annotation."
            summary = f"{record.symbol} ({record.name}; {score_label} {score:.2f}){about}"
            described[gene].append(Neighbour(neighbour_id, record.symbol, round(score, 4), summary))
    return described


def run(inputs: dict[str, Path], outputs: dict[str, Path], params: dict) -> dict:
    """Give genes with thin text a marked paragraph about their nearest neighbours.

    Reads ``gene_text``, ``org_db``, ``go_db`` and, with a STRING source, ``string_table``; with a RefSeq
    knowledge source, ``refseq_tsv``. Writes ``gene_text`` and ``report``. Params: the ``enrich`` config
    section (``neighbours``, ``min_chars``, ``top_k``, score thresholds) and ``excluded_evidence``.
    """
    table = pd.read_parquet(inputs["gene_text"])
    thin = table.loc[table["n_chars"] < params["min_chars"], "entrez_id"].tolist()
    if params["neighbours"] not in NEIGHBOUR_SOURCES:
        raise InputError(
            f"config 'enrich.neighbours' is '{params['neighbours']}'; known: {sorted(NEIGHBOUR_SOURCES)}"
        )
    neighbours: dict[str, list[Neighbour]] = {}
    described_by: dict[str, str] = {}
    tried: dict[str, list[str]] = {gene: [] for gene in thin}
    if thin:
        matrix = AnnotationMatrix.build(
            annotation_db.gene_go_annotations(inputs["org_db"], None, params["excluded_evidence"])
        )
        records, terms = (
            annotation_db.gene_records(inputs["org_db"]),
            annotation_db.go_terms(inputs["go_db"]),
        )
        prose = first_prose_sentences(table)
        if "refseq_tsv" in inputs:
            prose = {**refseq_first_sentences(inputs["refseq_tsv"], set(records)), **prose}
        # A gene without neighbours in the chosen source falls back to GO similarity.
        for name in dict.fromkeys([params["neighbours"], "go_similarity"]):
            pending = [gene for gene in thin if not neighbours.get(gene)]
            description, score_label, source = NEIGHBOUR_SOURCES[name]
            found = describe(
                source(pending, inputs, params, matrix),
                matrix,
                records,
                terms,
                score_label,
                params["terms_per_neighbour"],
                prose,
            )
            for gene, listed in found.items():
                tried[gene].append(name)
                if listed:
                    neighbours[gene], described_by[gene] = listed, description
    enriched_text, enriched_flag, neighbour_lists = [], [], []
    for gene in table.itertuples(index=False):
        found = neighbours.get(gene.entrez_id, [])
        if found:
            enriched_text.append(
                f"{gene.text}\n\n{neighbour_paragraph(gene.symbol, found, described_by[gene.entrez_id])}".strip()
            )
        else:
            enriched_text.append(gene.text)
        enriched_flag.append(bool(found))
        neighbour_lists.append(
            [{"entrez_id": n.entrez_id, "symbol": n.symbol, "score": n.score} for n in found]
        )
    table = table.assign(
        text=enriched_text,
        enriched=enriched_flag,
        neighbours=neighbour_lists,
        neighbour_source=[described_by.get(gene, "") for gene in table["entrez_id"]],
    )
    table["n_chars"] = table["text"].str.len()
    with atomic_path(outputs["gene_text"]) as tmp:
        table.to_parquet(tmp, index=False)
    report = enrich_report(table, thin, tried, params)
    write_json_atomic(outputs["report"], report)
    log.info(
        "%d thin genes (< %d chars); enriched: %s; still thin: %s",
        len(thin),
        params["min_chars"],
        sorted(report["enriched"]),
        sorted(report["still_thin"]),
    )
    return {
        "thin_genes": len(thin),
        "enriched": sorted(report["enriched"]),
        "still_thin": report["still_thin"],
        "neighbour_source": params["neighbours"],
    }


def enrich_report(
    table: pd.DataFrame, thin: list[str], tried: dict[str, list[str]], params: dict
) -> dict:
    """Which thin genes got neighbours from which source, and why the others stayed thin."""
    rows = table.set_index("entrez_id")
    enriched = {
        rows.at[g, "symbol"]: {
            "source": rows.at[g, "neighbour_source"],
            "neighbours": [f"{n['symbol']} ({n['score']:.2f})" for n in rows.at[g, "neighbours"]],
            "n_chars": int(rows.at[g, "n_chars"]),
        }
        for g in thin
        if rows.at[g, "enriched"]
    }
    still_thin = {
        rows.at[
            g, "symbol"
        ]: f"no neighbour in {' or '.join(tried[g])} (no STRING partner at the score "
        f"threshold, no GO annotation similarity ≥ {params['min_score']})"
        for g in thin
        if not rows.at[g, "enriched"]
    }
    return {
        "min_chars": params["min_chars"],
        "neighbours": params["neighbours"],
        "genes": len(table),
        "thin_genes": len(thin),
        "enriched": enriched,
        "still_thin": still_thin,
    }
