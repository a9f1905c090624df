"""The facets stage: each gene's text → K facet paragraphs, or the NONE marker where it has no role.

A backend (``facet_backends``) turns ``GeneText`` records into ``FacetSet``s: ``go-rules`` (GO annotations
through the GO DAG) or ``extractive`` (the gene's own sentences that speak of each facet); further backends
implement the same ``FacetBackend`` protocol and register in ``facet_backends.BACKENDS``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..facet_backends import backend_entry, guard
from ..facet_backends.base import NONE_MARKER, FacetSet, GeneText, read_gene_texts
from ..facet_backends.cached import generate_cached
from ..facet_backends.coverage import coverage_report
from ..formats.facet_spec import FacetSpec, load_facet_specs
from ..io.artifacts import atomic_path, read_json, sha256_file, write_json_atomic
from ..io.keyed_store import KeyedStore, context_digest, without_locations

log = logging.getLogger(__name__)

COMPUTED_IDS_LISTED = 100  # the provenance names the genes computed anew, up to this many


def facet_table(
    genes: Sequence[GeneText], facet_sets: Sequence[FacetSet], facets: Sequence[FacetSpec]
) -> pd.DataFrame:
    by_gene = {facet_set.entrez_id: facet_set for facet_set in facet_sets}
    rows = []
    for gene in genes:
        facet_set = by_gene[gene.entrez_id]
        if len(facet_set.texts) != len(facets):
            raise ValueError(
                f"backend gave {len(facet_set.texts)} facets for {gene.symbol}; expected {len(facets)}"
            )
        for position, (spec, text) in enumerate(zip(facets, facet_set.texts)):
            evidence = facet_set.evidence[position] if facet_set.evidence else ()
            rows.append(
                {
                    "entrez_id": gene.entrez_id,
                    "symbol": gene.symbol,
                    "facet": spec.id,
                    "facet_index": position,
                    "is_none": text is None,
                    "text": NONE_MARKER if text is None else text,
                    "evidence": list(evidence),
                }
            )
    return pd.DataFrame(rows)


def go_agreement_of(
    facet_sets: Sequence[FacetSet],
    facets: Sequence[FacetSpec],
    inputs: dict[str, Path],
    params: dict,
) -> dict:
    """Precision / recall of the backend's non-NONE facets against the genes' GO annotations."""
    gene_terms, facet_descendants = guard.go_sets(
        inputs["org_db"], inputs["go_db"], facets, [s.entrez_id for s in facet_sets],
        params["excluded_evidence"],
    )  # fmt: skip
    answers = guard.answers_from_facet_sets(facet_sets, facets)
    return guard.go_agreement(answers, gene_terms, facet_descendants)


def grounding_summary(llm_guard: dict) -> dict:
    """The LLM stage's grounding figures (the flagged facets themselves stay in llm_guard.json)."""
    grounding = llm_guard["grounding"]
    return {key: value for key, value in grounding.items() if key != "flagged_facets"}


def cache_context(inputs: dict[str, Path], params: dict) -> str:
    """What every gene's facets depend on besides its own text: settings, code, the other inputs."""
    return context_digest(
        {
            "params": without_locations(params),
            "inputs": {
                name: sha256_file(path)
                for name, path in sorted(inputs.items())
                if name != "gene_text"
            },
        }
    )


def run(inputs: dict[str, Path], outputs: dict[str, Path], params: dict) -> dict:
    """Write each gene's K facet paragraphs, or NONE, with the configured backend, and its coverage.

    Reads ``gene_text``, ``facets_yaml`` and what the backend needs (``org_db``, ``go_db``). Writes
    ``facets`` (parquet, one row per gene and facet) and ``report`` (JSON: the backend, the share of genes
    whose facets are all NONE and which, per-facet coverage, GO agreement of the facets; with an LLM
    backend, the grounding figures of its ``llm_guard``). Params: the ``facets`` config section
    (``backend``, ``max_sentences``, the selected backend's own settings; ``encoder`` for extractive;
    ``cache_dir``, the per-gene cache: a rerun computes only the genes it has not seen under the same
    settings, inputs and code), ``excluded_evidence`` and ``code_sha256`` (set by the CLI).
    """
    facets = load_facet_specs(inputs["facets_yaml"])
    genes = read_gene_texts(inputs["gene_text"])
    entry = backend_entry(params["backend"])
    backend = entry.make(inputs, entry.settings(params))
    with KeyedStore(Path(params["cache_dir"]) / "facets.sqlite") as store:
        cached = generate_cached(backend, genes, facets, store, cache_context(inputs, params))
    facet_sets = cached.facet_sets
    log.info(
        "%d of %d genes computed now, %d from the cache in %s",
        len(cached.computed),
        len(genes),
        len(genes) - len(cached.computed),
        params["cache_dir"],
    )
    table = facet_table(genes, facet_sets, facets)
    with atomic_path(outputs["facets"]) as tmp:
        table.to_parquet(tmp, index=False)
    report = {
        "backend": backend.name,
        **coverage_report(
            facet_sets, [f.id for f in facets], {g.entrez_id: g.symbol for g in genes}
        ),
        "go_agreement": go_agreement_of(facet_sets, facets, inputs, params),
    }
    if "llm_guard" in inputs:
        report["grounding"] = grounding_summary(read_json(inputs["llm_guard"]))
    write_json_atomic(outputs["report"], report)
    log.info(
        "facet coverage (share of genes with a role): %s; all NONE: %d of %d genes %s",
        report["coverage"],
        report["genes_all_none"],
        report["genes"],
        report["all_none"],
    )
    return {
        **{
            key: report[key] for key in ("backend", "genes", "facets", "coverage", "share_all_none")
        },
        "genes_computed": len(cached.computed),
        "genes_computed_ids": cached.computed[:COMPUTED_IDS_LISTED],
    }
