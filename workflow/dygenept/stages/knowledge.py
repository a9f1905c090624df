"""The knowledge stage: each gene's function text, one sentence at a time, with the sentence's source.

Every gene starts with its full name (org.Hs.eg.db). Sources, in config order, add sentences:
``go`` (embedded default): direct Gene Ontology annotations as sentences from GO.db term names;
``refseq_tsv``: NCBI Gene / RefSeq summaries from a local table;
``mygene``: NCBI Gene summaries from MyGene.info; ``entrez``: the same from NCBI E-utilities;
``uniprot``: UniProtKB/Swiss-Prot function comments.
Network sources go through one HTTP layer (``http.HttpClient``: retries, rate limit per host, a bounded
thread pool) and a per-gene disk cache (``gene_cache.GeneCache``), so a rerun fetches only missing genes.
All text is cleaned of citation and method noise (``text_cleaning``). Outputs: ``gene_text`` (parquet,
one row per gene), ``failures`` (TSV: source, entrez_id, symbol, reason) and ``report`` (JSON: coverage
per source, text length quantiles, genes without source text, failures). The stage fails when a source
fails for more than ``max_failure_fraction`` of the genes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from ..data import annotation_db
from ..errors import InputError
from ..formats.gene_table import read_genes
from ..formats.gene_text import Sentence, read_refseq_table
from ..io.artifacts import atomic_path, write_json_atomic
from ..io.http import FetchError, HttpClient
from ..registry import SOURCE_LABELS
from ..text.cleaning import clean_sentences
from ..text.sources import Failure, HttpSettings, RawText, SourceResult, TextSource, fetch_texts
from ..text.sources.entrez import EntrezSource
from ..text.sources.gene_cache import GeneCache
from ..text.sources.mygene import MyGeneSource
from ..text.sources.uniprot import UniProtSource

log = logging.getLogger(__name__)

_ONTOLOGY_PHRASE = {"BP": "is involved in", "MF": "has", "CC": "is located in"}
_ONTOLOGY_ORDER = {"BP": 0, "MF": 1, "CC": 2}
# Keyed by each client's config name: the network sources of registry.KNOWLEDGE_SOURCES.
NETWORK_SOURCES: dict[str, Callable[[Mapping[str, Any]], TextSource]] = {
    source.name: source.from_params for source in (MyGeneSource, EntrezSource, UniProtSource)
}
FAILURE_COLUMNS = ("source", "entrez_id", "symbol", "reason")
_QUANTILES = {
    "min": 0.0,
    "q10": 0.1,
    "q25": 0.25,
    "median": 0.5,
    "q75": 0.75,
    "q90": 0.9,
    "max": 1.0,
}
_LISTED_FAILURES = 25


def name_sentence(symbol: str, name: str) -> Sentence:
    return Sentence(f"{symbol} encodes {name}.", "org.Hs.eg.db", "gene_info")


def go_sentences(
    symbol: str, gene_annotations: set[tuple[str, str]], terms: dict[str, annotation_db.GoTerm]
) -> list[Sentence]:
    """One sentence per annotated GO term, processes first, then functions, then locations."""
    known = [(go_id, ontology) for go_id, ontology in gene_annotations if go_id in terms]
    known.sort(key=lambda pair: (_ONTOLOGY_ORDER[pair[1]], terms[pair[0]].term))
    return [
        Sentence(
            f"{symbol} {_ONTOLOGY_PHRASE[ontology]} {terms[go_id].term}.",
            SOURCE_LABELS["go"],
            go_id,
        )
        for go_id, ontology in known
    ]


def gene_text_table(
    genes: pd.DataFrame, sentences_by_gene: dict[str, list[Sentence]]
) -> pd.DataFrame:
    rows = []
    for gene in genes.itertuples(index=False):
        sentences = sentences_by_gene.get(gene.entrez_id, [])
        text = " ".join(sentence.text for sentence in sentences)
        rows.append(
            {
                "entrez_id": gene.entrez_id,
                "symbol": gene.symbol,
                "query": gene.query,
                "name": gene.name,
                "text": text,
                "sentences": [sentence.as_dict() for sentence in sentences],
                "sources": sorted({sentence.source for sentence in sentences}),
                "n_chars": len(text),
            }
        )
    return pd.DataFrame(rows)


SentenceSource = Callable[[pd.DataFrame, dict[str, Path], dict], dict[str, list[Sentence]]]


def go_source(
    genes: pd.DataFrame, inputs: dict[str, Path], params: dict
) -> dict[str, list[Sentence]]:
    gene_annotations = annotation_db.gene_go_annotations(
        inputs["org_db"], genes["entrez_id"], excluded_evidence=params["excluded_evidence"]
    )
    terms = annotation_db.go_terms(inputs["go_db"])
    return {
        gene.entrez_id: go_sentences(
            gene.symbol, gene_annotations.get(gene.entrez_id, set()), terms
        )
        for gene in genes.itertuples(index=False)
    }


def refseq_tsv_source(
    genes: pd.DataFrame, inputs: dict[str, Path], params: dict
) -> dict[str, list[Sentence]]:
    summaries = read_refseq_table(inputs["refseq_tsv"], set(genes["entrez_id"]))
    return {
        entrez_id: [
            Sentence(text, SOURCE_LABELS["refseq_tsv"], f"GeneID:{entrez_id}")
            for text in clean_sentences(summary)
        ]
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


def network_sentences(label: str, answers: dict[str, list[RawText]]) -> dict[str, list[Sentence]]:
    """Cleaned sentences of a network source's raw texts, each keeping the record it came from."""
    return {
        entrez_id: [
            Sentence(sentence, label, raw.ref)
            for raw in texts
            for sentence in clean_sentences(raw.text)
        ]
        for entrez_id, texts in answers.items()
    }


def fetch_network_sources(
    names: list[str], genes: pd.DataFrame, params: dict
) -> dict[str, SourceResult]:
    """Each named network source's answers for every gene, from the cache or the network."""
    http = HttpSettings.from_params(params)
    client = HttpClient(http.retry_policy(), pool_size=http.max_workers)
    sources = [NETWORK_SOURCES[name](params) for name in names]
    for source in sources:
        client.set_rate(source.url, source.requests_per_second)
    symbols = dict(zip(genes["entrez_id"], genes["symbol"]))
    results = {}
    with GeneCache(params["cache_dir"]) as cache:
        for source in sources:
            result = fetch_texts(source, symbols, cache, client, http.max_workers)
            log.info(
                "%s: %d genes from the cache, %d fetched, %d failed in %.1f s",
                source.name,
                result.from_cache,
                result.fetched,
                len(result.failures),
                result.seconds,
            )
            results[source.name] = result
    return results


def failure_table(failures: list[Failure]) -> pd.DataFrame:
    return pd.DataFrame([asdict(failure) for failure in failures], columns=list(FAILURE_COLUMNS))


def check_failures(
    results: dict[str, SourceResult], n_genes: int, max_fraction: float, failures_path: Path | None
) -> None:
    """Raise ``FetchError`` listing the failed genes and reasons when a source failed for too many genes."""
    too_many = {
        name: result.failures
        for name, result in results.items()
        if len(result.failures) > max_fraction * n_genes
    }
    if not too_many:
        return
    lines = []
    for name, failures in too_many.items():
        lines.append(
            f"{name}: {len(failures)} of {n_genes} genes failed ({len(failures) / n_genes:.1%}), "
            f"more than knowledge.max_failure_fraction = {max_fraction:g}:"
        )
        lines += [
            f"  {f.symbol} (Entrez {f.entrez_id}): {f.reason}" for f in failures[:_LISTED_FAILURES]
        ]
        if len(failures) > _LISTED_FAILURES:
            lines.append(
                f"  ... and {len(failures) - _LISTED_FAILURES} more"
                + (f" (all in {failures_path})" if failures_path else "")
            )
    raise FetchError(
        "\n".join(lines)
        + "\nFix: run again (answers already fetched are cached; only the failed genes are asked "
        "again), check the source's 'knowledge.<source>.url' and the network, or raise 'knowledge.max_failure_fraction'."
    )


def knowledge_report(
    table: pd.DataFrame,
    per_source: dict[str, dict[str, list[Sentence]]],
    results: dict[str, SourceResult],
    failures: list[Failure],
) -> dict[str, Any]:
    n_genes = len(table)
    sources = {}
    for name, sentences in per_source.items():
        with_text = sum(1 for gene in table["entrez_id"] if sentences.get(gene))
        entry: dict[str, Any] = {
            "label": SOURCE_LABELS[name],
            "genes_with_text": with_text,
            "coverage": round(with_text / n_genes, 4) if n_genes else 0.0,
        }
        if name in results:
            result = results[name]
            entry.update(
                from_cache=result.from_cache,
                fetched=result.fetched,
                failed=len(result.failures),
                seconds=round(result.seconds, 2),
            )
        sources[name] = entry
    without = table["sources"].map(lambda found: set(found) <= {"org.Hs.eg.db"})
    return {
        "genes": n_genes,
        "sources": sources,
        "n_chars": {
            name: float(table["n_chars"].quantile(q)) if n_genes else 0.0
            for name, q in _QUANTILES.items()
        },
        "genes_without_source_text": table.loc[without, "symbol"].tolist(),
        "failures": [asdict(failure) for failure in failures],
    }


def run(inputs: dict[str, Path], outputs: dict[str, Path], params: dict) -> dict:
    """Gather each gene's function text from the selected sources.

    Reads ``genes``, ``org_db``, ``go_db`` and, with ``refseq_tsv``, that table. Writes ``gene_text``,
    ``failures`` and ``report``. Params: the ``knowledge`` config section (``sources`` and the settings of
    the selected ones, ``cache_dir``, ``http``, ``max_failure_fraction``) and ``excluded_evidence``.
    """
    genes = read_genes(inputs["genes"])
    known = {**SOURCES, **NETWORK_SOURCES}
    unknown = [name for name in params["sources"] if name not in known]
    if unknown:
        raise InputError(
            f"config 'knowledge.sources' names unknown source(s) {unknown}; known: {sorted(known)}"
        )
    network = [name for name in params["sources"] if name in NETWORK_SOURCES]
    results = fetch_network_sources(network, genes, params) if network else {}
    per_source = {
        name: network_sentences(SOURCE_LABELS[name], results[name].answers)
        if name in results
        else SOURCES[name](genes, inputs, params)
        for name in params["sources"]
    }
    names = {
        gene.entrez_id: [name_sentence(gene.symbol, gene.name)]
        for gene in genes.itertuples(index=False)
    }
    table = gene_text_table(
        genes, merge_sentences([names] + [per_source[name] for name in params["sources"]])
    )
    failures = [failure for result in results.values() for failure in result.failures]
    report = knowledge_report(table, per_source, results, failures)
    if "failures" in outputs:
        with atomic_path(outputs["failures"]) as tmp:
            failure_table(failures).to_csv(tmp, sep="\t", index=False)
    if "report" in outputs:
        write_json_atomic(outputs["report"], report)
    check_failures(
        results,
        len(genes),
        params["max_failure_fraction"],
        outputs.get("failures"),
    )
    with atomic_path(outputs["gene_text"]) as tmp:
        table.to_parquet(tmp, index=False)
    coverage = {name: entry["genes_with_text"] for name, entry in report["sources"].items()}
    if failures:
        log.warning(
            "%d gene fetches failed (listed in %s); they are not cached, so a rerun asks again",
            len(failures),
            outputs.get("failures", "the report"),
        )
    log.info(
        "gene text for %d genes; median %d chars; genes with text per source: %s",
        len(table),
        int(table["n_chars"].median()),
        coverage,
    )
    return {
        "genes": len(table),
        "median_chars": float(table["n_chars"].median()),
        "coverage": coverage,
        "genes_without_text": report["genes_without_source_text"],
        "failures": len(failures),
    }
