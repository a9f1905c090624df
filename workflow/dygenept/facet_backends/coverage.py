"""Facet coverage: how many genes a facet backend gives a role, per facet and overall.

``facets_report.json`` of the facets stage and ``benchmarks/bench_facets.py`` both report it, so that the
share of genes whose facets are all NONE is measured the same way on the demo and on the whole genome.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .base import FacetSet


def coverage_report(
    facet_sets: Sequence[FacetSet], facet_ids: Sequence[str], symbols: dict[str, str]
) -> dict:
    """Per facet, the share of genes with a role (non-NONE); overall, the share and the genes whose
    facets are all NONE, and how many facets a gene has. ``symbols``: Entrez id → symbol."""
    present = np.array(
        [[text is not None for text in facet_set.texts] for facet_set in facet_sets], dtype=bool
    ).reshape(len(facet_sets), len(facet_ids))
    per_gene = present.sum(axis=1)
    empty = [symbols.get(s.entrez_id, s.entrez_id) for s, n in zip(facet_sets, per_gene) if not n]
    genes = len(facet_sets)
    return {
        "genes": genes,
        "k": len(facet_ids),
        "facets": list(facet_ids),
        "share_all_none": round(len(empty) / genes, 4) if genes else None,
        "genes_all_none": len(empty),
        "all_none": sorted(empty),
        "coverage": {
            facet: round(float(share), 4)
            for facet, share in zip(facet_ids, present.mean(axis=0) if genes else [])
        },
        "facets_per_gene": {
            "mean": round(float(per_gene.mean()), 3) if genes else None,
            "median": float(np.median(per_gene)) if genes else None,
        },
    }
