"""STRING's official files, served over loopback in STRING's own layout (built from the real v12 edge table in
../shared/data), turned into the Entrez edge table; and what the seven thin-text Norman genes end up with."""

from __future__ import annotations

import gzip
import hashlib
import json

import pandas as pd
import pytest

from dygenept.config_defaults import merged, section_defaults
from dygenept.errors import InputError
from dygenept.io.http import DownloadError
from dygenept.stages import enrich, fetch_string, knowledge

from conftest import DEMO_DATASET_PARAMS, DEMO_H5AD, ROOT, section_params
from loopback import FileServer

FILES = {
    "links": "/download/protein.links.v12.0/9606.protein.links.v12.0.txt.gz",
    "info": "/download/protein.info.v12.0/9606.protein.info.v12.0.txt.gz",
    "aliases": "/download/protein.aliases.v12.0/9606.protein.aliases.v12.0.txt.gz",
}
NAME_ONLY = "7157"  # TP53: its protein gets no Entrez alias, so it maps by preferred name


def protein_id(entrez: str) -> str:
    return f"9606.ENSP{int(entrez):011d}"


@pytest.fixture(scope="module")
def shared_edges(shared_data) -> pd.DataFrame:
    edges = pd.read_csv(
        shared_data / "ppi" / "string_v12_human_entrez_ntm700_top3_400.tsv.gz", sep="\t", dtype=str
    )
    return edges.assign(combined_score=edges["combined_score"].astype(int))


@pytest.fixture(scope="module")
def string_files(shared_edges) -> dict[str, bytes]:
    """The three files in STRING's layout: links both directions, space-separated; info and aliases tab-separated."""
    genes = pd.concat(
        [
            shared_edges[["gene1_entrez", "gene1_symbol"]].set_axis(["entrez", "symbol"], axis=1),
            shared_edges[["gene2_entrez", "gene2_symbol"]].set_axis(["entrez", "symbol"], axis=1),
        ]
    ).drop_duplicates("entrez")
    links = ["protein1 protein2 combined_score"]
    for row in shared_edges.itertuples(index=False):
        links.append(
            f"{protein_id(row.gene1_entrez)} {protein_id(row.gene2_entrez)} {row.combined_score}"
        )
        links.append(
            f"{protein_id(row.gene2_entrez)} {protein_id(row.gene1_entrez)} {row.combined_score}"
        )
    info = ["#string_protein_id\tpreferred_name\tprotein_size\tannotation"]
    aliases = ["#string_protein_id\talias\tsource"]
    for row in genes.itertuples(index=False):
        protein = protein_id(row.entrez)
        info.append(f'{protein}\t{row.symbol}\t400\t{row.symbol} protein; "quoted" annotation.')
        aliases.append(f"{protein}\t{row.symbol}\tBioMart_HUGO Ensembl_HGNC_symbol")
        aliases.append(f"{protein}\t2B{row.entrez[-2:]}\tEnsembl_PDB")
        if row.entrez != NAME_ONLY:
            aliases.append(f"{protein}\t{row.entrez}\tEnsembl_HGNC_entrez_id")
    return {
        FILES[name]: gzip.compress(("\n".join(lines) + "\n").encode())
        for name, lines in (("links", links), ("info", info), ("aliases", aliases))
    }


def settings(
    server: FileServer, checksums: dict[str, str | None] | None = None, min_score: int = 700
) -> dict:
    files = {
        name: {"url": server.url(path), "checksum": (checksums or {}).get(name)}
        for name, path in FILES.items()
    }
    own = {"min_combined_score": min_score, "attempts": 2, "timeout_seconds": 10, **files}
    return {"string_files": merged(section_defaults("enrich")["string_files"], own)}


def test_official_files_become_the_entrez_edge_table(tmp_path, string_files, shared_edges, org_db):
    checksums = {
        name: "sha256:" + hashlib.sha256(string_files[path]).hexdigest()
        for name, path in FILES.items()
    }
    with FileServer(string_files) as server:
        details = fetch_string.run(
            {"org_db": org_db}, {"edges": tmp_path / "edges.tsv.gz"}, settings(server, checksums)
        )
    got = pd.read_csv(
        tmp_path / "edges.tsv.gz", sep="\t", dtype={"gene1_entrez": str, "gene2_entrez": str}
    )
    expected = shared_edges[shared_edges["combined_score"] >= 700]

    def as_pairs(frame):
        pairs = zip(frame["gene1_entrez"], frame["gene2_entrez"], frame["combined_score"])
        return {(min(a, b), max(a, b), s) for a, b, s in pairs}

    assert as_pairs(got) == as_pairs(expected) and len(got) == len(expected)
    assert (got["gene1_entrez"] < got["gene2_entrez"]).all()
    assert (
        details["proteins"]["by_name"] == 1 and details["proteins"]["unmapped"] == 0
    )  # TP53 through its name
    tp53 = got[(got["gene1_entrez"] == NAME_ONLY) | (got["gene2_entrez"] == NAME_ONLY)]
    assert len(tp53) > 10 and set(tp53.loc[tp53["gene1_entrez"] == NAME_ONLY, "gene1_symbol"]) <= {
        "TP53"
    }
    enriched = enrich.read_string_edges(
        tmp_path / "edges.tsv.gz", 700
    )  # the enrich stage reads it as it is
    assert len(enriched) == 2 * len(expected)


def test_a_changed_file_fails_its_pin_and_is_removed(tmp_path, string_files, org_db):
    with (
        FileServer(string_files) as server,
        pytest.raises(
            DownloadError, match=r"sha256 .* differs .*enrich.string_files.info.checksum"
        ),
    ):
        fetch_string.run(
            {"org_db": org_db},
            {"edges": tmp_path / "edges.tsv.gz"},
            settings(server, {"info": "sha256:" + "0" * 64}),
        )
    assert (
        not (tmp_path / "9606.protein.info.v12.0.txt.gz").exists()
        and not (tmp_path / "edges.tsv.gz").exists()
    )


def test_a_truncated_file_is_named(tmp_path, string_files, org_db):
    damaged = {
        **string_files,
        FILES["links"]: string_files[FILES["links"]][: len(string_files[FILES["links"]]) // 2],
    }
    with (
        FileServer(damaged) as server,
        pytest.raises(
            InputError,
            match=r"9606.protein.links.v12.0.txt.gz: damaged or not a STRING file.*Fix: delete it",
        ),
    ):
        fetch_string.run({"org_db": org_db}, {"edges": tmp_path / "edges.tsv.gz"}, settings(server))
    assert not (tmp_path / "edges.tsv.gz").exists()


def test_the_seven_thin_norman_genes_get_neighbour_text_or_a_reason(
    tmp_path, shared_data, org_db, go_db
):
    """RefSeq table + STRING enrichment on the demo's 31 genes: the 7 without a RefSeq summary (CNN1, IER5L,
    MAP3K21, MIDN, SAMD1, SLC38A2, ZBTB10) each get a neighbour paragraph, or the report says why not."""
    from dygenept.data.symbols import SymbolIndex
    from dygenept.stages.dataset import load_dataset
    from dygenept.stages.genes import map_universe, perturbed_genes

    names = perturbed_genes(
        load_dataset(DEMO_H5AD, DEMO_DATASET_PARAMS).obs["condition"].astype(str)
    )
    genes = map_universe(
        names,
        SymbolIndex.from_db(org_db, ROOT / "resources" / "previous_symbols.tsv"),
        {},
        "error",
        "demo",
    )
    genes.to_csv(tmp_path / "genes.tsv", sep="\t", index=False)
    refseq = shared_data / "gene_text" / "refseq_gene_summaries_human_RefSeq220.tsv.gz"
    inputs = {
        "genes": tmp_path / "genes.tsv",
        "org_db": org_db,
        "go_db": go_db,
        "refseq_tsv": refseq,
    }
    knowledge.run(
        inputs,
        {
            "gene_text": tmp_path / "k.parquet",
            "failures": tmp_path / "f.tsv",
            "report": tmp_path / "k.json",
        },
        {**section_params("knowledge", sources=["refseq_tsv", "go"]), "excluded_evidence": ["ND"]},
    )
    text = pd.read_parquet(tmp_path / "k.parquet")
    without_refseq = set(text.loc[~text["sources"].map(lambda s: "RefSeq" in s), "symbol"])
    assert len(text) == 31 and without_refseq == {
        "CNN1",
        "IER5L",
        "MAP3K21",
        "MIDN",
        "SAMD1",
        "SLC38A2",
        "ZBTB10",
    }
    params = {**section_params("enrich", neighbours="string_table"), "excluded_evidence": ["ND"]}
    enrich.run(
        {
            "gene_text": tmp_path / "k.parquet",
            "string_table": shared_data / "ppi" / "string_v12_human_entrez_ntm700_top3_400.tsv.gz",
            "refseq_tsv": refseq,
            "org_db": org_db,
            "go_db": go_db,
        },
        {"gene_text": tmp_path / "e.parquet", "report": tmp_path / "e.json"},
        params,
    )
    report = json.loads((tmp_path / "e.json").read_text())
    out = pd.read_parquet(tmp_path / "e.parquet").set_index("symbol")
    before = text.set_index("symbol")["n_chars"]
    for symbol in sorted(
        without_refseq
    ):  # GO text alone, a neighbour paragraph, or a stated reason
        print(
            symbol,
            before[symbol],
            "→",
            out.loc[symbol, "n_chars"],
            report["enriched"].get(symbol) or report["still_thin"].get(symbol, "GO text"),
        )
        if before[symbol] >= params["min_chars"]:
            assert not out.loc[symbol, "enriched"]
        elif symbol in report["enriched"]:
            assert (
                "[Neighbour context]" in out.loc[symbol, "text"]
                and out.loc[symbol, "n_chars"] > before[symbol]
            )
        else:
            assert "no neighbour in string_table or go_similarity" in report["still_thin"][symbol]
    assert report["enriched"]["CNN1"]["source"] == "STRING protein interactions"
    # IER5L has no GO annotation and no STRING partner ≥ 700: its one medium-confidence partner (THEG, now SPMAP2) stands in.
    assert (
        report["enriched"]["IER5L"]["neighbours"] == ["THEG (0.42)"] and report["still_thin"] == {}
    )
    assert (
        set(report["enriched"]) | set(report["still_thin"]) <= without_refseq
    )  # genes with RefSeq text are not thin
