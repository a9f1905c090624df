"""Atomic writes, provenance records, and the stage CLI around them (bad input → one line and status 2)."""

import datetime as dt
import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import torch

from dygenept import cli
from dygenept.data.conditions import CONDITION_KEY
from dygenept.io.artifacts import (
    atomic_path,
    build_provenance,
    canonical_json,
    provenance_path,
    read_json,
    sha256_file,
    sha256_text,
    write_json_atomic,
)
from dygenept.stages.dataset import load_dataset

from conftest import DEMO_DATASET_PARAMS, DEMO_H5AD, ROOT, section_params

SHA256_ABC = (
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # FIPS 180-2 test vector
)


def test_sha256_of_a_known_vector(tmp_path):
    (tmp_path / "abc").write_bytes(b"abc")
    assert sha256_file(tmp_path / "abc") == SHA256_ABC == sha256_text("abc")
    big = bytes(range(256)) * 20_000  # several read chunks
    (tmp_path / "big").write_bytes(big)
    assert sha256_file(tmp_path / "big", chunk_size=4096) == hashlib.sha256(big).hexdigest()


def test_atomic_path_keeps_the_old_file_when_the_writer_raises(tmp_path):
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"old weights")
    with pytest.raises(ValueError, match="disk full"), atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_bytes(b"half of the new wei")
        raise ValueError("disk full")
    assert target.read_bytes() == b"old weights"
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def test_atomic_path_replaces_on_success_and_makes_the_directory(tmp_path):
    target = tmp_path / "new" / "dir" / "out.txt"
    with atomic_path(target) as tmp:
        tmp.write_text("complete")
        assert not target.exists()  # nothing under the final name until the writer is done
    assert target.read_text() == "complete" and [p.name for p in target.parent.iterdir()] == [
        "out.txt"
    ]


def test_a_writer_that_writes_nothing_leaves_an_empty_file_not_a_stale_one(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with atomic_path(target):
        pass
    assert target.read_text() == ""


def test_json_round_trip_and_provenance_path(tmp_path):
    write_json_atomic(tmp_path / "a.json", {"b": 1, "a": [1, 2], "p": tmp_path})
    assert (tmp_path / "a.json").read_text().endswith("\n") and read_json(tmp_path / "a.json") == {
        "a": [1, 2],
        "b": 1,
        "p": str(tmp_path),
    }
    assert provenance_path(tmp_path / "genes.tsv") == tmp_path / "genes.tsv.provenance.json"
    assert canonical_json({"b": 1, "a": {"d": 2, "c": 3}}) == '{"a":{"c":3,"d":2},"b":1}'


def test_provenance_hashes_inputs_and_params_and_names_versions(tmp_path):
    (tmp_path / "abc.txt").write_bytes(b"abc")
    record = build_provenance(
        "train",
        {"h5ad": tmp_path / "abc.txt", "absent": tmp_path / "none"},
        {"lr": 0.01, "steps": 5},
        {"n": 1},
    )
    assert record["stage"] == "train" and record["details"] == {"n": 1}
    assert record["inputs"] == {"h5ad": {"path": str(tmp_path / "abc.txt"), "sha256": SHA256_ABC}}
    assert (
        record["params_sha256"]
        == build_provenance("train", {}, {"steps": 5, "lr": 0.01})["params_sha256"]
    )
    assert (
        record["params_sha256"]
        != build_provenance("train", {}, {"steps": 6, "lr": 0.01})["params_sha256"]
    )
    assert record["params_sha256"] == sha256_text('{"lr":0.01,"steps":5}')
    assert (
        record["versions"]["numpy"] == np.__version__
        and record["versions"]["pandas"] == pd.__version__
    )
    assert record["versions"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert dt.datetime.fromisoformat(record["created_utc"]).tzinfo is not None


# ---- the CLI ------------------------------------------------------------------------------------------

DATASET_PARAMS = {**DEMO_DATASET_PARAMS, "de_genes": 5}


def dataset_args(tmp_path, h5ad, params=DATASET_PARAMS, org_db=None):
    ins = ["--in", f"org_db={org_db}"] if org_db else []
    outs = [
        "--out",
        f"h5ad={tmp_path / 'out' / 'dataset.h5ad'}",
        "--out",
        f"split={tmp_path / 'out' / 'split.json'}",
        "--out",
        f"de_genes={tmp_path / 'out' / 'de.json'}",
        "--out",
        f"card={tmp_path / 'out' / 'card.json'}",
    ]
    return ["dataset", "--in", f"h5ad={h5ad}", *ins, *outs, "--params", json.dumps(params)]


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("dygenept ")]


def test_missing_input_is_one_line_and_status_2(tmp_path, capsys):
    status = cli.main(dataset_args(tmp_path, tmp_path / "absent.h5ad"))
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    expected = f"dygenept dataset: error: {tmp_path / 'absent.h5ad'}: file not found. Fix: set config 'dataset.path' to an existing .h5ad."
    assert error_lines(err) == [expected]
    assert not (tmp_path / "out").exists()


def test_wrong_column_is_one_line_naming_the_columns(tmp_path, capsys):
    status = cli.main(
        dataset_args(tmp_path, DEMO_H5AD, {**DATASET_PARAMS, "perturbation_column": "guide"})
    )
    err = capsys.readouterr().err
    [line] = error_lines(err)
    assert status == 2 and "Traceback" not in err
    assert (
        "no column 'guide'" in line
        and "perturbation_raw" in line
        and "dataset.perturbation_column" in line
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["genes", "--params", "{not json"], "--params is not valid JSON"),
        (["genes", "--in", "h5ad"], "--in expects NAME=PATH, got 'h5ad'"),
    ],
)
def test_malformed_arguments_exit_with_a_message(argv, message):
    with pytest.raises(SystemExit, match=message):
        cli.main(argv)


@pytest.fixture(scope="module")
def small_canonical(tmp_path_factory):
    """The demo's control cells and its first four perturbations (old symbols kept: KIAA1804), canonical."""
    adata = load_dataset(
        DEMO_H5AD, {**DEMO_DATASET_PARAMS, "perturbation_column": "perturbation_raw"}
    )
    first = [c for c in pd.unique(adata.obs[CONDITION_KEY].astype(str)) if c != "ctrl"][:4]
    if "KIAA1804+ctrl" not in first:
        first = first[:3] + ["KIAA1804+ctrl"]
    small = adata[adata.obs[CONDITION_KEY].isin(["ctrl", *first]).values].copy()
    path = tmp_path_factory.mktemp("small") / "dataset.h5ad"
    small.write_h5ad(path)
    return path, first


def test_genes_stage_writes_provenance_beside_its_output(tmp_path, small_canonical, org_db, capsys):
    h5ad, conditions = small_canonical
    out = tmp_path / "genes.tsv"
    params = section_params(
        "genes", extra=["ERK"], symbol_overrides={"ERK": "5594"}, screen=[], gene_set="model"
    )
    status = cli.main(
        [
            "genes",
            "--in",
            f"h5ad={h5ad}",
            "--in",
            f"org_db={org_db}",
            "--in",
            f"previous_symbols={ROOT / 'resources' / 'previous_symbols.tsv'}",
            "--out",
            f"genes={out}",
            "--params",
            json.dumps(params),
        ]
    )
    assert status == 0 and "error" not in capsys.readouterr().err
    table = pd.read_csv(out, sep="\t", dtype=str).set_index("query")
    queried = sorted({g for c in conditions for g in c.split("+") if g != "ctrl"} | {"ERK"})
    assert sorted(table.index) == queried
    assert table.loc["KIAA1804", ["symbol", "entrez_id", "match"]].tolist() == [
        "MAP3K21",
        "84451",
        "previous",
    ]
    assert table.loc["ERK", "match"] == "override"
    record = read_json(tmp_path / "genes.tsv.provenance.json")
    assert record["stage"] == "genes" and record["params"] == params
    assert record["inputs"]["h5ad"] == {"path": str(h5ad), "sha256": sha256_file(h5ad)}
    assert set(record["inputs"]) == {"h5ad", "org_db", "previous_symbols"}
    assert (
        record["details"]["mapped"] == len(queried)
        and record["details"]["unmapped"] == []
        and record["details"]["seconds"] >= 0
    )


def test_dataset_stage_writes_every_output_with_one_shared_provenance(
    tmp_path, small_canonical, org_db, capsys
):
    h5ad, conditions = small_canonical
    params = {
        **DATASET_PARAMS,
        "perturbation_column": "condition",
        "control_values": ["ctrl"],
        "filter": {},
    }
    assert cli.main(dataset_args(tmp_path, h5ad, params, org_db)) == 0
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [
            name
            for base in ("dataset.h5ad", "split.json", "de.json", "card.json")
            for name in (base, base + ".provenance.json")
        ]
    )
    records = [
        read_json(out / f"{name}.provenance.json")
        for name in ("dataset.h5ad", "split.json", "de.json", "card.json")
    ]
    assert all(r == records[0] for r in records) and records[0]["inputs"]["h5ad"][
        "sha256"
    ] == sha256_file(h5ad)
    assert set(records[0]["inputs"]) == {"h5ad", "org_db"}
    split = read_json(out / "split.json")
    assert sorted(split["train"] + split["val"] + split["test"]) == sorted(conditions)
    de = read_json(out / "de.json")
    assert sorted(de) == sorted(conditions) and all(len(genes) == 5 for genes in de.values())
    assert read_json(out / "card.json")["perturbations"] == 4


def test_array_files_are_byte_stable_and_round_trip(tmp_path):
    from dygenept.formats.cell_embedding import (
        CellEmbedding,
        load_cell_embedding,
        save_cell_embedding,
    )
    from dygenept.formats.facet_tensor import FacetTensor, load_facet_tensor, save_facet_tensor

    rng = np.random.default_rng(0)
    embedding = CellEmbedding(rng.normal(size=(4, 3)).astype(np.float32), list("abcd"), "pca")
    tensor = FacetTensor(
        rng.normal(size=(2, 3, 5)).astype(np.float16).astype(np.float32),
        rng.random((2, 3)) > 0.5,
        ["7157", "2623"],
        ["TP53", "GATA1"],
        ["f1", "f2", "f3"],
    )
    # safetensors writes a metadata map in hash-map order, which differs between writes: one write in
    # twelve would agree by chance with several keys
    cell_bytes, tensor_bytes = set(), set()
    for i in range(12):
        save_cell_embedding(embedding, tmp_path / f"cells{i}.safetensors")
        save_facet_tensor(tensor, tmp_path / f"facets{i}.safetensors", {"encoder": "minilm"})
        cell_bytes.add((tmp_path / f"cells{i}.safetensors").read_bytes())
        tensor_bytes.add((tmp_path / f"facets{i}.safetensors").read_bytes())
    assert len(cell_bytes) == 1 and len(tensor_bytes) == 1

    loaded = load_cell_embedding(tmp_path / "cells0.safetensors")
    assert np.array_equal(loaded.embeddings, embedding.embeddings)
    assert (loaded.cell_ids, loaded.encoder, loaded.decoder_weight) == (list("abcd"), "pca", None)
    loaded_tensor = load_facet_tensor(tmp_path / "facets0.safetensors")
    assert np.array_equal(loaded_tensor.embeddings, tensor.embeddings)
    assert np.array_equal(loaded_tensor.mask, tensor.mask)
    assert (loaded_tensor.entrez_ids, loaded_tensor.symbols, loaded_tensor.facet_ids) == (
        tensor.entrez_ids,
        tensor.symbols,
        tensor.facet_ids,
    )


def test_an_array_file_from_another_writer_is_refused_with_the_fix(tmp_path):
    from safetensors.numpy import save_file

    from dygenept.formats.cell_embedding import load_cell_embedding

    path = tmp_path / "control_embeddings.safetensors"
    save_file({"embeddings": np.zeros((2, 2), np.float32)}, str(path), metadata={"encoder": "pca"})
    with pytest.raises(ValueError, match="control_embeddings.safetensors.*rerun the stage"):
        load_cell_embedding(path)
