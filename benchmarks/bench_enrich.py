"""enrich: thin-text genes enriched per second (GO-similarity neighbours over all human genes)."""

import time

from _common import GO_DB, ORG_DB, parse_args, report, require, timed

from dygenept import annotations
from dygenept.enrich import AnnotationMatrix

args = parse_args(__doc__)
require(ORG_DB, GO_DB)
per_gene = annotations.gene_go_annotations(ORG_DB, None, ("ND",))
matrix, build_seconds = timed(AnnotationMatrix.build, per_gene)
queries = matrix.gene_ids[:: max(1, len(matrix.gene_ids) // (50 if args.quick else 500))]
start = time.perf_counter()
for gene in queries:
    for neighbour, _ in matrix.nearest(gene, 3, 0.1):
        matrix.top_terms(neighbour, 4)
seconds = time.perf_counter() - start
report("enrich", len(queries) / seconds, "thin genes/s", f"{len(queries)} queries against {len(matrix.gene_ids):,} genes × {len(matrix.term_ids):,} terms",
       f"matrix build: {build_seconds:.1f} s")
