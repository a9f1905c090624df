"""The extractive facet backend on the real RefSeq summaries of the demo genes, the real MiniLM encoder and
the real GO / org.Hs.eg.db databases; the facet spec's K and GO roots; the facets stage's coverage report."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from dygenept.config_defaults import merged, section_defaults
from dygenept.data import annotation_db
from dygenept.facet_backends import BACKENDS
from dygenept.facet_backends.base import FacetSet, GeneText, read_gene_texts
from dygenept.facet_backends.coverage import coverage_report
from dygenept.facet_backends.extractive import (
    ExtractiveBackend,
    TermIndex,
    Thresholds,
    facet_text,
    prose_facets,
)
from dygenept.facet_backends.go_rules import GoRulesBackend
from dygenept.formats.facet_spec import load_facet_specs
from dygenept.stages import facets as facets_stage
from dygenept.text.cleaning import clean_sentences

from conftest import DEMO_REFSEQ, ROOT

FACETS_YAML = ROOT / "resources" / "facets.yaml"
DEMO = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())


def params() -> dict:
    """The facets stage's params as the rule builds them for the demo's extractive backend."""
    return {
        **section_defaults("facets"),
        "backend": "extractive",
        "facet_embed": merged(section_defaults("facet_embed"), DEMO["facet_embed"]),
        "excluded_evidence": ["ND"],
    }


@pytest.fixture(scope="module")
def backend(org_db, go_db) -> ExtractiveBackend:
    entry = BACKENDS["extractive"]
    return entry.make({"org_db": org_db, "go_db": go_db}, entry.settings(params()))


@pytest.fixture(scope="module")
def result(demo_gene_text, backend):
    genes = read_gene_texts(demo_gene_text)
    specs = load_facet_specs(FACETS_YAML)
    facet_sets = backend.generate(genes, specs)
    facet_ids = [s.id for s in specs]
    by_symbol = {
        gene.symbol: dict(zip(facet_ids, facet_set.texts))
        for gene, facet_set in zip(genes, facet_sets)
    }
    return genes, specs, facet_sets, by_symbol


def refseq_sentence(symbol: str, start: str) -> str:
    summary = (
        pd.read_csv(DEMO_REFSEQ, sep="\t", dtype=str).set_index("symbol").loc[symbol, "summary"]
    )
    found = [s for s in clean_sentences(summary) if s.startswith(start)]
    assert len(found) == 1, found
    return found[0]


def test_klf1_transcription_facet_is_its_erythroid_transcription_factor_sentence(result):
    _, _, _, facets = result
    sentence = refseq_sentence("KLF1", "This gene encodes a hematopoietic-specific transcription")
    assert "erythroid" in sentence and sentence in facets["KLF1"]["transcription"]
    # The blood-group phenotype sentence speaks of no facet; KLF1 has no cell-cycle or metabolic role.
    phenotype = refseq_sentence("KLF1", "Heterozygous loss-of-function")
    assert not any(text and phenotype in text for text in facets["KLF1"].values())
    assert facets["KLF1"]["cell_cycle"] is None and facets["KLF1"]["metabolism"] is None


@pytest.mark.parametrize(
    "symbol, facet, start",
    [
        ("HK2", "metabolism", "Hexokinases phosphorylate glucose"),
        ("PLK4", "cell_cycle", "The protein localizes to centrioles"),
        ("CBL", "signal_transduction", "As such it functions as a negative regulator"),
        ("CBL", "proteostasis", "The encoded protein is one of the enzymes required for targeting"),
        ("SET", "cell_death", "The encoded protein is part of a complex localized"),
        ("TMSB4X", "motility_adhesion", "The protein is also involved in cell proliferation, migr"),
        ("PTPN12", "motility_adhesion", "This PTP was also shown to interact with"),
        ("CEBPE", "transcription", "The protein encoded by this gene is a bZIP transcription"),
    ],
)
def test_summary_sentences_go_to_the_facet_a_biologist_would_choose(result, symbol, facet, start):
    _, _, _, facets = result
    assert refseq_sentence(symbol, start) in facets[symbol][facet]


def test_a_vague_sentence_stays_out_of_facets_it_does_not_speak_of(result):
    _, _, _, facets = result
    vague = refseq_sentence("TMSB4X", "The protein is also involved in cell proliferation, migr")
    assert vague not in (facets["TMSB4X"]["metabolism"] or "")
    assert vague not in (facets["TMSB4X"]["transcription"] or "")
    signalling = refseq_sentence("CBL", "As such it functions as a negative regulator")
    assert signalling not in (facets["CBL"]["cell_death"] or "")


def test_every_facet_is_made_of_the_genes_own_sentences_only(result):
    genes, _, facet_sets, _ = result
    max_sentences = params()["max_sentences"]  # read from the schema once, not per facet
    for gene, facet_set in zip(genes, facet_sets):
        sentences = [s["text"] for s in gene.sentences]
        for text in facet_set.texts:
            if text is None:
                continue
            rest = text
            for sentence in sorted(sentences, key=len, reverse=True):
                rest = rest.replace(sentence, "")
            assert not rest.strip(), (gene.symbol, rest)
            assert len([s for s in sentences if s in text]) <= max_sentences


def test_none_where_no_sentence_qualifies(result, backend):
    genes, specs, facet_sets, facets = result
    # IER5L: no RefSeq summary, no GO annotation; its name line speaks of no facet.
    assert all(text is None for text in facets["IER5L"].values())
    unrelated = GeneText(
        "0",
        "XYZ1",
        "a made-up gene",
        "",
        (
            {
                "text": "This gene is located on chromosome 17.",
                "source": "RefSeq",
                "ref": "GeneID:0",
            },
        ),
    )
    empty = GeneText("1", "XYZ2", "another", "", ())
    for facet_set in backend.generate([unrelated, empty], specs):
        assert facet_set.texts == (None,) * len(specs) and facet_set.evidence == ((),) * len(specs)


def test_deterministic(result, backend):
    genes, specs, facet_sets, _ = result
    assert backend.generate(genes, specs) == facet_sets


def test_extractive_covers_at_least_what_go_rules_covers_when_go_is_in_the_text(
    result, org_db, go_db
):
    genes, specs, facet_sets, _ = result
    rules = GoRulesBackend(org_db, go_db, ("ND",), max_sentences=8, max_definitions=2)
    for gene, mine, theirs in zip(genes, facet_sets, rules.generate(genes, specs)):
        for spec, text, reference in zip(specs, mine.texts, theirs.texts):
            assert reference is None or text is not None, (gene.symbol, spec.id)


def test_term_index_finds_whole_go_names_and_long_synonyms_only():
    index = TermIndex.build(
        {
            "GO:1": "transport",
            "GO:2": "signal transduction",
            "GO:3": "ion",
            "GO:4": "apoptotic process",
        },
        {"GO:4": ["apoptosis", "apoptotic cell death"], "GO:2": ["signaling cascade"]},
        min_chars=7,
    )
    assert index.named("It acts in Signal Transduction and transport.") == {"GO:1", "GO:2"}
    assert index.named("a glucose transporter") == set()  # whole words only
    assert index.named("ion channels") == set()  # a one-word name shorter than min_chars
    assert index.named("apoptosis") == set()  # one-word synonyms mislead: left out
    assert index.named("apoptotic cell death via a signaling cascade") == {"GO:4", "GO:2"}


def test_prose_facets_rules():
    subtrees = [{"GO:a"}, {"GO:b"}, {"GO:c"}]
    limits = Thresholds(min_similarity=0.5, min_similarity_annotated=0.35, margin=0.05)
    similarity = np.array([0.40, 0.42, 0.30])
    # not annotated anywhere, closest facet under 0.5: nothing
    assert prose_facets(similarity, set(), [False] * 3, subtrees, limits) == []
    # annotated facets within the margin of the closest
    assert prose_facets(similarity, set(), [True, True, True], subtrees, limits) == [0, 1]
    # a named term under facet 2 qualifies it whatever the similarity
    assert prose_facets(similarity, {"GO:c"}, [False] * 3, subtrees, limits) == [2]
    # the closest facet from min_similarity on, annotated or not
    assert prose_facets(np.array([0.1, 0.55, 0.5]), set(), [False] * 3, subtrees, limits) == [1]


def test_facet_text_orders_prose_by_text_then_specific_go_and_caps():
    sentences = [{"text": t} for t in ("A.", "B.", "C.", "go broad.", "go specific.")]
    text, chosen = facet_text(sentences, [(0, 0.4), (2, 0.9), (1, 0.6)], [(3, 50), (4, 2)], 4)
    assert chosen == [0, 1, 2, 4] and text == "A. B. C. go specific."
    text, chosen = facet_text(sentences, [(0, 0.4), (2, 0.9), (1, 0.6)], [(4, 2)], 2)
    assert chosen == [1, 2] and text == "B. C."
    assert facet_text(sentences, [], [], 8) is None


def test_facet_spec_k_and_roots_are_real_go_terms(go_db):
    specs = load_facet_specs(FACETS_YAML)
    assert 5 <= len(specs) <= 10
    roots = {root for spec in specs for root in spec.go_roots}
    terms = annotation_db.go_terms(go_db)
    assert roots <= set(terms) and not annotation_db.obsolete_go_ids(go_db, roots)


@pytest.mark.parametrize(
    "symbol, facet",
    [
        ("RPL11", "rna_translation"),
        ("RPS6", "rna_translation"),
        ("MRPL12", "rna_translation"),
        ("EIF4A1", "rna_translation"),
        ("PRPF8", "rna_translation"),
        ("EXOSC3", "rna_translation"),
        ("UTP20", "rna_translation"),
        ("PSMA1", "proteostasis"),
        ("CCT2", "proteostasis"),
    ],
)
def test_essential_gene_classes_get_a_facet_from_go_rules(org_db, go_db, symbol, facet):
    record = next(r for r in annotation_db.gene_records(org_db).values() if r.symbol == symbol)
    specs = load_facet_specs(FACETS_YAML)
    gene = GeneText(record.entrez_id, symbol, record.name, "")
    (facet_set,) = GoRulesBackend(org_db, go_db, ("ND",), 8, 2).generate([gene], specs)
    assert facet_set.texts[[s.id for s in specs].index(facet)] is not None


def test_coverage_report_by_hand():
    sets = [
        FacetSet("1", ("a", None, None)),
        FacetSet("2", (None, None, None)),
        FacetSet("3", ("b", "c", None)),
        FacetSet("4", (None, None, None)),
    ]
    report = coverage_report(sets, ["x", "y", "z"], {"1": "A", "2": "B", "3": "C", "4": "D"})
    assert report["share_all_none"] == 0.5 and report["all_none"] == ["B", "D"]
    assert report["coverage"] == {"x": 0.5, "y": 0.25, "z": 0.0}
    assert report["facets_per_gene"] == {"mean": 0.75, "median": 0.5} and report["k"] == 3


def test_facets_stage_writes_the_table_and_the_coverage_report(
    demo_gene_text, org_db, go_db, tmp_path
):
    outputs = {"facets": tmp_path / "facets.parquet", "report": tmp_path / "facets_report.json"}
    inputs = {
        "gene_text": demo_gene_text,
        "facets_yaml": FACETS_YAML,
        "org_db": org_db,
        "go_db": go_db,
    }
    facets_stage.run(
        inputs, outputs, {**params(), "cache_dir": str(tmp_path), "code_sha256": "code"}
    )
    table = pd.read_parquet(outputs["facets"])
    report = json.loads(outputs["report"].read_text())
    k = len(load_facet_specs(FACETS_YAML))
    assert len(table) == k * len(read_gene_texts(demo_gene_text)) and report["k"] == k
    empty = table.groupby("symbol")["is_none"].all()
    assert report["backend"] == "extractive" and report["all_none"] == sorted(empty[empty].index)
    assert "IER5L" in report["all_none"] and report["genes_all_none"] == int(empty.sum())
    coverage = 1 - table.groupby("facet", sort=False)["is_none"].mean()
    assert report["coverage"] == {f: round(float(v), 4) for f, v in coverage.items()}
    klf1 = table[(table["symbol"] == "KLF1") & (table["facet"] == "transcription")].iloc[0]
    assert "GeneID:10661" in list(klf1["evidence"])
    # GO agreement of the transcription facet, by hand from the table and the genes' annotations
    agreement = report["go_agreement"]
    annotations = annotation_db.gene_go_annotations(org_db, table["entrez_id"].unique(), ["ND"])
    roots = next(f.go_roots for f in load_facet_specs(FACETS_YAML) if f.id == "transcription")
    under = set().union(*annotation_db.go_descendants(go_db, roots).values())
    said = (
        table[table["facet"] == "transcription"]
        .set_index("entrez_id")["is_none"]
        .map(lambda n: not n)
    )
    scored = [gene for gene in said.index if annotations.get(gene)]
    annotated = {gene: bool({go for go, _ in annotations[gene]} & under) for gene in scored}
    expected_tp = sum(said[g] and annotated[g] for g in scored)
    expected_fp = sum(said[g] and not annotated[g] for g in scored)
    counts = agreement["per_facet"]["transcription"]
    assert agreement["genes_scored"] == len(scored) and "IER5L" not in set(
        table.loc[table["entrez_id"].isin(scored), "symbol"]
    )  # no GO annotation: not scored
    assert (counts["true_positive"], counts["false_positive"]) == (expected_tp, expected_fp)
    assert expected_tp >= 1
