"""The stage CLI: a stage by hand with provenance beside its output, and bad input as one clear line."""

import json

import pandas as pd
import pytest

from dygenept import cli
from dygenept.formats.facet_spec import FacetSpecError, load_facet_specs
from dygenept.io.artifacts import atomic_path, build_provenance, sha256_file
from dygenept.stages.dataset import load_dataset

from conftest import DEMO_DATASET_PARAMS, DEMO_H5AD, ROOT, section_params


def test_genes_stage_by_hand_maps_the_old_symbols_and_records_provenance(tmp_path, org_db):
    # The demo file keeps the original labels in perturbation_raw (KIAA1804 for MAP3K21).
    canonical = load_dataset(
        DEMO_H5AD, {**DEMO_DATASET_PARAMS, "perturbation_column": "perturbation_raw"}
    )
    h5ad = tmp_path / "dataset.h5ad"
    canonical.write_h5ad(h5ad)
    out = tmp_path / "genes.tsv"
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
            json.dumps(section_params("genes", extra=["TP53"], screen=[], gene_set="model")),
        ]
    )
    assert status == 0
    table = pd.read_csv(out, sep="\t", dtype=str).set_index("query")
    assert (
        table.loc["KIAA1804", "symbol"] == "MAP3K21"
        and table.loc["KIAA1804", "match"] == "previous"
    )
    assert table.loc["TP53", "entrez_id"] == "7157" and len(table) == 32
    record = json.loads((tmp_path / "genes.tsv.provenance.json").read_text())
    assert record["stage"] == "genes" and record["inputs"]["h5ad"]["sha256"] == sha256_file(h5ad)
    assert record["details"]["mapped"] == 32 and record["params"]["extra"] == ["TP53"]


def test_bad_input_is_one_line_without_traceback(tmp_path, capsys):
    status = cli.main(
        [
            "dataset",
            "--in",
            f"h5ad={tmp_path / 'absent.h5ad'}",
            "--out",
            f"h5ad={tmp_path / 'o.h5ad'}",
            "--params",
            json.dumps(DEMO_DATASET_PARAMS),
        ]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert "dygenept dataset: error:" in err and "dataset.path" in err and "Traceback" not in err
    assert not (tmp_path / "o.h5ad").exists()


def test_atomic_path_keeps_the_old_artifact_when_the_writer_fails(tmp_path):
    target = tmp_path / "artifact.txt"
    target.write_text("old")
    try:
        with atomic_path(target) as tmp:
            tmp.write_text("half-written")
            raise RuntimeError("crash mid-write")
    except RuntimeError:
        pass
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == [
        "artifact.txt"
    ]


def test_provenance_records_inputs_params_and_versions(tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("x")
    record = build_provenance(
        "demo", {"source": source, "missing": tmp_path / "nope"}, {"k": 1}, {"n": 2}
    )
    assert record["inputs"] == {"source": {"path": str(source), "sha256": sha256_file(source)}}
    assert (
        record["versions"]["numpy"]
        and record["params"] == {"k": 1}
        and len(record["params_sha256"]) == 64
    )


def test_missing_facet_spec_and_missing_database_are_one_line_errors(tmp_path, capsys):
    status = cli.main(
        [
            "genes",
            "--in",
            f"h5ad={DEMO_H5AD}",
            "--in",
            f"org_db={tmp_path / 'absent.sqlite'}",
            "--out",
            f"genes={tmp_path / 'g.tsv'}",
            "--params",
            json.dumps(section_params("genes", screen=[], gene_set="model")),
        ]
    )
    err = capsys.readouterr().err
    assert (
        status == 2
        and "absent.sqlite: annotation database not found" in err
        and "Traceback" not in err
    )
    with pytest.raises(
        FacetSpecError, match=r"facets.yaml: cannot read the facet spec .*config 'facets.spec'"
    ):
        load_facet_specs(tmp_path / "facets.yaml")
