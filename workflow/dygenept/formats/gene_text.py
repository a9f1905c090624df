"""Gene text (``knowledge/`` and ``enrich/gene_text.parquet``): each gene's sentences, each with its source.

Columns: ``entrez_id``, ``symbol``, ``query``, ``name``, ``text``, ``sentences`` (list of ``{text, source,
ref}``), ``sources``, ``n_chars`` (and, after enrich, ``enriched`` and ``neighbours``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import InputError


@dataclass(frozen=True)
class Sentence:
    text: str
    source: str
    ref: str

    def as_dict(self) -> dict[str, str]:
        return {"text": self.text, "source": self.source, "ref": self.ref}


REFSEQ_COLUMNS = ("entrez_id", "summary")


def read_refseq_table(path: str | Path, entrez_ids: set[str]) -> dict[str, str]:
    """Entrez id → summary from a RefSeq summary table (TSV, optionally gzipped) with the REFSEQ_COLUMNS."""
    table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = [column for column in REFSEQ_COLUMNS if column not in table.columns]
    if missing:
        raise InputError(
            f"{path}: no column(s) {missing} (columns present: {', '.join(table.columns)}). "
            "Fix: give config 'knowledge.refseq_tsv.path' a table with entrez_id and summary columns."
        )
    table = table[table["entrez_id"].isin(entrez_ids) & (table["summary"] != "")]
    return dict(zip(table["entrez_id"], table["summary"]))
