"""knowledge: genes per second for the GO-text source (full name + GO sentences)."""

import tempfile
from pathlib import Path

import pandas as pd

from dygenept.data import annotation_db
from dygenept.stages.knowledge import run

from _common import GO_DB, ORG_DB, parse_args, report, require, timed

args = parse_args(__doc__)
require(ORG_DB, GO_DB)
records = sorted(annotation_db.gene_records(ORG_DB).values(), key=lambda r: int(r.entrez_id))
n = 500 if args.quick else 5_000
genes = pd.DataFrame(
    [
        {
            "query": r.symbol,
            "symbol": r.symbol,
            "entrez_id": r.entrez_id,
            "name": r.name,
            "match": "symbol",
        }
        for r in records[:n]
    ]
)
with tempfile.TemporaryDirectory() as tmp:
    genes_path = Path(tmp) / "genes.tsv"
    genes.to_csv(genes_path, sep="\t", index=False)
    inputs = {"genes": genes_path, "org_db": ORG_DB, "go_db": GO_DB}
    details, seconds = timed(
        run,
        inputs,
        {"gene_text": Path(tmp) / "t.parquet"},
        {"sources": ["go"], "excluded_evidence": ["ND"]},
    )
report(
    "knowledge", n / seconds, "genes/s", f"{n:,} genes, median {details['median_chars']:.0f} chars"
)
