"""GO → facet assignment: pure pieces, then the go-rules backend on the real GO.db and org.Hs.eg.db."""

from pathlib import Path

import pytest

from dygenept.data import annotation_db
from dygenept.facet_backends.base import GeneText
from dygenept.facet_backends.go_rules import (
    GoRulesBackend,
    ObsoleteRootError,
    assign_terms_to_facets,
    sentences_naming,
)
from dygenept.formats.facet_spec import FacetSpec, FacetSpecError, load_facet_specs

from conftest import ROOT

FACETS_YAML = ROOT / "resources" / "facets.yaml"


def test_assign_terms_to_facets_intersects_each_subtree():
    assigned = assign_terms_to_facets(
        {"GO:1", "GO:2", "GO:3"}, [{"GO:1", "GO:9"}, {"GO:4"}, {"GO:2", "GO:3"}]
    )
    assert assigned == [{"GO:1"}, set(), {"GO:2", "GO:3"}]


def test_sentences_naming_matches_by_go_id_or_term_text_in_order():
    sentences = [
        {"text": "X is involved in mitotic cell cycle.", "ref": "GO:0000278"},
        {"text": "X has kinase activity.", "ref": "GO:0016301"},
        {"text": "X takes part in the Mitotic Cell Cycle checkpoint.", "ref": "summary"},
    ]
    chosen = sentences_naming(sentences, {"GO:0000278", "mitotic cell cycle"}, limit=5)
    assert chosen == [sentences[0]["text"], sentences[2]["text"]]
    assert sentences_naming(sentences, {"GO:0000278", "mitotic cell cycle"}, limit=1) == [
        sentences[0]["text"]
    ]


def test_shipped_facets_yaml_has_five_to_ten_facets_with_live_roots(go_db):
    specs = load_facet_specs(FACETS_YAML)
    assert 5 <= len(specs) <= 10 and len({s.id for s in specs}) == len(specs)
    roots = {root for spec in specs for root in spec.go_roots}
    assert annotation_db.obsolete_go_ids(go_db, roots) == set()
    assert "GO:0048870" in roots and "GO:0007155" in roots and "GO:0006928" not in roots


@pytest.mark.parametrize(
    "text, message",
    [
        ("facets: []\n", "non-empty list"),
        (
            "facets:\n  - {id: a, name: A, description: d, go_roots: [GO:0007049]}\n  - {id: a, name: B, description: d, go_roots: [GO:0007049]}\n",
            "duplicate id 'a'",
        ),
        (
            "facets:\n  - {id: a, name: A, description: d, go_roots: [cell cycle]}\n",
            "malformed GO ids",
        ),
        ("facets:\n  - {id: a, name: A}\n", "lacks ['description', 'go_roots']"),
        ("facets: [\n", "not valid YAML"),
    ],
)
def test_bad_facet_specs_name_the_file_and_the_fix(tmp_path, text, message):
    path = tmp_path / "facets.yaml"
    path.write_text(text)
    with pytest.raises(FacetSpecError, match="Fix") as error:
        load_facet_specs(path)
    assert str(path) in str(error.value) and message in str(error.value)


def test_go_descendants_follow_regulates(go_db):
    descendants = annotation_db.go_descendants(go_db, ["GO:0007049"])["GO:0007049"]
    assert {
        "GO:0007049",
        "GO:0000278",
        "GO:0045787",
    } <= descendants  # mitotic cell cycle; positive regulation
    assert "GO:0006810" not in descendants


def backend(org_db, go_db) -> GoRulesBackend:
    return GoRulesBackend(Path(org_db), Path(go_db), ("ND",), max_sentences=8, max_definitions=2)


def test_go_rules_backend_on_plk4(org_db, go_db):
    specs = load_facet_specs(FACETS_YAML)
    gene = GeneText(
        "10733",
        "PLK4",
        "polo like kinase 4",
        "PLK4 is involved in centriole replication.",
        (
            {
                "text": "PLK4 is involved in centriole replication.",
                "source": "GO",
                "ref": "GO:0007099",
            },
        ),
    )
    [facet_set] = backend(org_db, go_db).generate([gene], specs)
    by_id = dict(zip([s.id for s in specs], facet_set.texts))
    assert by_id["cell_cycle"].startswith("PLK4 in cell cycle: annotated with")
    assert "centriole replication" in by_id["cell_cycle"]
    assert "PLK4 is involved in centriole replication." in by_id["cell_cycle"]
    assert (
        by_id["transcription"] is None
    )  # no annotation under any transcription root: NONE, not invented text
    evidence = dict(zip([s.id for s in specs], facet_set.evidence))
    assert evidence["transcription"] == () and "GO:0007099" in evidence["cell_cycle"]


def test_gene_without_annotations_gets_none_everywhere(org_db, go_db):
    specs = load_facet_specs(FACETS_YAML)
    gene = GeneText("0", "NOTAGENE", "nothing", "")
    [facet_set] = backend(org_db, go_db).generate([gene], specs)
    assert facet_set.texts == (None,) * len(specs)


def test_obsolete_root_is_refused_with_the_replacement(org_db, go_db):
    spec = FacetSpec("motility", "motility", "d", ("GO:0006928",))
    with pytest.raises(ObsoleteRootError, match="GO:0048870"):
        backend(org_db, go_db).generate([GeneText("10733", "PLK4", "n", "")], [spec])


class RecordingBackend:
    """The real go-rules backend, recording which genes each call computes; fails on request."""

    def __init__(self, inner, fail_on_call: int | None = None):
        self.inner, self.name, self.fail_on_call = inner, inner.name, fail_on_call
        self.calls: list[list[str]] = []

    def generate(self, genes, facets):
        self.calls.append([g.symbol for g in genes])
        if len(self.calls) == self.fail_on_call:
            raise RuntimeError("killed mid-run")
        return self.inner.generate(genes, facets)


def test_the_facet_cache_computes_only_genes_it_has_not_seen(org_db, go_db, tmp_path):
    from dygenept.facet_backends.cached import generate_cached
    from dygenept.io.keyed_store import KeyedStore

    specs = load_facet_specs(FACETS_YAML)
    records = {r.symbol: r for r in annotation_db.gene_records(org_db).values()}
    genes = [
        GeneText(records[s].entrez_id, s, records[s].name, f"{s} encodes {records[s].name}.")
        for s in ("PLK4", "TP53", "GATA1", "KLF1", "MYC")
    ]
    direct = backend(org_db, go_db).generate(genes, specs)
    with KeyedStore(tmp_path / "facets.sqlite") as store:
        # killed in its second batch of two genes: the first batch is kept
        killed = RecordingBackend(backend(org_db, go_db), fail_on_call=2)
        with pytest.raises(RuntimeError):
            generate_cached(killed, genes[:4], specs, store, "context", genes_per_batch=2)
        resumed = RecordingBackend(backend(org_db, go_db))
        first = generate_cached(resumed, genes[:4], specs, store, "context", genes_per_batch=2)
        assert resumed.calls == [["GATA1", "KLF1"]] and first.computed == ["2623", "10661"]
        grown = RecordingBackend(backend(org_db, go_db))
        second = generate_cached(grown, genes, specs, store, "context")
        assert grown.calls == [["MYC"]] and second.facet_sets == direct
        # a changed text or a changed context (settings, inputs, code) computes anew
        edited = [GeneText(genes[0].entrez_id, "PLK4", genes[0].name, "PLK4 is a kinase.")] + genes[
            1:
        ]
        again = RecordingBackend(backend(org_db, go_db))
        generate_cached(again, edited, specs, store, "context")
        assert again.calls == [["PLK4"]]
        other = RecordingBackend(backend(org_db, go_db))
        generate_cached(other, genes, specs, store, "other settings")
        assert other.calls == [["PLK4", "TP53", "GATA1", "KLF1", "MYC"]]
