"""Data sources against real files served over loopback HTTP, gene-name harmonisation, counts detection,
the GEARS single/combo/file splits, and the bad inputs the data issue lists."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from dygenept import cli
from dygenept.data.conditions import CONDITION_KEY, condition_genes
from dygenept.data.splits import (
    SplitSettings,
    gears_list_split,
    make_split,
    split_from_file,
    subgroups_by_seen,
)
from dygenept.data.symbols import SymbolIndex
from dygenept.io.http import DownloadError, parse_checksum
from dygenept.stages import dataset, fetch_dataset

from conftest import DEMO_DATASET_PARAMS, DEMO_H5AD, ROOT, dataset_params
from loopback import FileServer

GEARS_MEMBER = "norman/perturb_processed.h5ad"
GEARS_PARAMS = dataset_params(
    perturbation_column="condition",
    control_values=["ctrl"],
    gene_symbol_column="feature_name",
    de_genes=5,
)
FAST = {"attempts": 3, "timeout_seconds": 5}


@pytest.fixture(scope="module")
def scx(shared_data) -> bytes:
    return (shared_data / "perturbseq" / "scx_norman_subset_50cells.h5ad").read_bytes()


@pytest.fixture(scope="module")
def gears_zip(scx) -> bytes:
    """GEARS' dataverse layout: a zip holding <name>/perturb_processed.h5ad and more."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr(GEARS_MEMBER, scx)
        bundle.writestr("norman/go.csv", "source,target,importance\n")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def symbol_index(org_db) -> SymbolIndex:
    return SymbolIndex.from_db(org_db, ROOT / "resources" / "previous_symbols.tsv")


def md5(data: bytes) -> str:
    return "md5:" + hashlib.md5(data).hexdigest()


def fetch(
    tmp_path: Path,
    url: str,
    checksum: str | None,
    member: str | None = GEARS_MEMBER,
    mirror: str | None = None,
) -> dict:
    params = {
        "source": "gears",
        "name": "norman",
        "download": {
            "url": url,
            "mirror_url": mirror,
            "checksum": checksum,
            "member": member,
            **FAST,
        },
    }
    return fetch_dataset.run({}, {"h5ad": tmp_path / "norman.h5ad"}, params)


# ---- sources over loopback ---------------------------------------------------------------------


def test_gears_zip_is_fetched_verified_and_unpacked_then_canonicalised(
    tmp_path, gears_zip, scx, org_db
):
    with FileServer({"/api/access/datafile/6154020": gears_zip}) as server:
        details = fetch(tmp_path, server.url("/api/access/datafile/6154020"), md5(gears_zip))
    fetched = tmp_path / "norman.h5ad"
    assert (
        fetched.read_bytes() == scx
        and details["download_sha256"] == hashlib.sha256(gears_zip).hexdigest()
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "norman.h5ad"
    ]  # the zip is gone, nothing partial left
    outputs = {
        name: tmp_path / "out" / f"{name}.out" for name in ("h5ad", "split", "de_genes", "card")
    }
    dataset.run({"h5ad": fetched, "org_db": org_db}, outputs, GEARS_PARAMS)
    canonical = ad.read_h5ad(outputs["h5ad"])
    source = ad.read_h5ad(fetched)
    assert list(canonical.var_names) == list(source.var["feature_name"])  # symbols, not Ensembl ids
    assert list(canonical.var["feature_id"]) == list(source.var_names)
    assert "counts" in canonical.layers  # the source's counts layer travels along
    assert "ETS2+ctrl" in set(canonical.obs[CONDITION_KEY]) and "ctrl+ETS2" not in set(
        canonical.obs[CONDITION_KEY]
    )
    card = json.loads(outputs["card"].read_text())
    assert card["cells"] == 50 and card["control_cells"] == 6
    assert card["measured_genes"]["measured"] == 50 and card["measured_genes"]["mapped"] < 50
    assert all(reason for reason in card["measured_genes"]["unmapped"].values())


def test_scperturb_h5ad_is_used_as_downloaded_and_resumes_after_a_broken_transfer(tmp_path):
    payload = DEMO_H5AD.read_bytes()
    path = "/records/10044268/files/NormanWeissman2019_filtered.h5ad"
    with FileServer({path: payload}, faults={path: ["truncate", "503"]}) as server:
        fetch(
            tmp_path, server.url(path), "sha256:" + hashlib.sha256(payload).hexdigest(), member=None
        )
        ranges = [header for _, _, header in server.requests]
    assert (tmp_path / "norman.h5ad").read_bytes() == payload
    resumed_at = int(ranges[-1].removeprefix("bytes=").rstrip("-"))
    assert ranges[0] is None and 0 < resumed_at <= len(payload) // 2  # resumed, not restarted


def test_checksum_mismatch_stops_and_leaves_nothing(tmp_path, gears_zip):
    with (
        FileServer({"/f": gears_zip}) as server,
        pytest.raises(
            DownloadError,
            match=r"md5 .* differs from the pinned 0+ \(config 'dataset.download.checksum'\)",
        ),
    ):
        fetch(tmp_path, server.url("/f"), "md5:" + "0" * 32)
    assert list(tmp_path.iterdir()) == []


def test_mirror_is_tried_when_the_main_url_fails(tmp_path, gears_zip):
    with FileServer({"/mirror/norman.zip": gears_zip}) as server:
        details = fetch(
            tmp_path, server.url("/gone"), md5(gears_zip), mirror=server.url("/mirror/norman.zip")
        )
    assert details["url"].endswith("/mirror/norman.zip") and (tmp_path / "norman.h5ad").is_file()


def test_missing_archive_member_lists_the_h5ad_members(tmp_path, gears_zip):
    with (
        FileServer({"/f": gears_zip}) as server,
        pytest.raises(
            dataset.InputError,
            match=rf"no member 'adamson/perturb_processed.h5ad'.*\['{GEARS_MEMBER}'\]",
        ),
    ):
        fetch(tmp_path, server.url("/f"), None, member="adamson/perturb_processed.h5ad")
    assert not (tmp_path / "norman.h5ad").exists()


def test_bad_checksum_syntax_is_refused():
    with pytest.raises(dataset.InputError, match="md5:<hex> or sha256:<hex>"):
        parse_checksum("crc32:abcd", fetch_dataset.CHECKSUM_FIELD)


# ---- expression --------------------------------------------------------------------------------


def counts_file(tmp_path: Path, scx: bytes, scale: int = 1) -> Path:
    source = ad.read_h5ad(io.BytesIO(scx))
    source.X = source.layers["counts"] * scale
    del source.layers["counts"]
    path = tmp_path / "counts.h5ad"
    source.write_h5ad(path)
    return path


def test_counts_are_detected_normalised_and_kept(tmp_path, scx):
    path = counts_file(tmp_path, scx)
    adata = dataset.load_dataset(path, GEARS_PARAMS)
    assert adata.uns["expression_in_file"] == "counts"
    raw = ad.read_h5ad(path).X
    dense = lambda matrix: matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)  # noqa: E731
    np.testing.assert_array_equal(dense(adata.layers["counts"]), dense(raw))
    totals = dense(raw).sum(1, keepdims=True)
    expected = np.log1p(
        dense(raw) / np.where(totals == 0, 1, totals) * np.median(totals[totals > 0])
    )
    np.testing.assert_allclose(dense(adata.X), expected, rtol=1e-4, atol=1e-5)


def test_counts_declared_as_log_and_log_declared_as_counts_are_refused(tmp_path, scx):
    with pytest.raises(
        dataset.DatasetError, match="looks like raw counts.*Fix: set dataset.expression: counts"
    ):
        dataset.load_dataset(
            counts_file(tmp_path, scx, scale=40), {**GEARS_PARAMS, "expression": "log_normalized"}
        )
    with pytest.raises(dataset.DatasetError, match="says counts, but X is not integral counts"):
        dataset.load_dataset(DEMO_H5AD, {**DEMO_DATASET_PARAMS, "expression": "counts"})


# ---- bad input -----------------------------------------------------------------------------------


def demo_with(tmp_path: Path, edit) -> Path:
    adata = ad.read_h5ad(DEMO_H5AD)
    adata = adata[adata.obs["dataset"] == "norman19"].copy()
    edit(adata)
    path = tmp_path / "edited.h5ad"
    adata.write_h5ad(path)
    return path


def underscore_combinations(adata):
    adata.obs["perturbation"] = adata.obs["perturbation"].astype(str).str.replace("+", "_")


def test_a_separator_that_matches_nothing_names_the_one_in_the_data(tmp_path):
    with pytest.raises(
        dataset.DatasetError,
        match=r"contains the separator '\+'.*but 15 contain '_' \(e.g. \w+_\w+.*separator: '_'",
    ):
        dataset.load_dataset(demo_with(tmp_path, underscore_combinations), DEMO_DATASET_PARAMS)


def test_the_same_double_in_two_orders_is_one_condition(tmp_path):
    def swap_some(adata):
        labels = adata.obs["perturbation"].astype(str).to_numpy()
        first_double = next(label for label in labels if "+" in label)
        a, b = first_double.split("+")
        labels[np.flatnonzero(labels == first_double)[::2]] = f"{b}+{a}"
        adata.obs["perturbation"] = labels

    adata = dataset.load_dataset(demo_with(tmp_path, swap_some), DEMO_DATASET_PARAMS)
    assert adata.obs[CONDITION_KEY].nunique() == 34  # 33 perturbations and ctrl, as before the swap


def test_empty_file_and_missing_batch_column_are_named(tmp_path):
    empty = tmp_path / "empty.h5ad"
    empty.write_bytes(b"")
    with pytest.raises(dataset.DatasetError, match="empty.h5ad: the file is empty"):
        dataset.load_dataset(empty, DEMO_DATASET_PARAMS)
    with pytest.raises(
        dataset.DatasetError,
        match=r"no column 'gem_group' \(config 'dataset.batch_column'\).*perturbation",
    ):
        dataset.load_dataset(DEMO_H5AD, {**DEMO_DATASET_PARAMS, "batch_column": "gem_group"})


def test_duplicate_names_in_the_symbol_column_are_refused(tmp_path, scx):
    source = ad.read_h5ad(io.BytesIO(scx))
    source.var["feature_name"] = ["TP53"] * 2 + list(source.var["feature_name"][2:])
    path = tmp_path / "dup.h5ad"
    source.write_h5ad(path)
    with pytest.raises(
        dataset.DatasetError, match=r"duplicate gene name\(s\) in var\['feature_name'\], e.g. TP53"
    ):
        dataset.load_dataset(path, GEARS_PARAMS)


def test_stage_error_leaves_no_artifact(tmp_path, org_db, capsys):
    path = demo_with(tmp_path, underscore_combinations)
    out = tmp_path / "out"
    args = [
        "dataset",
        "--in",
        f"h5ad={path}",
        "--in",
        f"org_db={org_db}",
        "--out",
        f"h5ad={out / 'd.h5ad'}",
        "--out",
        f"split={out / 's.json'}",
        "--out",
        f"de_genes={out / 'de.json'}",
        "--out",
        f"card={out / 'c.json'}",
        "--params",
        json.dumps({**DEMO_DATASET_PARAMS, "split": {}, "de_genes": 5}),
    ]
    assert cli.main(args) == 2
    assert "separator" in capsys.readouterr().err and not out.exists()


# ---- gene names ------------------------------------------------------------------------------------


def test_old_symbols_map_to_current_ones(symbol_index):
    names = pd.Index(["KIAA1804", "C3orf72", "TP53", "NOT_A_GENE_XYZ"])
    table, report = dataset.harmonise_genes(names, symbol_index, overrides={})
    assert (
        table.loc["KIAA1804", "gene_symbol"] == "MAP3K21"
        and table.loc["KIAA1804", "entrez_id"] == "84451"
    )
    assert table.loc["KIAA1804", "match"] == "previous" and table.loc["C3orf72", "match"] == "alias"
    assert report["renamed"]["KIAA1804"] == "MAP3K21" and "C3orf72" in report["renamed"]
    assert report["unmapped"] == {"NOT_A_GENE_XYZ": "not a symbol or alias in org.Hs.eg.db"}


def test_two_names_of_one_gene_are_reported_as_a_collision(symbol_index):
    table, report = dataset.harmonise_genes(
        pd.Index(["MAP3K21", "KIAA1804", "TP53"]), symbol_index, overrides={}
    )
    assert report["collisions"] == {"84451": ["KIAA1804", "MAP3K21"]}


def test_perturbation_targets_written_with_old_symbols_are_reported_renamed(symbol_index):
    targets = dataset.target_report(
        ["KIAA1804+ctrl", "KIAA1804+TP53", "ctrl"], symbol_index, {}, pd.Index(["TP53"])
    )
    assert targets["renamed"] == {"KIAA1804": "MAP3K21"} and targets["not_measured"] == ["KIAA1804"]
    assert targets["current_symbols"] == ["MAP3K21", "TP53"]


def test_vocabulary_coverage_of_the_scgpt_vocabulary(shared_data):
    vocabulary = shared_data / "vocab" / "scgpt_whole_human_vocab.json"
    coverage = dataset.vocabulary_coverage(
        ["TP53", "KLF1", "NOT_A_GENE_XYZ"], ["KLF1", "NOT_A_GENE_XYZ"], vocabulary
    )
    assert coverage["measured_in_vocabulary"] == 2 and coverage["perturbed_missing"] == [
        "NOT_A_GENE_XYZ"
    ]


# ---- HVG and batches -----------------------------------------------------------------------------


def test_hvg_keeps_the_perturbed_genes_and_controls_are_counted_per_batch(tmp_path):
    adata = dataset.load_dataset(DEMO_H5AD, {**DEMO_DATASET_PARAMS, "batch_column": "cell_type"})
    perturbed = {"TMSB4X"}  # the one target the demo's 500 genes measure
    selected = dataset.select_hvg(adata, 100, keep=perturbed)
    assert 100 <= selected.n_vars <= 100 + len(perturbed) and perturbed <= set(selected.var_names)
    split = make_split(
        adata.obs[CONDITION_KEY].unique().tolist(),
        SplitSettings.from_params(dataset_params()["split"]),
    )
    card = dataset.data_card(adata, "demo", DEMO_DATASET_PARAMS, split)
    assert card["controls_per_batch"] == {"k562": 100}


# ---- splits -----------------------------------------------------------------------------------------


def norman_like(shared_data) -> list[str]:
    lists = json.loads(
        (shared_data / "perturbseq" / "gears_simulation_subgroups_norman.json").read_text()
    )
    return sorted({c for part in lists.values() for cs in part.values() for c in cs})


@pytest.mark.parametrize("kind, seen", [("single", 0), ("combo", 0), ("combo", 1), ("combo", 2)])
def test_single_and_combo_split_invariants(shared_data, kind, seen):
    conditions = norman_like(shared_data)
    split = gears_list_split(conditions, kind, seed=1, test_size=0.1, val_size=0.1, seen=seen)
    parts = [split.train, split.val, split.test, split.held_out]
    assert sorted(sum(parts, [])) == conditions  # every condition in exactly one place
    assert sum(map(len, parts)) == len(set(sum(parts, [])))
    train_genes = {g for c in split.train for g in condition_genes(c)}
    if kind == "single":
        assert all(
            len(condition_genes(c)) == 1 and condition_genes(c)[0] not in train_genes
            for c in split.test
        )
    elif seen == 0:
        assert all(not set(condition_genes(c)) & train_genes for c in split.test)
    elif seen == 2:
        assert all(len(condition_genes(c)) == 2 for c in split.test)
    assert split == gears_list_split(
        conditions, kind, seed=1, test_size=0.1, val_size=0.1, seen=seen
    )
    assert split != gears_list_split(
        conditions, kind, seed=2, test_size=0.1, val_size=0.1, seen=seen
    )


def test_user_split_file_is_checked_against_the_data(tmp_path):
    conditions = ["ctrl", "A+ctrl", "B+ctrl", "A+B", "C+ctrl"]
    good = tmp_path / "split.json"
    good.write_text(
        json.dumps({"train": ["A+ctrl", "B+ctrl"], "val": [], "test": ["A+B", "C+ctrl"]})
    )
    split = split_from_file(good, conditions)
    assert split.test_subgroups["combo_seen2"] == ["A+B"] and split.test_subgroups[
        "unseen_single"
    ] == ["C+ctrl"]
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"train": ["A+ctrl"], "test": ["B+A"]}))
    with pytest.raises(
        dataset.InputError, match=r"unknown.json: 1 condition\(s\) not in the data, e.g. \['B\+A'\]"
    ):
        split_from_file(unknown, conditions)
    overlap = tmp_path / "overlap.json"
    overlap.write_text(json.dumps({"train": ["A+ctrl"], "test": ["A+ctrl"]}))
    with pytest.raises(dataset.InputError, match="in both 'train' and 'test'"):
        split_from_file(overlap, conditions)


def test_subgroups_count_seen_genes():
    groups = subgroups_by_seen(["A+ctrl", "D+ctrl", "A+B", "A+D", "D+E"], {"A", "B"})
    assert groups == {
        "combo_seen0": ["D+E"],
        "combo_seen1": ["A+D"],
        "combo_seen2": ["A+B"],
        "unseen_single": ["D+ctrl"],
        "seen_single": ["A+ctrl"],
    }


@pytest.mark.full_data
@pytest.mark.parametrize("name", ["norman", "adamson"])
def test_seed1_simulation_split_of_the_full_gears_data_matches_the_published_subgroups(
    shared_data, name
):
    """Needs GEARS' own perturb_processed.h5ad (DYGENEPT_FULL_DATA=<dir>/<name>/perturb_processed.h5ad)."""
    path = Path(__import__("os").environ["DYGENEPT_FULL_DATA"]) / name / "perturb_processed.h5ad"
    conditions = ad.read_h5ad(path, backed="r").obs["condition"].astype(str).unique().tolist()
    split = make_split(
        conditions,
        SplitSettings.from_params(dataset_params()["split"]),
    )
    published = json.loads(
        (shared_data / "perturbseq" / f"gears_simulation_subgroups_{name}.json").read_text()
    )
    for ours, theirs in (
        (split.test_subgroups, published["test_subgroup"]),
        (split.val_subgroups, published["val_subgroup"]),
    ):
        assert {k: sorted(ours[k]) for k in theirs} == {k: sorted(v) for k, v in theirs.items()}
