"""The offline text and neighbour sources on the real RefSeq summaries and STRING v12 edges (../shared/data)."""

import json

import pandas as pd
import pytest

from dygenept.errors import InputError
from dygenept.stages import enrich, knowledge

THIN_IN_NORMAN = {
    "1264": "CNN1",
    "389792": "IER5L",
    "84451": "MAP3K21",
    "90007": "MIDN",
    "90378": "SAMD1",
    "54407": "SLC38A2",
    "65986": "ZBTB10",
}


@pytest.fixture(scope="module")
def refseq(shared_data):
    return shared_data / "gene_text" / "refseq_gene_summaries_human_RefSeq220.tsv.gz"


@pytest.fixture(scope="module")
def string_edges(shared_data):
    return shared_data / "ppi" / "string_v12_human_entrez_ntm700_top3_400.tsv.gz"


def genes_frame(entrez_symbols: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"entrez_id": e, "symbol": s, "query": s, "name": s} for e, s in entrez_symbols.items()]
    )


def test_refseq_source_gives_cleaned_sentences_with_their_source(refseq):
    genes = genes_frame({"10733": "PLK4", "1316": "KLF6", **THIN_IN_NORMAN})
    sentences = knowledge.refseq_tsv_source(genes, {"refseq_tsv": refseq}, {})
    plk4 = [s.text for s in sentences["10733"]]
    assert any("centriole duplication" in text for text in plk4)
    assert not any("transcript variant" in text for text in plk4)
    assert {s.source for s in sentences["10733"]} == {"RefSeq"} and sentences["10733"][
        0
    ].ref == "GeneID:10733"
    assert not set(sentences) & set(
        THIN_IN_NORMAN
    )  # the seven Norman genes without a RefSeq summary


def test_refseq_table_without_the_columns_is_refused(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("gene\ttext\nPLK4\tkinase\n")
    with pytest.raises(InputError, match="entrez_id.*knowledge.refseq_tsv.path"):
        knowledge.read_refseq_table(path, {"10733"})


def test_sources_merge_without_repeating_a_sentence():
    first = {"1": [knowledge.Sentence("A binds DNA.", "RefSeq", "GeneID:1")]}
    second = {
        "1": [
            knowledge.Sentence("a binds dna.", "GO", "GO:1"),
            knowledge.Sentence("A is nuclear.", "GO", "GO:2"),
        ]
    }
    merged = knowledge.merge_sentences([first, second])
    assert [s.text for s in merged["1"]] == ["A binds DNA.", "A is nuclear."]


def test_network_text_becomes_cleaned_sentences_that_keep_their_record():
    from dygenept.text.sources import RawText

    raw = {
        "7157": [
            RawText(
                "Acts as a tumor suppressor (PubMed:11025664). (Microbial infection) Interacts with "
                "human papillomavirus E6 protein (PubMed:8380212).",
                "UniProtKB:P04637",
            )
        ]
    }
    sentences = knowledge.network_sentences("UniProtKB/Swiss-Prot", raw)["7157"]
    assert [s.text for s in sentences] == [
        "Acts as a tumor suppressor.",
        "During microbial infection, interacts with human papillomavirus E6 protein.",
    ]
    assert {(s.source, s.ref) for s in sentences} == {("UniProtKB/Swiss-Prot", "UniProtKB:P04637")}


def test_unknown_source_is_refused_naming_the_known_ones(tmp_path):
    genes = genes_frame({"7157": "TP53"})
    genes.to_csv(tmp_path / "genes.tsv", sep="\t", index=False)
    with pytest.raises(
        InputError, match=r"unknown source\(s\) \['ncbi'\].*'entrez'.*'mygene'.*'uniprot'"
    ):
        knowledge.run(
            {"genes": tmp_path / "genes.tsv"},
            {"gene_text": tmp_path / "t.parquet"},
            {"sources": ["ncbi"]},
        )


def test_string_neighbours_are_the_strongest_partners_above_the_threshold(string_edges):
    ranked = enrich.string_neighbours(
        ["1264"],
        {"string_table": string_edges},
        {
            "top_k": 3,
            "neighbours": "string_table",
            "string_table": {"min_combined_score": 700},
            "string_fallback_min_score": None,
        },
        matrix=None,
    )
    neighbours = ranked["1264"]
    assert len(neighbours) == 3 and all(score >= 0.7 for _, score in neighbours)
    assert [score for _, score in neighbours] == sorted(
        (score for _, score in neighbours), reverse=True
    )
    edges = pd.read_csv(string_edges, sep="\t", dtype=str)
    best = (
        edges[(edges.gene1_entrez == "1264") | (edges.gene2_entrez == "1264")]
        .combined_score.astype(int)
        .max()
    )
    assert neighbours[0][1] == best / 1000


def test_enrich_falls_back_to_go_similarity_and_records_the_source(
    tmp_path, string_edges, org_db, go_db
):
    rows = [
        ("1264", "CNN1", "CNN1 encodes calponin 1."),
        ("90007", "MIDN", "MIDN encodes midnolin."),
        ("389792", "IER5L", "IER5L encodes immediate early response 5 like."),
        ("5594", "MAPK1", "x" * 500),
    ]
    table = pd.DataFrame(
        [
            {
                "entrez_id": gene,
                "symbol": symbol,
                "text": text,
                "n_chars": len(text),
                "sentences": [{"text": text, "source": "org.Hs.eg.db", "ref": "gene_info"}],
            }
            for gene, symbol, text in rows
        ]
    )
    table.to_parquet(tmp_path / "in.parquet")
    params = {
        "neighbours": "string_table",
        "string_table": {"min_combined_score": 700},
        "string_fallback_min_score": None,
        "min_chars": 400,
        "top_k": 3,
        "min_score": 0.1,
        "terms_per_neighbour": 4,
        "excluded_evidence": ["ND"],
    }
    details = enrich.run(
        {
            "gene_text": tmp_path / "in.parquet",
            "string_table": string_edges,
            "org_db": org_db,
            "go_db": go_db,
        },
        {"gene_text": tmp_path / "out.parquet", "report": tmp_path / "report.json"},
        params,
    )
    out = pd.read_parquet(tmp_path / "out.parquet").set_index("symbol")
    assert out.loc["CNN1", "neighbour_source"] == "STRING protein interactions"
    assert (
        out.loc["MIDN", "neighbour_source"] == "Gene Ontology annotation similarity"
    )  # no STRING edge ≥ 700
    assert list(details["still_thin"]) == ["IER5L"] and not out.loc["IER5L", "enriched"]
    report = json.loads((tmp_path / "report.json").read_text())
    assert (
        report["enriched"]["CNN1"]["source"] == "STRING protein interactions"
        and report["thin_genes"] == 3
    )
    assert "string_table or go_similarity" in report["still_thin"]["IER5L"]
    assert not out.loc["MAPK1", "enriched"] and out.loc["MAPK1", "text"] == "x" * 500
    assert out.loc["CNN1", "text"].startswith("CNN1 encodes calponin 1.\n\n[Neighbour context]")
    assert "not direct knowledge of CNN1" in out.loc["CNN1", "text"]
