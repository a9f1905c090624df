"""enrich: thin-text genes enriched per second (GO-similarity neighbours over all human genes); fetch_string: STRING
link lines parsed and mapped to Entrez ids per second (generated files in STRING's layout)."""

import gzip
import tempfile
import time
from pathlib import Path

import numpy as np

from dygenept.data import annotation_db
from dygenept.data.symbols import SymbolIndex
from dygenept.stages.enrich import AnnotationMatrix
from dygenept.stages.fetch_string import entrez_edges, protein_to_entrez

from _common import GO_DB, ORG_DB, parse_args, report, require, timed

args = parse_args(__doc__)
require(ORG_DB, GO_DB)
per_gene = annotation_db.gene_go_annotations(ORG_DB, None, ("ND",))
matrix, build_seconds = timed(AnnotationMatrix.build, per_gene)
queries = matrix.gene_ids[:: max(1, len(matrix.gene_ids) // (50 if args.quick else 500))]
start = time.perf_counter()
for gene in queries:
    for neighbour, _ in matrix.nearest(gene, 3, 0.1):
        matrix.top_terms(neighbour, 4)
seconds = time.perf_counter() - start
report(
    "enrich",
    len(queries) / seconds,
    "thin genes/s",
    f"{len(queries)} queries against {len(matrix.gene_ids):,} genes × {len(matrix.term_ids):,} terms",
    f"matrix build: {build_seconds:.1f} s",
)

# STRING's official files → Entrez edge table (fetch_string).
index = SymbolIndex.from_db(ORG_DB)
genes = sorted(index.records)[:19_000]
n_links = 200_000 if args.quick else 2_000_000
rng = np.random.default_rng(0)
with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    proteins = [f"9606.ENSP{i:011d}" for i in range(len(genes))]
    with gzip.open(tmp / "aliases.txt.gz", "wt") as out:
        out.write("#string_protein_id\talias\tsource\n")
        for protein, gene in zip(proteins, genes):
            out.write(
                f"{protein}\t{gene}\tEnsembl_HGNC_entrez_id\n{protein}\t{index.records[gene].symbol}\tEnsembl_HGNC_symbol\n"
            )
    with gzip.open(tmp / "info.txt.gz", "wt") as out:
        out.write("#string_protein_id\tpreferred_name\tprotein_size\tannotation\n")
        out.writelines(
            f"{protein}\t{index.records[gene].symbol}\t400\tannotation\n"
            for protein, gene in zip(proteins, genes)
        )
    first, second = rng.integers(0, len(genes), n_links), rng.integers(0, len(genes), n_links)
    scores = rng.integers(150, 1000, n_links)
    with gzip.open(tmp / "links.txt.gz", "wt", compresslevel=1) as out:
        out.write("protein1 protein2 combined_score\n")
        out.writelines(
            f"{proteins[a]} {proteins[b]} {s}\n" for a, b, s in zip(first, second, scores)
        )
    start = time.perf_counter()
    mapping, _ = protein_to_entrez(tmp / "aliases.txt.gz", tmp / "info.txt.gz", index)
    symbols = {gene: record.symbol for gene, record in index.records.items()}
    edges = entrez_edges(tmp / "links.txt.gz", mapping, symbols, 400)
    seconds = time.perf_counter() - start
report(
    "fetch_string (parse + map)",
    n_links / seconds,
    "link lines/s",
    f"{n_links:,} generated links over {len(genes):,} proteins → {len(edges):,} Entrez pairs ≥ 400",
    f"{seconds:.1f} s; STRING v12 human has ~13.7 M lines → ~{13.7e6 / (n_links / seconds) / 60:.1f} min",
)
