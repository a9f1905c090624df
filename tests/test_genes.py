"""The genes stage's symbol → Entrez resolution: order and messages, against the real org.Hs.eg.db
(indexes built once per module)."""

import logging

import pytest

from dygenept.data.symbols import SymbolIndex, UnmappedGenesError, describe_unmapped, map_symbol
from dygenept.stages.genes import map_universe, perturbed_genes

from conftest import ROOT

PREVIOUS = ROOT / "resources" / "previous_symbols.tsv"


@pytest.fixture(scope="module")
def index(org_db):
    return SymbolIndex.from_db(org_db, PREVIOUS)


@pytest.fixture(scope="module")
def index_without_previous(org_db):
    return SymbolIndex.from_db(org_db)


def test_the_index_covers_the_whole_database(index):
    assert len(index.records) > 60_000
    assert (
        index.records["7157"].symbol == "TP53" and index.records["7157"].name == "tumor protein p53"
    )
    assert index.by_symbol["MAP3K21"] == "84451" and index.by_previous == {"KIAA1804": "84451"}


def test_kiaa1804_needs_the_previous_symbol_table(index, index_without_previous):
    assert "KIAA1804" not in index.by_alias  # org.Hs.eg.db 3.16 dropped the old name
    mapping = map_symbol("KIAA1804", index, {})
    assert (mapping.entrez_id, mapping.match) == ("84451", "previous")
    assert index.records[mapping.entrez_id].symbol == "MAP3K21"
    bare = map_symbol("KIAA1804", index_without_previous, {})
    assert bare.entrez_id is None and bare.candidates == ()
    with pytest.raises(
        UnmappedGenesError, match=r"KIAA1804: not a symbol or alias in org\.Hs\.eg\.db"
    ):
        map_universe(["KIAA1804"], index_without_previous, {}, "error", "norman.h5ad")
    assert (map_symbol("MAP3K21", index, {}).entrez_id, map_symbol("MAP3K21", index, {}).match) == (
        "84451",
        "symbol",
    )


def test_an_official_symbol_beats_another_genes_alias(index):
    # ACTB is the symbol of Entrez 60 and also an alias of POTEF: the symbol wins.
    assert index.by_alias["ACTB"] - {"60"}
    mapping = map_symbol("ACTB", index, {})
    assert (mapping.entrez_id, mapping.match) == ("60", "symbol")


def test_aliases_resolve_case_insensitively(index):
    for query in ("P53", "p53"):
        mapping = map_symbol(query, index, {})
        assert (mapping.entrez_id, mapping.match, mapping.query) == ("7157", "alias", query)
    assert map_symbol("erk2", index, {}).entrez_id == "5594"  # MAPK1


def test_an_ambiguous_alias_is_reported_with_its_candidates(index):
    mapping = map_symbol("ERK", index, {})
    assert mapping.entrez_id is None and mapping.candidates == ("2048", "5594")
    assert (
        describe_unmapped([mapping], index)
        == "  ERK: ambiguous alias of EPHB2 (Entrez 2048), MAPK1 (Entrez 5594)"
    )
    with pytest.raises(UnmappedGenesError, match="ERK: ambiguous alias of EPHB2"):
        map_universe(["ERK"], index, {}, "error", "x.h5ad")
    # The fix the message suggests works: an override picks one.
    table = map_universe(["ERK"], index, {"ERK": "5594"}, "error", "x.h5ad")
    assert table.values.tolist() == [
        ["ERK", "MAPK1", "5594", "mitogen-activated protein kinase 1", "override"]
    ]


def test_unmapped_error_lists_every_name_source_and_fix(index):
    with pytest.raises(UnmappedGenesError) as error:
        map_universe(["TP53", "NOPE_ONE", "NOPE_TWO"], index, {}, "error", "data/norman.h5ad")
    message = str(error.value)
    assert message.startswith("2 gene(s) from data/norman.h5ad could not be mapped")
    assert (
        "  NOPE_ONE: not a symbol" in message
        and "  NOPE_TWO: not a symbol" in message
        and "TP53" not in message
    )
    assert "genes.symbol_overrides" in message and "genes.on_unmapped: warn" in message


def test_warn_drops_unmapped_names_and_says_so(index, caplog):
    with caplog.at_level(logging.WARNING, logger="dygenept.stages.genes"):
        table = map_universe(["NOPE_ONE", "KLF1", "KIAA1804"], index, {}, "warn", "x")
    assert table.values.tolist() == [
        ["KLF1", "KLF1", "10661", "KLF transcription factor 1", "symbol"],
        [
            "KIAA1804",
            "MAP3K21",
            "84451",
            "mitogen-activated protein kinase kinase kinase 21",
            "previous",
        ],
    ]
    assert "NOPE_ONE" in caplog.text


def test_overrides_win_even_over_official_symbols_and_accept_integer_ids(index):
    mapping = map_symbol("MAPK1", index, {"MAPK1": 5595})  # YAML may give the id as an integer
    assert (mapping.entrez_id, mapping.match) == ("5595", "override")
    table = map_universe(["MAPK1"], index, {"MAPK1": 5595}, "error", "x")
    assert table.loc[0, "symbol"] == "MAPK3"
    assert (
        map_symbol("mapk1", index, {"MAPK1": "5595"}).match == "symbol"
    )  # overrides match the name exactly


def test_two_names_of_one_gene_are_kept_and_logged(index, caplog):
    with caplog.at_level(logging.WARNING, logger="dygenept.stages.genes"):
        table = map_universe(["MAPK1", "ERK2"], index, {}, "error", "x")
    assert table["entrez_id"].tolist() == ["5594", "5594"] and table["match"].tolist() == [
        "symbol",
        "alias",
    ]
    assert "2 names share a gene" in caplog.text and "ERK2→MAPK1" in caplog.text


def test_perturbed_genes_of_gears_conditions():
    assert perturbed_genes(["ctrl", "KLF1+ctrl", "SET+KLF1", "MAP2K6+KLF1", "ctrl"]) == [
        "KLF1",
        "MAP2K6",
        "SET",
    ]
    assert perturbed_genes(["ctrl"]) == []


def test_old_norman_names_that_are_still_aliases(index):
    # C3orf72 and C19orf26 (Norman 2019's names) are org.Hs.eg.db aliases of FOXL2NB and CBARP.
    mapping = map_symbol("C3orf72", index, {})
    assert (mapping.entrez_id, mapping.match) == (index.by_symbol["FOXL2NB"], "alias")
    assert index.records[map_symbol("C19orf26", index, {}).entrez_id].symbol == "CBARP"


def test_an_override_names_any_query_and_must_name_a_known_gene(index):
    table = map_universe(["MYALIAS"], index, {"MYALIAS": "5595"}, "error", "x")
    assert table.values.tolist()[0][1:] == [
        "MAPK3",
        "5595",
        "mitogen-activated protein kinase 3",
        "override",
    ]
    with pytest.raises(UnmappedGenesError, match="does not know"):
        map_universe(["X"], index, {"X": "999999999"}, "error", "x")
