"""The gene table (``genes/genes.tsv``): each queried name with its symbol, Entrez id, full name and how it matched."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

GENES_COLUMNS = ["query", "symbol", "entrez_id", "name", "match"]


def read_genes(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
