"""A backend's facets through a per-gene cache: only genes the cache has not seen go to the backend.

A gene's facets depend on its own text record and on what is the same for every gene (the backend's
settings, the facet specs, the annotation databases, the stage's code): the caller folds the latter
into ``context``. So growing a gene list by one gene computes that gene alone.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from ..formats.facet_spec import FacetSpec
from ..io.keyed_store import KeyedStore, item_key
from .base import FacetBackend, FacetSet, GeneText

GENES_PER_BATCH = 2000  # each batch is committed to the cache as it finishes


@dataclass(frozen=True)
class CachedFacets:
    facet_sets: list[FacetSet]  # in the order of the genes asked for
    computed: list[str]  # Entrez ids the backend computed now; the rest came from the cache


def gene_record(gene: GeneText) -> list:
    return [gene.entrez_id, gene.symbol, gene.name, gene.text, [dict(s) for s in gene.sentences]]


def encode_facet_set(facet_set: FacetSet) -> bytes:
    value = {"texts": list(facet_set.texts), "evidence": [list(e) for e in facet_set.evidence]}
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def decode_facet_set(value: bytes) -> tuple[tuple[str | None, ...], tuple[tuple[str, ...], ...]]:
    """A stored facet set's texts and evidence (its gene is the key's)."""
    stored = json.loads(value)
    if not isinstance(stored, dict) or set(stored) != {"texts", "evidence"}:
        raise ValueError("not a facet set")
    return tuple(stored["texts"]), tuple(tuple(e) for e in stored["evidence"])


def generate_cached(
    backend: FacetBackend,
    genes: Sequence[GeneText],
    facets: Sequence[FacetSpec],
    store: KeyedStore,
    context: str,
    genes_per_batch: int = GENES_PER_BATCH,
) -> CachedFacets:
    keys = {gene.entrez_id: item_key(context, gene_record(gene)) for gene in genes}
    stored = store.get_many(keys.values(), decode_facet_set)
    by_gene = {
        entrez: FacetSet(entrez, *stored[key]) for entrez, key in keys.items() if key in stored
    }
    missing = [gene for gene in genes if gene.entrez_id not in by_gene]
    for start in range(0, len(missing), genes_per_batch):
        computed = backend.generate(missing[start : start + genes_per_batch], facets)
        store.put_many({keys[s.entrez_id]: encode_facet_set(s) for s in computed})
        by_gene.update((s.entrez_id, s) for s in computed)
    return CachedFacets(
        [by_gene[gene.entrez_id] for gene in genes], [gene.entrez_id for gene in missing]
    )
