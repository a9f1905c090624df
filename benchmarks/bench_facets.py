"""facets: genes per second and facet coverage (share of genes whose facets are all NONE) per backend.

go-rules runs on every gene with a GO annotation in org.Hs.eg.db (text: its name line). extractive needs
text: it runs on the genes of the shared RefSeq summary table (`--sample N` draws N of them, seed 0; go-rules
with `--sample N` runs on the same N genes), with the knowledge stage's own text (name line, RefSeq summary,
GO sentences). Both report coverage on the whole set, on the demo's perturbed genes (`--demo-genes`, the
genes stage's table) and on a panel of post-transcriptional and proteostasis genes that essential-gene
screens are made of (symbol prefixes below). `--facets` compares facet specs (e.g. an older facets.yaml).
"""

import argparse
import json
import re
import tempfile
from pathlib import Path

import pandas as pd
import yaml

from dygenept.config_defaults import merged, section_defaults
from dygenept.data import annotation_db
from dygenept.facet_backends.base import GeneText, read_gene_texts
from dygenept.facet_backends.cached import generate_cached
from dygenept.facet_backends.coverage import coverage_report
from dygenept.facet_backends.extractive import ExtractiveBackend, ExtractiveSettings
from dygenept.facet_backends.extractive import make as make_extractive
from dygenept.facet_backends.go_rules import GoRulesBackend
from dygenept.formats.facet_spec import load_facet_specs
from dygenept.io.keyed_store import KeyedStore
from dygenept.stages import knowledge

from _common import DEMO_OUT, GO_DB, ORG_DB, ROOT, report, require, timed

REFSEQ = (
    ROOT.parent / "shared" / "data" / "gene_text" / "refseq_gene_summaries_human_RefSeq220.tsv.gz"
)
# Ribosome, mitochondrial ribosome, translation initiation, RNA helicases, splicing, exosome, small-subunit
# processome, proteasome and the CCT chaperonin (RPS6K* are kinases, not ribosomal proteins).
PANEL = re.compile(
    r"^(RPL\d+[AL]?\d*|RPLP\d|RPS\d+[AXY]?\d*|RPSA|MRPL\d+|MRPS\d+[A-C]?|EIF\d\w*|DDX\d+\w*"
    r"|DHX\d+|PRPF\d+\w*|SNRP\w+|SF3[AB]\d|EXOSC\d+|UTP\d+\w*|PSM[ABCD]\d+|CCT\d\w*)$"
)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="a small run, to check the script works"
    )
    parser.add_argument("--backend", choices=["go-rules", "extractive"], default="go-rules")
    parser.add_argument("--facets", type=Path, default=ROOT / "resources" / "facets.yaml")
    parser.add_argument(
        "--sample", type=int, default=None, help="extractive: this many RefSeq genes"
    )
    parser.add_argument(
        "--demo-genes",
        type=Path,
        default=DEMO_OUT / "model" / "genes" / "genes.tsv",
        help="genes.tsv",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    return parser.parse_args()


def name_line_genes(also: set[str]) -> tuple[list[GeneText], set[str]]:
    """Every gene with a GO annotation, and the ``also`` genes, with their name line as text; and the
    annotated genes' ids."""
    annotated = set(annotation_db.gene_go_annotations(ORG_DB, None, ("ND",)))
    records = annotation_db.gene_records(ORG_DB)
    genes = [
        GeneText(r.entrez_id, r.symbol, r.name, f"{r.symbol} encodes {r.name}.")
        for r in sorted(records.values(), key=lambda r: int(r.entrez_id))
        if r.entrez_id in annotated | also
    ]
    return genes, annotated


def knowledge_texts(entrez_ids: list[str]) -> list[GeneText]:
    """The knowledge stage's text (sources: refseq_tsv, go) for these genes, as the pipeline makes it."""
    records = annotation_db.gene_records(ORG_DB)
    genes = pd.DataFrame(
        [
            {"query": r.symbol, "symbol": r.symbol, "entrez_id": r.entrez_id, "name": r.name}
            for r in (records[i] for i in entrez_ids if i in records)
        ]
    ).assign(match="symbol")
    with tempfile.TemporaryDirectory() as tmp:
        genes.to_csv(Path(tmp) / "genes.tsv", sep="\t", index=False)
        inputs = {"genes": Path(tmp) / "genes.tsv", "org_db": ORG_DB, "go_db": GO_DB}
        knowledge.run(
            {**inputs, "refseq_tsv": REFSEQ},
            {"gene_text": Path(tmp) / "text.parquet"},
            {
                **merged(section_defaults("knowledge"), {"sources": ["refseq_tsv", "go"]}),
                "excluded_evidence": ["ND"],
            },
        )
        return read_gene_texts(Path(tmp) / "text.parquet")


def extractive_backend() -> ExtractiveBackend:
    """The demo's extractive backend: the schema's settings, the demo's MiniLM on the CPU."""
    demo = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())
    params = {
        **section_defaults("facets"),
        "facet_embed": merged(section_defaults("facet_embed"), demo["facet_embed"]),
        "excluded_evidence": ["ND"],
    }
    return make_extractive(
        {"org_db": ORG_DB, "go_db": GO_DB}, ExtractiveSettings.from_params(params)
    )


args = arguments()
require(ORG_DB, GO_DB, args.facets)
specs = load_facet_specs(args.facets)
facet_ids = [f.id for f in specs]
demo = (
    set(pd.read_csv(args.demo_genes, sep="\t", dtype=str)["entrez_id"])
    if args.demo_genes.is_file()
    else set()
)
n = 200 if args.quick else args.sample
if args.backend == "extractive" or n:
    require(REFSEQ)
    table = pd.read_csv(REFSEQ, sep="\t", dtype=str, usecols=["entrez_id"])
    ids = table["entrez_id"].sample(n, random_state=0) if n else table["entrez_id"]
    universe = set(ids)
    workload = f"{'a sample of ' if n else ''}genes of the shared RefSeq table"
if args.backend == "go-rules":
    genes, annotated = name_line_genes(demo | universe if n else demo)
    if n:  # the sampled genes without a GO annotation stay: go-rules leaves them all NONE
        genes = [g for g in genes if g.entrez_id in universe | demo]
        universe &= {g.entrez_id for g in genes}
    else:
        universe = annotated
        workload = "every gene with a GO annotation (org.Hs.eg.db 2022-09, evidence ND left out)"
    backend = GoRulesBackend(ORG_DB, GO_DB, ("ND",), max_sentences=8, max_definitions=2)
else:
    genes = knowledge_texts(sorted(universe | demo, key=int))
    backend = extractive_backend()
    workload += ", knowledge text (name line, RefSeq summary, GO sentences)"
facet_sets, seconds = timed(backend.generate, genes, specs)
figures = {"backend": backend.name, "facets_yaml": str(args.facets), "seconds": round(seconds, 1)}
groups = {
    "all": lambda g: g.entrez_id in universe,
    "panel": lambda g: g.entrez_id in universe and PANEL.match(g.symbol),
}
if demo:
    groups["demo"] = lambda g: g.entrez_id in demo
for name, keep in groups.items():
    chosen = [(s, g) for s, g in zip(facet_sets, genes) if keep(g)]
    figures[name] = coverage_report(
        [s for s, _ in chosen], facet_ids, {g.entrez_id: g.symbol for _, g in chosen}
    )
for name in groups:
    entry = figures[name]
    listed = entry["all_none"] if name == "demo" else entry.pop("all_none")[:20]
    print(
        f"{name}: {entry['genes']:,} genes, all NONE {entry['genes_all_none']:,} "
        f"({entry['share_all_none']:.1%}); coverage {entry['coverage']}; e.g. {listed}"
    )
if args.json:
    args.json.write_text(json.dumps(figures, indent=2) + "\n")
present = sum(t is not None for s in facet_sets for t in s.texts)
report(
    f"facets ({backend.name})",
    len(genes) / seconds,
    "genes/s",
    f"{len(genes):,} genes ({workload}), K={len(specs)}: {present:,} of {len(specs) * len(genes):,} "
    f"facets present",
)

# The per-gene cache: a rerun with one gene more than a finished run computes that gene alone.
with tempfile.TemporaryDirectory() as tmp, KeyedStore(Path(tmp) / "facets.sqlite") as store:
    _, cold = timed(generate_cached, backend, genes[:-1], specs, store, "bench")
    grown, warm = timed(generate_cached, backend, genes, specs, store, "bench")
report(
    f"facets cache ({backend.name})",
    warm,
    "s for one more gene",
    f"{len(genes):,} genes, {len(grown.computed)} computed: cold run of {len(genes) - 1:,} genes "
    f"{cold:.1f} s",
)
