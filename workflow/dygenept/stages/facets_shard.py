"""The facets_shard stage: one shard of the genes → their rows of the facet table.

With config ``shards`` > 1 and a facet backend that embeds sentences (``extractive``, with the facet_embed
encoder: one GPU each on a cluster), the facets stage's work runs as this stage once per shard of genes
(``data.shards``), and rule facets gathers the shards' tables into the table an unsharded run writes.
A gene's facets depend on its own text alone (each sentence's vector and similarity are the same whatever
it is computed with), and the per-gene cache is shared by the shards and by later runs.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..data.shards import in_shard
from ..facet_backends import backend_entry
from ..facet_backends.base import read_gene_texts
from ..facet_backends.cached import (
    COMPUTED_IDS_LISTED,
    STORE,
    cache_context,
    generate_cached,
)
from ..facet_backends.table import facet_table
from ..formats.facet_spec import load_facet_specs
from ..io.artifacts import atomic_path
from ..io.keyed_store import KeyedStore

log = logging.getLogger(__name__)


def run(inputs: dict[str, Path], outputs: dict[str, Path], params: dict) -> dict:
    """Write the facets of one shard of the genes.

    Reads ``gene_text``, ``facets_yaml`` and what the backend needs (``org_db``, ``go_db``,
    ``encoder_model`` for a Hub encoder). Writes ``part`` (the shard's rows of the facet table, in the
    gene text's order). Params: the facets stage's (the ``facets`` config section, ``excluded_evidence``,
    ``code_sha256``), ``shard`` and ``shards``.
    """
    facets = load_facet_specs(inputs["facets_yaml"])
    genes = in_shard(
        read_gene_texts(inputs["gene_text"]),
        lambda gene: gene.entrez_id,
        params["shard"],
        params["shards"],
    )
    entry = backend_entry(params["backend"])
    backend = entry.make(inputs, entry.settings(params))
    with KeyedStore(Path(params["cache_dir"]) / STORE) as store:
        cached = generate_cached(backend, genes, facets, store, cache_context(inputs, params))
    log.info(
        "shard %d of %d: %d genes, %d computed now",
        params["shard"],
        params["shards"],
        len(genes),
        len(cached.computed),
    )
    with atomic_path(outputs["part"]) as tmp:
        facet_table(genes, cached.facet_sets, facets).to_parquet(tmp, index=False)
    return {
        "shard": params["shard"],
        "genes": len(genes),
        "genes_computed": len(cached.computed),
        "genes_computed_ids": cached.computed[:COMPUTED_IDS_LISTED],
    }
