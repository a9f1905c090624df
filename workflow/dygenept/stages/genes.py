"""The genes stage: the gene universe (perturbed genes + an optional extra list) mapped to Entrez ids.

Symbols are resolved in this order: config overrides, org.Hs.eg.db official symbols, its unambiguous
aliases, then the curated table of previous symbols that org.Hs.eg.db no longer lists
(``resources/previous_symbols.tsv``: KIAA1804 → MAP3K21). Names that map to nothing, or only
ambiguously, are reported by name.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import anndata as ad
import pandas as pd

from ..data.conditions import CONDITION_KEY, condition_genes
from ..data.symbols import SymbolIndex, UnmappedGenesError, describe_unmapped, map_symbol
from ..formats.gene_table import GENES_COLUMNS
from ..io.artifacts import atomic_path

log = logging.getLogger(__name__)


def perturbed_genes(conditions: Iterable[str]) -> list[str]:
    return sorted({gene for condition in conditions for gene in condition_genes(condition)})


def map_universe(
    queries: list[str], index: SymbolIndex, overrides: dict[str, str], on_unmapped: str, source: str
) -> pd.DataFrame:
    mappings = [map_symbol(query, index, overrides) for query in queries]
    unmapped = [m for m in mappings if m.entrez_id is None]
    if unmapped:
        message = (
            f"{len(unmapped)} gene(s) from {source} could not be mapped to an Entrez id:\n"
            f"{describe_unmapped(unmapped, index)}\n"
            "Fix: add them to config 'genes.symbol_overrides' as SYMBOL: ENTREZ_ID (or, for renamed genes, to "
            "resources/previous_symbols.tsv), or set "
            "'genes.on_unmapped: warn' to leave them (and their perturbations) out."
        )
        if on_unmapped == "error":
            raise UnmappedGenesError(message)
        log.warning(message)
    rows = []
    for mapping in mappings:
        if mapping.entrez_id is None:
            continue
        record = index.records.get(mapping.entrez_id)
        if record is None:
            raise UnmappedGenesError(
                f"genes.symbol_overrides maps {mapping.query} to Entrez {mapping.entrez_id}, which org.Hs.eg.db "
                "does not know. Fix: correct the id."
            )
        rows.append([mapping.query, record.symbol, record.entrez_id, record.name, mapping.match])
    table = pd.DataFrame(rows, columns=GENES_COLUMNS)
    collisions = table[table.duplicated("entrez_id", keep=False)]
    if not collisions.empty:
        shown = ", ".join(
            f"{q}→{s}" for q, s in collisions[["query", "symbol"]].head(10).itertuples(index=False)
        )
        log.warning(
            "%d names share a gene with another name (%s%s)",
            len(collisions),
            shown,
            ", ..." if len(collisions) > 10 else "",
        )
    return table


def check_screen_genes(genes: list[str], index: SymbolIndex, overrides: dict[str, str]) -> None:
    """Genes an in-silico screen asks for must map: an unknown one is refused by name, before any work."""
    unmapped = [
        m for m in (map_symbol(gene, index, overrides) for gene in genes) if m.entrez_id is None
    ]
    if unmapped:
        raise UnmappedGenesError(
            "config 'predict' asks for gene(s) that map to no Entrez id:\n"
            f"{describe_unmapped(unmapped, index)}\n"
            "Fix: correct the symbol in 'predict.perturbations' / 'predict.file', or map it in "
            "'genes.symbol_overrides' as SYMBOL: ENTREZ_ID."
        )


def run(inputs: dict[str, Path], outputs: dict[str, Path], params: dict) -> dict:
    """Map the perturbed genes, the ``extra`` ones and those an in-silico screen asks for to Entrez ids.

    Reads ``h5ad``, ``org_db`` and ``previous_symbols``. Writes ``genes`` (``formats.gene_table``). Params:
    the ``genes`` config section (``extra``, ``symbol_overrides``, ``on_unmapped``) and ``screen`` (the
    genes of ``predict``'s perturbations, which must all map).
    """
    conditions = ad.read_h5ad(inputs["h5ad"], backed="r").obs[CONDITION_KEY].astype(str).unique()
    queries = sorted(
        set(perturbed_genes(conditions)) | set(params["extra"]) | set(params["screen"])
    )
    index = SymbolIndex.from_db(inputs["org_db"], inputs.get("previous_symbols"))
    check_screen_genes(params["screen"], index, params["symbol_overrides"])
    table = map_universe(
        queries,
        index,
        params["symbol_overrides"],
        params["on_unmapped"],
        str(inputs["h5ad"]),
    )
    with atomic_path(outputs["genes"]) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    by_match = table["match"].value_counts().to_dict()
    log.info("%d genes mapped (%s) of %d names", len(table), by_match, len(queries))
    return {
        "queried": len(queries),
        "mapped": len(table),
        "by_match": by_match,
        "unmapped": sorted(set(queries) - set(table["query"])),
    }
