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

from ..data.shards import part_inputs
from ..facet_backends import backend_entry, guard
from ..facet_backends.base import FacetSet, read_gene_texts
from ..facet_backends.cached import (
    COMPUTED_IDS_LISTED,
    STORE,
    cache_context,
    generate_cached,
)
from ..facet_backends.coverage import coverage_report
from ..facet_backends.table import facet_sets_of, facet_table
from ..formats.facet_spec import FacetSpec, load_facet_specs
from ..io.artifacts import atomic_path, read_json, write_json_atomic
from ..io.keyed_store import KeyedStore

log = logging.getLogger(__name__)


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
    parts = part_inputs(inputs)
    if parts:  # the shards computed them (rule facets_shard)
        gathered = {s.entrez_id: s for path in parts for s in facet_sets_of(pd.read_parquet(path))}
        facet_sets, computed = [gathered[gene.entrez_id] for gene in genes], None
    else:
        entry = backend_entry(params["backend"])
        backend = entry.make(inputs, entry.settings(params))
        with KeyedStore(Path(params["cache_dir"]) / STORE) as store:
            cached = generate_cached(backend, genes, facets, store, cache_context(inputs, params))
        facet_sets, computed = cached.facet_sets, cached.computed
        log.info(
            "%d of %d genes computed now, %d from the cache in %s",
            len(computed),
            len(genes),
            len(genes) - len(computed),
            params["cache_dir"],
        )
    table = facet_table(genes, facet_sets, facets)
    with atomic_path(outputs["facets"]) as tmp:
        table.to_parquet(tmp, index=False)
    report = {
        "backend": params["backend"],
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
    summary = {
        key: report[key] for key in ("backend", "genes", "facets", "coverage", "share_all_none")
    }
    if computed is None:
        return {**summary, "shards": len(parts)}
    return {
        **summary,
        "genes_computed": len(computed),
        "genes_computed_ids": computed[:COMPUTED_IDS_LISTED],
    }
