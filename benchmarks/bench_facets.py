"""facets: genes per second through the go-rules backend (8 facets each)."""

from dygenept import annotation_db
from dygenept.facet_backends.base import GeneText
from dygenept.facet_backends.go_rules import GoRulesBackend
from dygenept.formats.facet_spec import load_facet_specs

from _common import GO_DB, ORG_DB, ROOT, parse_args, report, require, timed

args = parse_args(__doc__)
require(ORG_DB, GO_DB)
specs = load_facet_specs(ROOT / "resources" / "facets.yaml")
records = sorted(annotation_db.gene_records(ORG_DB).values(), key=lambda r: int(r.entrez_id))[
    : 300 if args.quick else 3_000
]
genes = [GeneText(r.entrez_id, r.symbol, r.name, f"{r.symbol} encodes {r.name}.") for r in records]
backend = GoRulesBackend(ORG_DB, GO_DB, ("ND",), max_sentences=8, max_definitions=2)
facet_sets, seconds = timed(backend.generate, genes, specs)
present = sum(t is not None for s in facet_sets for t in s.texts)
report(
    "facets (go-rules)",
    len(genes) / seconds,
    "genes/s",
    f"{len(genes):,} genes, {present:,} of {8 * len(genes):,} facets present",
)
