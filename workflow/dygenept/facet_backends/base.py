"""What every facet backend takes and gives: gene texts in, one ``FacetSet`` per gene out."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

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


S = TypeVar("S")


@dataclass(frozen=True)
class BackendEntry(Generic[S]):
    """A registered backend: its settings from the validated ``facets`` section, and its maker."""

    settings: Callable[[Mapping[str, Any]], S]  # a ``<Backend>Settings.from_params``
    make: Callable[[dict[str, Path], S], FacetBackend]


def read_gene_texts(path: str | Path) -> list[GeneText]:
    """The enrich stage's gene text (``formats.gene_text``), one ``GeneText`` per gene."""
    import pandas as pd

    table = pd.read_parquet(path)
    return [
        GeneText(row.entrez_id, row.symbol, row.name, row.text, tuple(row.sentences))
        for row in table.itertuples(index=False)
    ]
