"""The facets stage: each gene's text → K facet paragraphs, or the NONE marker where it has no role.

A backend (``facet_backends``) turns ``GeneText`` records into ``FacetSet``s. The embedded default
backend is ``go-rules``; further backends implement the same ``FacetBackend`` protocol and register in
``facet_backends.BACKENDS``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from ..artifacts import atomic_path
from ..facet_backends import make_backend
from ..facet_backends.base import NONE_MARKER, FacetSet, GeneText
from ..formats.facet_spec import FacetSpec, load_facet_specs

log = logging.getLogger(__name__)


def read_gene_texts(path: str | Path) -> list[GeneText]:
    table = pd.read_parquet(path)
    return [
        GeneText(row.entrez_id, row.symbol, row.name, row.text, tuple(row.sentences))
        for row in table.itertuples(index=False)
    ]


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


def run(inputs: dict[str, Path], outputs: dict[str, Path], params: dict) -> dict:
    """Write each gene's K facet paragraphs, or NONE, with the configured backend.

    Reads ``gene_text``, ``facets_yaml`` and what the backend needs (``org_db``, ``go_db`` for go-rules).
    Writes ``facets`` (parquet, one row per gene and facet). Params: the ``facets`` config section
    (``backend`` and its settings) and ``excluded_evidence``.
    """
    facets = load_facet_specs(inputs["facets_yaml"])
    genes = read_gene_texts(inputs["gene_text"])
    backend = make_backend(params["backend"], inputs, params)
    facet_sets = backend.generate(genes, facets)
    table = facet_table(genes, facet_sets, facets)
    with atomic_path(outputs["facets"]) as tmp:
        table.to_parquet(tmp, index=False)
    coverage = (1 - table.groupby("facet", sort=False)["is_none"].mean()).round(3)
    log.info("facet coverage (share of genes with a role): %s", coverage.to_dict())
    return {
        "backend": backend.name,
        "genes": len(genes),
        "facets": [f.id for f in facets],
        "coverage": coverage.to_dict(),
    }
