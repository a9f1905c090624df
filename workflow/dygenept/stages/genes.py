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


def model_entrez_ids(queries: list[str], index: SymbolIndex, overrides: dict[str, str]) -> set[str]:
    """The Entrez ids the model's gene set maps ``queries`` to (names that map to nothing are the model
    set's genes job's to report)."""
    mapped = (map_symbol(query, index, overrides) for query in queries)
    return {mapping.entrez_id for mapping in mapped if mapping.entrez_id is not None}


def run(inputs: dict[str, Path], outputs: dict[str, Path], params: dict) -> dict:
    """Map a gene set to Entrez ids: the model's (the perturbed genes and the ``extra`` ones), or the
    screen's (the genes of ``predict``'s perturbations that the model's set lacks).

    Reads ``h5ad``, ``org_db`` and ``previous_symbols``. Writes ``genes`` (``formats.gene_table``). Params:
    the ``genes`` config section (``extra``, ``symbol_overrides``, ``on_unmapped``), ``gene_set``
    (``model`` or ``screen``) and ``screen`` (the genes of ``predict``'s perturbations, which must all
    map). The screen's set holds only genes the model's set does not: those get text, facets and an
    embedding in the screen's chain, and the model's genes keep theirs, so the two chains never do the
    same work and never wait on each other.
    """
    conditions = ad.read_h5ad(inputs["h5ad"], backed="r").obs[CONDITION_KEY].astype(str).unique()
    model_queries = sorted(set(perturbed_genes(conditions)) | set(params["extra"]))
    index = SymbolIndex.from_db(inputs["org_db"], inputs.get("previous_symbols"))
    check_screen_genes(params["screen"], index, params["symbol_overrides"])
    overrides = params["symbol_overrides"]
    if params["gene_set"] == "screen":
        queries = sorted(set(params["screen"]))
        mapped = map_universe(queries, index, overrides, "error", "config 'predict'")
        in_model = model_entrez_ids(model_queries, index, overrides)
        table = mapped[~mapped["entrez_id"].isin(in_model)].reset_index(drop=True)
    else:
        queries = model_queries
        mapped = table = map_universe(
            queries, index, overrides, params["on_unmapped"], str(inputs["h5ad"])
        )
    with atomic_path(outputs["genes"]) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    by_match = table["match"].value_counts().to_dict()
    log.info("%d genes mapped (%s) of %d names", len(table), by_match, len(queries))
    return {
        "queried": len(queries),
        "mapped": len(table),
        "by_match": by_match,
        "unmapped": sorted(set(queries) - set(mapped["query"])),
        "in_the_model_set": sorted(set(mapped["query"]) - set(table["query"])),
    }
