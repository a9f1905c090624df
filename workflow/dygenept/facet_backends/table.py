"""The facet table (``facets/facets.parquet``): one row per gene and facet, NONE where it has no role;
and the facet sets read back from it (a shard's table, for the stage that gathers the shards)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..formats.facet_spec import FacetSpec
from .base import NONE_MARKER, FacetSet, GeneText

# Named, so that an empty gene set (a screen of the model's genes alone) still writes them.
FACET_TABLE_COLUMNS = [
    "entrez_id", "symbol", "facet", "facet_index", "is_none", "text", "evidence",
]  # fmt: skip


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
    return pd.DataFrame(rows, columns=FACET_TABLE_COLUMNS)


def facet_sets_of(table: pd.DataFrame) -> list[FacetSet]:
    """The facet sets a facet table holds, in its gene order (``facet_table``'s inverse)."""
    sets = []
    for entrez, rows in table.groupby("entrez_id", sort=False):
        rows = rows.sort_values("facet_index")
        texts = tuple(None if none else text for none, text in zip(rows["is_none"], rows["text"]))
        evidence = tuple(tuple(found) for found in rows["evidence"])
        sets.append(FacetSet(str(entrez), texts, evidence))
    return sets
