"""What every facet backend takes and gives: gene texts in, one ``FacetSet`` per gene out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..formats.facet_spec import FacetSpec

NONE_MARKER = "NONE"


@dataclass(frozen=True)
class GeneText:
    entrez_id: str
    symbol: str
    name: str
    text: str
    sentences: tuple[dict, ...] = ()


@dataclass(frozen=True)
class FacetSet:
    """One gene's facets, in the order of the facet specs; ``None`` stands for the NONE marker."""

    entrez_id: str
    texts: tuple[str | None, ...]
    evidence: tuple[tuple[str, ...], ...] = field(default=())


class FacetBackend(Protocol):
    name: str

    def generate(
        self, genes: Sequence[GeneText], facets: Sequence[FacetSpec]
    ) -> list[FacetSet]: ...


def read_gene_texts(path: str | Path) -> list[GeneText]:
    """The enrich stage's gene text (``formats.gene_text``), one ``GeneText`` per gene."""
    import pandas as pd

    table = pd.read_parquet(path)
    return [
        GeneText(row.entrez_id, row.symbol, row.name, row.text, tuple(row.sentences))
        for row in table.itertuples(index=False)
    ]
