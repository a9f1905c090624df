"""annotations: GO annotations per second read from org.Hs.eg.db (the query every knowledge stage makes)."""

from dygenept.data import annotation_db

from _common import GO_DB, ORG_DB, parse_args, report, require, timed

args = parse_args(__doc__)
require(ORG_DB, GO_DB)
per_gene, seconds = timed(
    annotation_db.gene_go_annotations, ORG_DB, None, ("ND",), repeat=1 if args.quick else 3
)
n = sum(len(v) for v in per_gene.values())
_, term_seconds = timed(annotation_db.go_terms, GO_DB)
report(
    "annotations",
    n / seconds,
    "annotations/s",
    f"all {n:,} direct annotations of {len(per_gene):,} genes",
    f"go_terms: {term_seconds:.2f} s",
)
