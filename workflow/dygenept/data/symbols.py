"""Gene names → Entrez ids: org.Hs.eg.db symbols, its unambiguous aliases, curated previous symbols, overrides.

The ``genes`` and ``dataset`` stages and the STRING conversion resolve names through this one index, so a
gene is the same gene everywhere.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd

from ..errors import InputError
from . import annotation_db

MatchKind = Literal["symbol", "alias", "previous", "override"]


class UnmappedGenesError(InputError):
    pass


@dataclass(frozen=True)
class SymbolIndex:
    """Lookup tables built once from org.Hs.eg.db."""

    records: dict[str, annotation_db.GeneRecord]
    by_symbol: dict[str, str]
    by_alias: dict[str, set[str]]
    by_previous: dict[str, str]

    @classmethod
    def from_db(cls, org_db: str | Path, previous_symbols: str | Path | None = None) -> SymbolIndex:
        records = annotation_db.gene_records(org_db)
        by_symbol = {record.symbol.upper(): entrez for entrez, record in records.items()}
        by_alias: dict[str, set[str]] = defaultdict(set)
        for alias, entrez in annotation_db.alias_table(org_db):
            by_alias[alias.upper()].add(entrez)
        by_previous = {}
        if previous_symbols is not None:
            table = pd.read_csv(previous_symbols, sep="\t", dtype=str)
            by_previous = dict(zip(table["previous_symbol"].str.upper(), table["entrez_id"]))
        return cls(records, by_symbol, dict(by_alias), by_previous)


@dataclass(frozen=True)
class Mapping:
    query: str
    entrez_id: str | None
    match: MatchKind | None
    candidates: tuple[str, ...] = ()


def map_symbol(query: str, index: SymbolIndex, overrides: dict[str, str]) -> Mapping:
    if query in overrides:
        return Mapping(query, str(overrides[query]), "override")
    key = query.upper()
    if key in index.by_symbol:
        return Mapping(query, index.by_symbol[key], "symbol")
    candidates = tuple(sorted(index.by_alias.get(key, ())))
    if len(candidates) == 1:
        return Mapping(query, candidates[0], "alias")
    if not candidates and key in index.by_previous:
        return Mapping(query, index.by_previous[key], "previous")
    return Mapping(query, None, None, candidates)


def describe_unmapped(unmapped: list[Mapping], index: SymbolIndex) -> str:
    lines = []
    for mapping in unmapped:
        if mapping.candidates:
            options = ", ".join(
                f"{index.records[c].symbol} (Entrez {c})" for c in mapping.candidates
            )
            lines.append(f"  {mapping.query}: ambiguous alias of {options}")
        else:
            lines.append(f"  {mapping.query}: not a symbol or alias in org.Hs.eg.db")
    return "\n".join(lines)
