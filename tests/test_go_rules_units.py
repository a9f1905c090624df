"""The go-rules facet backend piece by piece: the paragraph builder, the facet table, more spec checks, and
invariants of the whole backend on the real GO.db and org.Hs.eg.db."""

from pathlib import Path

import pytest

from dygenept.data import annotation_db
from dygenept.data.annotation_db import GoTerm
from dygenept.facet_backends.base import NONE_MARKER, FacetSet, GeneText
from dygenept.facet_backends.go_rules import (
    GoRulesBackend,
    ObsoleteRootError,
    assign_terms_to_facets,
    facet_paragraph,
    sentences_naming,
)
from dygenept.formats.facet_spec import FacetSpec, FacetSpecError, load_facet_specs
from dygenept.stages.facets import facet_table

from conftest import ROOT

FACETS_YAML = ROOT / "resources" / "facets.yaml"

TERMS = {
    "GO:0000001": GoTerm(
        "GO:0000001", "cell cycle", "BP", "The progression of biochemical and morphological phases."
    ),
    "GO:0000002": GoTerm("GO:0000002", "mitotic spindle assembly", "BP", "Forming the spindle."),
    "GO:0000003": GoTerm("GO:0000003", "centriole replication", "BP", ""),
}
SPECIFICITY = {"GO:0000001": 100, "GO:0000002": 3}  # GO:0000003 is a leaf: absent, read as 0
SENTENCES = (
    {"text": "X drives Centriole Replication.", "ref": "summary"},
    {"text": "X binds DNA.", "ref": "GO:0003677"},
    {"text": "X is cited for spindles.", "ref": "GO:0000002"},
)
GENE = GeneText("1", "X", "gene x", " ".join(s["text"] for s in SENTENCES), SENTENCES)
FACET = FacetSpec("cell_cycle", "cell cycle", "d", ("GO:0000001",))


def test_facet_paragraph_orders_terms_from_most_specific_and_defines_the_first_ones():
    paragraph = facet_paragraph(
        GENE, FACET, set(TERMS), TERMS, SPECIFICITY, max_sentences=8, max_definitions=2
    )
    # Leaf (0 offspring) first, then 3, then 100; the leaf has no definition, so only one definition appears
    # among the first two terms; the unrelated "binds DNA" sentence is left out.
    assert paragraph == (
        "X in cell cycle: annotated with centriole replication, mitotic spindle assembly, cell cycle. "
        "X drives Centriole Replication. X is cited for spindles. "
        "Mitotic spindle assembly: Forming the spindle."
    )


def test_facet_paragraph_limits():
    paragraph = facet_paragraph(
        GENE, FACET, set(TERMS), TERMS, SPECIFICITY, max_sentences=1, max_definitions=0
    )
    assert (
        paragraph
        == "X in cell cycle: annotated with centriole replication. X drives Centriole Replication."
    )


def test_sentences_naming_finds_nothing_for_unrelated_terms():
    assert sentences_naming(SENTENCES, {"GO:0006915", "apoptotic process"}, limit=5) == []
    assert sentences_naming((), {"GO:0000002"}, limit=5) == []


def test_assign_terms_with_overlapping_facets_gives_a_term_to_each():
    # A term under two facets' roots belongs to both: facets are views, not a partition.
    assert assign_terms_to_facets({"GO:1", "GO:2"}, [{"GO:1"}, {"GO:1", "GO:2"}, set()]) == [
        {"GO:1"},
        {"GO:1", "GO:2"},
        set(),
    ]
    assert assign_terms_to_facets(set(), [{"GO:1"}]) == [set()]


def test_facet_table_writes_the_none_marker_and_evidence():
    specs = [FACET, FacetSpec("transport", "transport", "d", ("GO:0006810",))]
    table = facet_table(
        [GENE], [FacetSet("1", ("text about X", None), (("GO:0000001",), ()))], specs
    )
    assert table[["facet", "facet_index", "is_none", "text"]].values.tolist() == [
        ["cell_cycle", 0, False, "text about X"],
        ["transport", 1, True, NONE_MARKER],
    ]
    assert table["evidence"].tolist() == [["GO:0000001"], []]
    with pytest.raises(ValueError, match="expected 2"):
        facet_table([GENE], [FacetSet("1", ("only one",))], specs)


@pytest.mark.parametrize(
    "text, message",
    [
        ("facets:\n  - just a string\n", "lacks ['id', 'name', 'description', 'go_roots']"),
        (
            "- {id: a, name: A, description: d, go_roots: [GO:0007049]}\n",
            "non-empty list under 'facets'",
        ),
        (
            "facets:\n  - {id: a, name: A, description: d, go_roots: [GO:7049]}\n",
            "malformed GO ids ['GO:7049']",
        ),
        ("facets:\n  - {id: a, name: A, description: d, go_roots: []}\n", "lacks ['go_roots']"),
        ("", "non-empty list"),
    ],
)
def test_more_malformed_facet_files(tmp_path, text, message):
    path = tmp_path / "my_facets.yaml"
    path.write_text(text)
    with pytest.raises(FacetSpecError) as error:
        load_facet_specs(path)
    assert (
        str(path) in str(error.value) and message in str(error.value) and "Fix:" in str(error.value)
    )


def test_shipped_facets_in_order_with_names():
    specs = load_facet_specs(FACETS_YAML)
    assert [s.id for s in specs] == [
        "transcription",
        "cell_cycle",
        "cell_death",
        "metabolism",
        "immune_response",
        "signal_transduction",
        "motility_adhesion",
        "transport",
        "rna_translation",
        "proteostasis",
    ]
    assert all(s.name and s.description and s.go_roots for s in specs)


# ---- the backend on the real databases ----------------------------------------------------------------


@pytest.fixture(scope="module")
def specs():
    return load_facet_specs(FACETS_YAML)


@pytest.fixture(scope="module")
def generated(org_db, go_db, specs):
    genes = [
        GeneText(entrez, symbol, "", "")
        for entrez, symbol in [
            ("7157", "TP53"),
            ("10733", "PLK4"),
            ("10661", "KLF1"),
            ("84451", "MAP3K21"),
        ]
    ]
    backend = GoRulesBackend(Path(org_db), Path(go_db), ("ND",), max_sentences=8, max_definitions=2)
    return {
        gene.symbol: facet_set for gene, facet_set in zip(genes, backend.generate(genes, specs))
    }


def test_every_facet_term_is_a_real_annotation_under_that_facets_roots(
    org_db, go_db, specs, generated
):
    descendants = annotation_db.go_descendants(
        go_db, sorted({r for s in specs for r in s.go_roots})
    )
    direct = annotation_db.gene_go_annotations(org_db, ["7157", "10733", "10661", "84451"], ("ND",))
    for facet_set in generated.values():
        gene_terms = {go_id for go_id, _ in direct[facet_set.entrez_id]}
        for spec, text, evidence in zip(specs, facet_set.texts, facet_set.evidence):
            subtree = set().union(*(descendants[root] for root in spec.go_roots))
            assert set(evidence) <= subtree & gene_terms
            assert (text is None) == (len(evidence) == 0)


def test_known_biology_lands_in_the_right_facets(generated, specs):
    ids = [s.id for s in specs]
    by = {symbol: dict(zip(ids, facet_set.texts)) for symbol, facet_set in generated.items()}
    # TP53: a transcription factor that induces apoptosis; KLF1: an erythroid transcription factor.
    assert (
        by["TP53"]["transcription"]
        and by["TP53"]["cell_death"]
        and "apoptotic" in by["TP53"]["cell_death"]
    )
    assert by["KLF1"]["transcription"].startswith(
        "KLF1 in transcriptional regulation: annotated with"
    )
    assert by["KLF1"]["cell_cycle"] is None
    # PLK4: centriole duplication only; a kinase with no signalling annotation gets NONE there.
    assert "centriole replication" in by["PLK4"]["cell_cycle"]
    assert [k for k, text in by["PLK4"].items() if text is not None] == ["cell_cycle"]
    # MAP3K21 (renamed from KIAA1804): only its kinase-cascade terms.
    assert [k for k, text in by["MAP3K21"].items() if text is not None] == ["signal_transduction"]


def test_excluding_every_evidence_code_of_a_gene_leaves_only_none(org_db, go_db, specs):
    with annotation_db.connect(org_db) as db:
        codes = {
            row[0]
            for table in ("go_bp", "go_mf", "go_cc")
            for row in db.execute(
                f"SELECT DISTINCT a.evidence FROM {table} a JOIN genes g ON a._id = g._id WHERE g.gene_id = '10733'"
            )
        }
    assert (
        "IDA" in codes
    )  # PLK4 has experimental annotations: the exclusion below removes real terms
    [facet_set] = GoRulesBackend(Path(org_db), Path(go_db), tuple(codes), 8, 2).generate(
        [GeneText("10733", "PLK4", "", "")], specs
    )
    assert facet_set.texts == (None,) * len(specs)


def test_a_root_go_db_does_not_know_is_refused(org_db, go_db):
    spec = FacetSpec("x", "x", "d", ("GO:9999999",))
    with pytest.raises(ObsoleteRootError, match="GO:9999999.*does not know"):
        GoRulesBackend(Path(org_db), Path(go_db), ("ND",), 8, 2).generate(
            [GeneText("10733", "PLK4", "", "")], [spec]
        )


def test_obsolete_root_message_names_the_root_and_both_replacements(org_db, go_db):
    spec = FacetSpec("motility", "motility", "d", ("GO:0006928", "GO:0007155"))
    with pytest.raises(ObsoleteRootError) as error:
        GoRulesBackend(Path(org_db), Path(go_db), ("ND",), 8, 2).generate(
            [GeneText("10733", "PLK4", "", "")], [spec]
        )
    message = str(error.value)
    assert (
        "['GO:0006928']" in message
        and "GO:0048870" in message
        and "GO:0007155" in message
        and "Fix:" in message
    )


def test_go_descendants_follow_regulates_and_part_of(go_db):
    cell_cycle = annotation_db.go_descendants(go_db, ["GO:0007049"])["GO:0007049"]
    assert "GO:0045787" in cell_cycle  # positive regulation of cell cycle (positively_regulates)
    assert "GO:0007099" in cell_cycle  # centriole replication (part of the cell cycle)
    leaf = annotation_db.go_descendants(go_db, ["GO:0007099"])["GO:0007099"]
    assert "GO:0007049" not in leaf and "GO:0007099" in leaf
    with pytest.raises(KeyError):
        annotation_db.go_descendants(go_db, ["GO:9999999"])
