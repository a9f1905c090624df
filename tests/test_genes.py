"""Symbol → Entrez mapping against the real org.Hs.eg.db."""

import pytest

from dygenept.stages.genes import map_universe
from dygenept.symbols import SymbolIndex, UnmappedGenesError, map_symbol

from conftest import ROOT


@pytest.fixture(scope="module")
def index(org_db):
    return SymbolIndex.from_db(org_db, ROOT / "resources" / "previous_symbols.tsv")


def test_official_symbols_and_aliases(index):
    assert map_symbol("MAPK1", index, {}).entrez_id == "5594"
    assert map_symbol("mapk1", index, {}).match == "symbol"
    # Old names in Norman 2019: C3orf72 and C19orf26 are org.Hs.eg.db aliases ...
    assert (map_symbol("C3orf72", index, {}).entrez_id, map_symbol("C3orf72", index, {}).match) == (
        index.by_symbol["FOXL2NB"],
        "alias",
    )
    assert index.records[map_symbol("C19orf26", index, {}).entrez_id].symbol == "CBARP"
    # ... KIAA1804 no longer is, and comes from the curated previous-symbol table.
    mapping = map_symbol("KIAA1804", index, {})
    assert (mapping.entrez_id, mapping.match) == ("84451", "previous")
    assert index.records["84451"].symbol == "MAP3K21"


def test_ambiguous_alias_is_not_guessed(index):
    ambiguous = next(
        alias
        for alias, ids in index.by_alias.items()
        if len(ids) > 1 and alias not in index.by_symbol
    )
    mapping = map_symbol(ambiguous, index, {})
    assert mapping.entrez_id is None and len(mapping.candidates) > 1


def test_unmapped_names_are_listed_with_the_fix(index):
    with pytest.raises(UnmappedGenesError) as error:
        map_universe(["MAPK1", "NOT_A_GENE_XYZ"], index, {}, "error", "demo.h5ad")
    message = str(error.value)
    assert "NOT_A_GENE_XYZ" in message and "demo.h5ad" in message and "symbol_overrides" in message


def test_warn_leaves_unmapped_out_and_overrides_win(index):
    table = map_universe(
        ["MAPK1", "NOT_A_GENE_XYZ", "MYALIAS"], index, {"MYALIAS": "5595"}, "warn", "x"
    )
    assert table["query"].tolist() == ["MAPK1", "MYALIAS"]
    assert table.set_index("query").loc["MYALIAS", "symbol"] == "MAPK3"
    assert table.set_index("query").loc["MYALIAS", "match"] == "override"


def test_override_to_an_unknown_id_is_refused(index):
    with pytest.raises(UnmappedGenesError, match="does not know"):
        map_universe(["X"], index, {"X": "999999999"}, "error", "x")
