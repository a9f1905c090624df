"""The knowledge stage: each gene's function text, one sentence at a time, with the sentence's source.

Every gene starts with its full name (org.Hs.eg.db). Sources, in config order, add sentences:
``go`` (embedded default): direct Gene Ontology annotations as sentences from GO.db term names;
``refseq_tsv``: NCBI Gene / RefSeq summaries from a local table, cleaned of citation and method noise.
Network sources (NCBI Gene, UniProt) slot in as further ``SentenceSource`` functions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from . import annotations
from .errors import InputError
from .artifacts import atomic_path
from .genes import read_genes
from .text_cleaning import clean_sentences

log = logging.getLogger(__name__)

_ONTOLOGY_PHRASE = {"BP": "is involved in", "MF": "has", "CC": "is located in"}
_ONTOLOGY_ORDER = {"BP": 0, "MF": 1, "CC": 2}
# The ``Sentence.source`` each config source writes.
SOURCE_LABELS = {"go": "GO", "refseq_tsv": "RefSeq"}


@dataclass(frozen=True)
class Sentence:
    text: str
    source: str
    ref: str

    def as_dict(self) -> dict[str, str]:
        return {"text": self.text, "source": self.source, "ref": self.ref}


def name_sentence(symbol: str, name: str) -> Sentence:
    return Sentence(f"{symbol} encodes {name}.", "org.Hs.eg.db", "gene_info")


def go_sentences(symbol: str, gene_annotations: set[tuple[str, str]], terms: dict[str, annotations.GoTerm]) -> list[Sentence]:
    """One sentence per annotated GO term, processes first, then functions, then locations."""
    known = [(go_id, ontology) for go_id, ontology in gene_annotations if go_id in terms]
    known.sort(key=lambda pair: (_ONTOLOGY_ORDER[pair[1]], terms[pair[0]].term))
    return [Sentence(f"{symbol} {_ONTOLOGY_PHRASE[ontology]} {terms[go_id].term}.", SOURCE_LABELS["go"], go_id) for go_id, ontology in known]


def gene_text_table(genes: pd.DataFrame, sentences_by_gene: dict[str, list[Sentence]]) -> pd.DataFrame:
    rows = []
    for gene in genes.itertuples(index=False):
        sentences = sentences_by_gene.get(gene.entrez_id, [])
        text = " ".join(sentence.text for sentence in sentences)
        rows.append({
            "entrez_id": gene.entrez_id,
            "symbol": gene.symbol,
            "query": gene.query,
            "name": gene.name,
            "text": text,
            "sentences": [sentence.as_dict() for sentence in sentences],
            "sources": sorted({sentence.source for sentence in sentences}),
            "n_chars": len(text),
        })
    return pd.DataFrame(rows)


SentenceSource = Callable[[pd.DataFrame, dict[str, Path], dict], dict[str, list[Sentence]]]


def go_source(genes: pd.DataFrame, inputs: dict[str, Path], params: dict) -> dict[str, list[Sentence]]:
    gene_annotations = annotations.gene_go_annotations(
        inputs["org_db"], genes["entrez_id"], excluded_evidence=params["excluded_evidence"]
    )
    terms = annotations.go_terms(inputs["go_db"])
    return {
        gene.entrez_id: go_sentences(gene.symbol, gene_annotations.get(gene.entrez_id, set()), terms)
        for gene in genes.itertuples(index=False)
    }


REFSEQ_COLUMNS = ("entrez_id", "summary")


def read_refseq_table(path: str | Path, entrez_ids: set[str]) -> dict[str, str]:
    """Entrez id → summary from a RefSeq summary table (TSV, optionally gzipped) with the REFSEQ_COLUMNS."""
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = [column for column in REFSEQ_COLUMNS if column not in table.columns]
    if missing:
        raise InputError(
            f"{path}: no column(s) {missing} (columns present: {', '.join(table.columns)}). "
            "Fix: give config 'knowledge.refseq_tsv.path' a table with entrez_id and summary columns."
        )
    table = table[table["entrez_id"].isin(entrez_ids) & (table["summary"] != "")]
    return dict(zip(table["entrez_id"], table["summary"]))


def refseq_tsv_source(genes: pd.DataFrame, inputs: dict[str, Path], params: dict) -> dict[str, list[Sentence]]:
    summaries = read_refseq_table(inputs["refseq_tsv"], set(genes["entrez_id"]))
    return {
        entrez_id: [Sentence(text, SOURCE_LABELS["refseq_tsv"], f"GeneID:{entrez_id}") for text in clean_sentences(summary)]
        for entrez_id, summary in summaries.items()
    }


SOURCES: dict[str, SentenceSource] = {"go": go_source, "refseq_tsv": refseq_tsv_source}


def merge_sentences(per_source: list[dict[str, list[Sentence]]]) -> dict[str, list[Sentence]]:
    """Concatenate sources in config order, dropping sentences already given by an earlier source."""
    merged: dict[str, list[Sentence]] = {}
    for source in per_source:
        for entrez_id, sentences in source.items():
            seen = {s.text.casefold() for s in merged.get(entrez_id, [])}
            bucket = merged.setdefault(entrez_id, [])
            for sentence in sentences:
                if sentence.text.casefold() not in seen:
                    seen.add(sentence.text.casefold())
                    bucket.append(sentence)
    return merged


def run(inputs: dict[str, Path], outputs: dict[str, Path], params: dict) -> dict:
    genes = read_genes(inputs["genes"])
    unknown = [name for name in params["sources"] if name not in SOURCES]
    if unknown:
        raise InputError(f"config 'knowledge.sources' names unknown source(s) {unknown}; known: {sorted(SOURCES)}")
    names = {gene.entrez_id: [name_sentence(gene.symbol, gene.name)] for gene in genes.itertuples(index=False)}
    merged = merge_sentences([names] + [SOURCES[name](genes, inputs, params) for name in params["sources"]])
    table = gene_text_table(genes, merged)
    with atomic_path(outputs["gene_text"]) as tmp:
        table.to_parquet(tmp, index=False)
    without_text = table.loc[table["sources"].map(lambda found: set(found) <= {"org.Hs.eg.db"}), "symbol"].tolist()
    coverage = {name: int(table["sources"].map(lambda found: SOURCE_LABELS[name] in found).sum()) for name in params["sources"]}
    log.info("gene text for %d genes; median %d chars; genes with text per source: %s", len(table), int(table["n_chars"].median()), coverage)
    return {"genes": len(table), "median_chars": float(table["n_chars"].median()), "coverage": coverage,
            "genes_without_text": without_text}

