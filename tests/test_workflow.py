"""End-to-end: real Snakemake runs of the demo in a scratch copy of the project.

Covers the promises of the Foundation issue: the whole pipeline runs on the embedded default, a
finished run has nothing left to do, editing the facet spec or the facet backend reruns the facet stage
and what depends on it but not the knowledge or cell stages, and bad config fails before any work.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml
from demo_project import DOWNSTREAM_OF_FACETS, append_line, planned_jobs, snakemake

from conftest import ROOT

pytestmark = pytest.mark.slow


def test_demo_writes_every_artifact_with_provenance(demo_run):
    _, out = demo_run
    artifacts = [
        "data/dataset.h5ad",
        "data/split.json",
        "data/de_genes.json",
        "data/data_card.json",
        "model/genes/genes.tsv",
        "model/knowledge/gene_text.parquet",
        "model/enrich/gene_text.parquet",
        "model/facets/facets.parquet",
        "model/facets/facets_report.json",
        "model/facet_embed/facet_tensor.safetensors",
        "screen/genes/genes.tsv",
        "screen/facet_embed/facet_tensor.safetensors",
        "cells/control_embeddings.safetensors",
        "train/dygenept/seed0/model.safetensors",
        "train/dygenept_static/seed0/model.json",
        "evaluate/metrics.json",
        "evaluate/predictions.h5ad",
        "report/report.md",
    ]
    for artifact in artifacts:
        path = out / artifact
        assert path.is_file(), artifact
        record = json.loads(path.with_name(path.name + ".provenance.json").read_text())
        assert record["versions"]["torch"] and record["params_sha256"], artifact
        assert all(len(entry["sha256"]) == 64 for entry in record["inputs"].values()), artifact


def test_demo_results_are_complete_and_consistent(demo_run):
    from dygenept.formats.facet_tensor import load_facet_tensor

    _, out = demo_run
    card = json.loads((out / "data/data_card.json").read_text())
    assert (
        card["cells"],
        card["control_cells"],
        card["perturbations"],
        card["singles"],
        card["doubles"],
    ) == (3375, 100, 33, 18, 15)
    assert card["perturbed_genes"] == 31 and card["perturbations_with_fewer_than_10_cells"] == []
    assert card["cells_per_perturbation"] == {"min": 80, "median": 100.0, "max": 100}
    # the model's genes are the 31 perturbed ones; the screen's set holds the three it asks for that
    # were never perturbed (config/demo.yaml 'predict'; KLF1 is the model's)
    genes = pd.read_csv(out / "model/genes/genes.tsv", sep="\t", dtype=str)
    assert len(genes) == 31 and "MAP3K21" in set(genes["symbol"])
    screen_genes = pd.read_csv(out / "screen/genes/genes.tsv", sep="\t", dtype=str)
    assert set(screen_genes["symbol"]) == {"TP53", "GATA1", "MYC"}
    tensor = load_facet_tensor(out / "model/facet_embed/facet_tensor.safetensors")
    k = len(yaml.safe_load((ROOT / "resources" / "facets.yaml").read_text())["facets"])
    assert tensor.embeddings.shape == (31, k, 384)
    # the screen's chain computes its three genes alone
    screen_facets = json.loads((out / "screen/facets/facets.parquet.provenance.json").read_text())[
        "details"
    ]
    assert screen_facets["genes_computed"] == 3
    facets = pd.read_parquet(out / "model/facets/facets.parquet")
    expected_mask = (
        ~facets.pivot(index="entrez_id", columns="facet_index", values="is_none")
        .loc[tensor.entrez_ids]
        .to_numpy()
    )
    assert np.array_equal(tensor.mask, expected_mask)
    assert np.allclose(np.linalg.norm(tensor.embeddings[tensor.mask], axis=-1), 1.0, atol=1e-2)
    assert not tensor.embeddings[~tensor.mask].any()
    provenance = json.loads(
        (out / "model/facet_embed/facet_tensor.safetensors.provenance.json").read_text()
    )
    assert (
        provenance["details"]["weights_sha256"]
        == "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    )
    metrics = json.loads((out / "evaluate/metrics.json").read_text())["summary"]
    assert set(metrics) == {
        "dygenept",
        "dygenept_static",
        "dygenept_softmax",
        "no_change",
        "train_mean",
        "additive",
        "linear",
        "kernel",
        "knn",
        "selected",
        "noise_ceiling",
    }
    test = json.loads((out / "data/split.json").read_text())["test"]
    assert metrics["dygenept"]["all"]["n"] == len(test)
    assert metrics["train_mean"]["all"]["pearson_delta_centred"] == 0.0
    comparisons = json.loads((out / "evaluate/metrics.json").read_text())["comparisons"]
    for label in ("train_mean", "best_baseline"):
        interval = comparisons["methods"]["dygenept"][label]["pearson_delta"]
        assert interval["low"] <= interval["difference"] <= interval["high"]
    table = (out / "report/metrics_table.txt").read_text()
    assert "| dygenept " in table and "| noise_ceiling" in table
    assert "pearson_delta − train_mean" in table
    for figure in ("facet_heatmap", "metric_bars", "de_changes", "cell_facets", "training_curve"):
        assert (out / f"report/{figure}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    predictions = ad.read_h5ad(out / "evaluate/predictions.h5ad")
    assert sorted(predictions.obs["condition"]) == sorted(test)
    assert list(predictions.var_names) == list(ad.read_h5ad(out / "data/dataset.h5ad").var_names)


def test_finished_run_has_nothing_to_do(demo_run):
    project, _ = demo_run
    result = snakemake(project, "--dry-run")
    assert result.returncode == 0, result.stderr[-2000:]
    assert planned_jobs(result) == set()
    assert "Nothing to be done" in result.stdout + result.stderr


def planned_after_editing(project: Path, edited: str) -> set[str]:
    """The jobs a dry run plans after one line is appended to ``edited`` (restored afterwards)."""
    path = project / edited
    original = append_line(path, "\n# an edit\n")
    try:
        result = snakemake(project, "--dry-run")
    finally:
        path.write_text(original)
    assert result.returncode == 0, result.stderr[-2000:]
    return planned_jobs(result)


@pytest.mark.parametrize(
    "edited, expected",
    [
        ("resources/facets.yaml", DOWNSTREAM_OF_FACETS),
        ("workflow/dygenept/facet_backends/go_rules.py", DOWNSTREAM_OF_FACETS),
        # the module that builds the training targets: imported by training, evaluation and the screen only
        (
            "workflow/dygenept/data/perturbations.py",
            {"train", "evaluate", "predict", "report", "all"},
        ),
        # the HTTP layer: the network stage and what depends on it, never the data or cell stages
        ("workflow/dygenept/io/http.py", {"knowledge", "enrich"} | DOWNSTREAM_OF_FACETS),
        (
            "workflow/dygenept/formats/cell_embedding.py",
            {"cells", "train", "evaluate", "predict", "report", "all"},
        ),
        # imported by no stage: the CLI adapter and the import-graph reader
        ("workflow/dygenept/cli.py", set()),
        ("workflow/dygenept/import_graph.py", set()),
    ],
)
def test_editing_code_reruns_exactly_the_stages_that_import_it(demo_run, edited, expected):
    project, _ = demo_run
    assert planned_after_editing(project, edited) == expected


def test_provenance_records_every_source_file_the_stage_ran(demo_run):
    _, out = demo_run
    record = json.loads(
        (out / "train/dygenept/seed0/model.safetensors.provenance.json").read_text()
    )
    code = record["details"]["code"]
    assert {
        "dygenept/stages/train.py",
        "dygenept/data/perturbations.py",
        "dygenept/model/network.py",
    } <= set(code)
    assert not any("stages/evaluate" in path or "http.py" in path for path in code)


def test_changing_one_variant_retrains_only_that_variant(demo_run):
    project, _ = demo_run
    (project / "config" / "variant.yaml").write_text(
        "train:\n  variants:\n    dygenept_softmax: {attention: entmax15}\n"
    )
    result = snakemake(
        project,
        "--dry-run",
        config_files=("config/demo.yaml", "config/test.yaml", "config/variant.yaml"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert planned_jobs(result) == {"train", "evaluate", "report", "all"}
    assert re.search(r"^train\s+1$", result.stdout + result.stderr, re.M)
    assert "train/dygenept_softmax/seed0/model.safetensors" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "override, expected",
    [
        ("train:\n  steps: 0\n", ["steps", "minimum"]),  # the schema
        (
            "knowledge:\n  sources: [refseq_tsv, go]\n  refseq_tsv: {path: null}\n",
            ["knowledge.refseq_tsv.path"],
        ),  # a file source without its file
        # a screen entry that pairs a gene with itself, read while the workflow is parsed
        (
            "predict:\n  perturbations: [TP53, GATA1+gata1]\n",
            ["entry 2 'GATA1+gata1' pairs a gene"],
        ),
    ],
)
def test_bad_config_fails_before_any_job(demo_run, override, expected):
    project, _ = demo_run
    (project / "config" / "bad.yaml").write_text(override)
    result = snakemake(
        project,
        "--dry-run",
        config_files=("config/demo.yaml", "config/test.yaml", "config/bad.yaml"),
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert all(text in output for text in expected) and "Building DAG" not in output


def test_bad_dataset_column_names_the_field_and_leaves_no_artifact(demo_run, tmp_path):
    project, _ = demo_run
    out = tmp_path / "bad_run"
    (project / "config" / "bad_column.yaml").write_text(
        yaml.safe_dump({"outdir": str(out), "dataset": {"perturbation_column": "guide_identity"}})
    )
    result = snakemake(
        project,
        f"{out}/data/dataset.h5ad",
        config_files=("config/demo.yaml", "config/test.yaml", "config/bad_column.yaml"),
    )
    assert result.returncode != 0
    log = (out / "logs" / "dataset.log").read_text()
    assert (
        "no column 'guide_identity'" in log
        and "dataset.perturbation_column" in log
        and "perturbation_raw" in log
    )
    assert not (out / "data" / "dataset.h5ad").exists()


def test_lint_and_format_are_clean():
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    lint = subprocess.run(
        [sys.executable, "-m", "snakemake", "--configfile", "config/demo.yaml", "--lint"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert lint.returncode == 0 and "Lints for" not in lint.stdout + lint.stderr, lint.stdout[
        -3000:
    ]
    fmt = subprocess.run(
        [str(Path(sys.executable).parent / "snakefmt"), "--check", "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert fmt.returncode == 0, fmt.stderr


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]])
def test_python_lint_and_format_are_clean(command):
    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run(
        [str(ruff), *command, "workflow", "tests", "benchmarks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]


@pytest.mark.parametrize(
    "config_file",
    ["config/norman2019.yaml", "config/adamson2016.yaml", "config/norman2019_scperturb.yaml"],
)
def test_published_data_configs_plan_a_verified_fetch(demo_run, config_file):
    project, _ = demo_run
    result = snakemake(
        project, "--dry-run", "--printshellcmds", config_files=(config_file, "config/test.yaml")
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert {"fetch_dataset", "dataset", "genes", "report"} <= planned_jobs(result)
    settings = yaml.safe_load((project / config_file).read_text())["dataset"]
    assert settings["download"]["url"] in result.stdout


def test_user_h5ad_example_names_its_missing_file(demo_run):
    project, _ = demo_run
    result = snakemake(
        project, "--dry-run", config_files=("config/my_data.example.yaml", "config/test.yaml")
    )
    assert result.returncode != 0 and "data/my_screen.h5ad" in result.stdout + result.stderr


def test_gears_source_is_fetched_over_http_then_prepared(demo_run, shared_data, tmp_path):
    """The fetch_dataset → dataset rules, for real, against a loopback server holding GEARS' zip layout."""
    import hashlib
    import io
    import zipfile

    from loopback import FileServer

    project, _ = demo_run
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.write(
            shared_data / "perturbseq" / "scx_norman_subset_50cells.h5ad",
            "norman/perturb_processed.h5ad",
        )
    out = tmp_path / "gears_run"
    with FileServer({"/api/access/datafile/6154020": buffer.getvalue()}) as server:
        settings = {
            "outdir": str(out),
            "dataset": {
                "source": "gears",
                "name": "norman_subset",
                "cache_dir": str(tmp_path / "datasets"),
                "download": {
                    "url": server.url("/api/access/datafile/6154020"),
                    "checksum": "md5:" + hashlib.md5(buffer.getvalue()).hexdigest(),
                    "member": "norman/perturb_processed.h5ad",
                },
                "perturbation_column": "condition",
                "control_values": ["ctrl"],
                "gene_symbol_column": "feature_name",
                "filter": {},
                "expression": "auto",
                "de_genes": 5,
            },
        }
        (project / "config" / "gears.yaml").write_text(yaml.safe_dump(settings))
        result = snakemake(
            project,
            f"{out}/data/data_card.json",
            config_files=("config/test.yaml", "config/gears.yaml"),
        )  # on config.yaml, not the demo
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    card = json.loads((out / "data" / "data_card.json").read_text())
    assert card["cells"] == 50 and card["expression"]["counts_layer"]
    assert (tmp_path / "datasets" / "norman_subset.h5ad.provenance.json").is_file()


def test_settings_of_unselected_sources_rerun_nothing(demo_run):
    project, _ = demo_run
    (project / "config" / "unused.yaml").write_text(
        yaml.safe_dump(
            {
                "knowledge": {"uniprot": {"batch_size": 10}},  # the demo reads GO only
                "enrich": {
                    "string_files": {"min_combined_score": 900}
                },  # and takes GO-similar neighbours
            }
        )
    )
    result = snakemake(
        project,
        "--dry-run",
        config_files=("config/demo.yaml", "config/test.yaml", "config/unused.yaml"),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert planned_jobs(result) == set()


def test_screen_predicts_unseen_genes_and_a_held_out_one_as_evaluation_does(demo_run):
    import anndata as ad

    _, out = demo_run
    predictions = ad.read_h5ad(out / "predict/predictions.h5ad")
    assert set(predictions.obs_names) == {
        "TP53+ctrl",
        "GATA1+ctrl",
        "MYC+ctrl",
        "GATA1+KLF1",
        "KLF1+ctrl",
    }
    measured = ad.read_h5ad(out / "data/dataset.h5ad", backed="r")
    assert predictions.var_names.tolist() == measured.var_names.tolist()
    assert predictions.obs.loc["TP53+ctrl", "unseen_genes"] == "TP53"
    assert all(len(digest) == 64 for digest in predictions.uns["model_weights_sha256"].values())
    # KLF1 alone is a held-out test perturbation: the screen predicts it as evaluation does
    evaluated = ad.read_h5ad(out / "evaluate/predictions.h5ad")
    assert "KLF1+ctrl" in evaluated.obs_names
    np.testing.assert_allclose(
        predictions["KLF1+ctrl"].X.ravel(), evaluated["KLF1+ctrl"].X.ravel(), rtol=1e-5, atol=1e-6
    )
    # the change from control, as a gene ranking per perturbation, gives the screen's top genes
    delta = predictions.to_df(layer="delta").loc["TP53+ctrl"].sort_values(ascending=False)
    explanations = json.loads((out / "predict/explanations.json").read_text())["predicted"]
    assert explanations["TP53+ctrl"]["top_up"] == [g for g in delta.index[:10] if delta[g] > 0]
    facets = explanations["TP53+ctrl"]["facets"]
    assert facets and all(f["gene"] == "TP53" and f["text"] != "NONE" for f in facets)
    screen = pd.read_csv(out / "predict/screen.tsv", sep="\t")
    ranked = screen.dropna(subset=["rank"])
    assert len(screen) == 5 and screen["rank"].isna().tolist() == sorted(screen["rank"].isna())
    assert ranked["rank"].is_monotonic_increasing and (ranked["effect_over_noise"] >= 1).all()
    page = (out / "predict/screen.md").read_text()
    assert predictions.uns["noise_floor"] > 0 and "Noise floor: " in page


def test_facets_rerun_only_for_the_settings_their_backend_reads(demo_run):
    """The other backend's settings rerun nothing; the facet encoder reruns facets only under extractive,
    which embeds sentences with it."""
    project, _ = demo_run
    backend = yaml.safe_load((project / "config" / "demo.yaml").read_text())["facets"]["backend"]
    unused = {
        "extractive": {"facets": {"max_definitions": 5}},
        "go-rules": {"facets": {"extractive": {"min_similarity": 0.9}}},
    }[backend]
    encoder = {"facet_embed": {"encoder": {"max_length": 128}}}
    for edit, expected in [
        (unused, set()),
        (encoder, DOWNSTREAM_OF_FACETS - ({"facets"} if backend == "go-rules" else set())),
    ]:
        (project / "config" / "edit.yaml").write_text(yaml.safe_dump(edit))
        result = snakemake(
            project,
            "--dry-run",
            config_files=("config/demo.yaml", "config/test.yaml", "config/edit.yaml"),
        )
        assert result.returncode == 0, result.stderr[-2000:]
        assert planned_jobs(result) == expected, edit


def test_one_more_screen_gene_computes_only_its_facets_and_trains_nothing(demo_run, tmp_path):
    """The screen's gene set grows by one gene: its chain computes that gene alone (the facet and text
    caches), the model's files stay as they are, and nothing is trained or evaluated again (the report,
    which plots the screen's pairs, is redrawn)."""
    import shutil

    project = tmp_path / "project"
    shutil.copytree(demo_run[0], project, symlinks=True)  # results, caches and Snakemake's records
    out = project / "results" / "demo"
    before = pd.read_parquet(out / "screen/facets/facets.parquet")
    requested = yaml.safe_load((project / "config" / "demo.yaml").read_text())["predict"]
    (project / "config" / "more.yaml").write_text(
        yaml.safe_dump({"predict": {"perturbations": [*requested["perturbations"], "CDK1"]}})
    )
    config_files = ("config/demo.yaml", "config/test.yaml", "config/more.yaml")
    planned = snakemake(project, "--dry-run", config_files=config_files)
    assert planned.returncode == 0, planned.stderr[-3000:]
    chain = {"genes", "knowledge", "enrich", "facets", "facet_embed"}
    # the report reruns too: it plots the screen's pairs on the c1–c2 plane
    assert planned_jobs(planned) == chain | {"predict", "report", "all"}
    # the chain's jobs are the screen's gene set's; the model's files stay as they are
    outputs = re.findall(r"^\s*output: (.*)$", planned.stdout, re.M)
    chain_outputs = [
        line for line in outputs if not re.search(r"results/demo/(predict|report)/", line)
    ]
    assert len(chain_outputs) == 5 and all("results/demo/screen/" in o for o in chain_outputs)
    result = snakemake(project, config_files=config_files)
    assert result.returncode == 0, result.stderr[-3000:]

    def details(artifact: str) -> dict:
        return json.loads((out / f"screen/{artifact}.provenance.json").read_text())["details"]

    facets = details("facets/facets.parquet")
    assert (facets["genes_computed"], facets["genes_computed_ids"]) == (1, ["983"])  # CDK1
    after = pd.read_parquet(out / "screen/facets/facets.parquet")
    assert set(after["symbol"]) - set(before["symbol"]) == {"CDK1"}
    kept = after[after["symbol"] != "CDK1"].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, before)
    new_texts = set(after.loc[~after["is_none"], "text"]) - set(before["text"])
    embedded = details("facet_embed/facet_tensor.safetensors")
    assert new_texts and embedded["texts_encoded"] == len(new_texts)
    predictions = ad.read_h5ad(out / "predict/predictions.h5ad")
    assert predictions.obs.loc["CDK1+ctrl", "unseen_genes"] == "CDK1"


def test_held_out_context_split_runs_end_to_end(demo_run, tmp_path):
    """config/demo_context.yaml: the McFaline-Figueroa part of the demo file (three glioblastoma lines,
    the same nine perturbations in each) with T98G held out. Invariants only: its noise ceiling is near
    zero, so its metrics say nothing about the model."""
    import shutil

    project = tmp_path / "project"
    shutil.copytree(demo_run[0], project, symlinks=True, ignore=shutil.ignore_patterns("results"))
    result = snakemake(
        project, config_files=("config/demo.yaml", "config/test.yaml", "config/demo_context.yaml")
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = project / "results" / "demo_context"
    split = json.loads((out / "data/split.json").read_text())
    assert split["kind"] == "context:T98G" and len(split["test"]) == 9
    assert all(label.endswith("|T98G") for label in split["test"])
    assert not any(label.endswith("|T98G") for label in split["train"] + split["val"])
    assert len(split["test_subgroups"]["seen_in_other_contexts"]) == 9
    card = json.loads((out / "data/data_card.json").read_text())
    assert {c: v["control_cells"] for c, v in card["contexts"].items()} == {
        "A172": 100,
        "T98G": 100,
        "U87MG": 100,
    }
    de_genes = json.loads((out / "data/de_genes.json").read_text())
    assert set(split["test"]) <= set(de_genes)
    summary = json.loads((out / "evaluate/metrics.json").read_text())["summary"]
    assert summary["other_contexts"]["all"]["n"] == 9 and summary["dygenept"]["all"]["n"] == 9
    # each held-out perturbation is predicted from T98G's own 100 control cells
    cells = pd.read_csv(out / "evaluate/cell_facets.csv")
    assert len(cells) == 100 and cells["condition"].str.endswith("|T98G").all()
    predictions = ad.read_h5ad(out / "evaluate/predictions.h5ad")
    assert sorted(predictions.obs["condition"]) == sorted(split["test"])
    assert "other_contexts" in (out / "report/metrics_table.txt").read_text()


def test_cross_validation_scores_every_method_on_the_same_folds(demo_run, tmp_path):
    """config/demo_cv.yaml, with few training steps: every perturbation is held out once, every method
    (each variant and every baseline) is fitted per fold and scores the perturbations of that fold."""
    import shutil

    project = tmp_path / "project"
    shutil.copytree(demo_run[0], project, symlinks=True, ignore=shutil.ignore_patterns("results"))
    (project / "config" / "cv_test.yaml").write_text(
        "train: {steps: 4, eval_every: 2, seeds: [0], variants: {dygenept: {}, "
        "dygenept_static: {attention: mean}}}\nevaluate: {cross_validation: {folds: 3}}\n"
    )
    configs = ("config/demo.yaml", "config/test.yaml", "config/demo_cv.yaml", "config/cv_test.yaml")
    result = snakemake(project, config_files=configs)
    assert result.returncode == 0, result.stderr[-3000:]
    out = project / "results" / "demo_cv"
    folds = json.loads((out / "cv/folds.json").read_text())["folds"]
    split = json.loads((out / "data/split.json").read_text())
    everything = sorted(split["train"] + split["val"] + split["test"] + split["held_out"])
    assert len(folds) == 3 and sorted(c for f in folds for c in f["test"]) == everything
    rows = pd.read_csv(out / "evaluate/per_condition.csv")
    rows = rows[rows["method"] != "noise_ceiling"]
    fold_of = {c: f["name"] for f in folds for c in f["test"]}
    assert (rows["fold"] == rows["condition"].map(fold_of)).all()
    for method in (
        "dygenept",
        "dygenept_static",
        "train_mean",
        "linear",
        "kernel",
        "knn",
        "selected",
    ):
        scored = rows[rows["method"] == method]
        assert sorted(scored["condition"]) == everything, method
    metrics = json.loads((out / "evaluate/metrics.json").read_text())
    assert metrics["protocol"] == "cross_validation" and metrics["folds"] == 3
    assert metrics["summary"]["dygenept"]["all"]["n"] == len(everything)
    assert "best_baseline" in metrics["comparisons"]
    assert not (out / "train").exists()  # the split's models are not trained for cross-validation


# ---- --until, shards, a screen of model genes ------------------------------------------------------

# What `--until <stage>` may plan on a fresh output folder: the stage and what it needs, nothing after.
TEXT_CHAIN = {"dataset", "genes", "knowledge", "enrich", "facets", "facet_embed"}
NETWORK_INPUTS = TEXT_CHAIN | {"cells"}
UNTIL_DEMO = {
    "dataset": {"dataset"},
    "genes": {"dataset", "genes"},
    "knowledge": {"dataset", "genes", "knowledge"},
    "enrich": {"dataset", "genes", "knowledge", "enrich"},
    "facets": TEXT_CHAIN - {"facet_embed"},
    "facet_embed": TEXT_CHAIN,
    "cells": {"dataset", "cells"},
    "train": NETWORK_INPUTS | {"train"},
    "evaluate": NETWORK_INPUTS | {"train", "evaluate"},
    "predict": NETWORK_INPUTS | {"train", "predict"},
    # the report draws the screen's pairs too when the run has a screen (the demo's has)
    "report": NETWORK_INPUTS | {"train", "evaluate", "predict", "report"},
}
# The stages the demo does not run, on config.yaml (an LLM backend, downloads).
UNTIL_REAL = {
    "fetch_dataset": {"fetch_dataset"},
    "fetch_string": {"fetch_string"},
    "fetch_models": {"fetch_models"},
    "facets_llm": {"fetch_dataset", "dataset", "genes", "knowledge", "enrich", "fetch_string"}
    | {"fetch_models", "facets_llm"},
}


def until_plan(project: Path, tmp_path: Path, stage: str, config_files: tuple[str, ...], **extra):
    (project / "config" / "until.yaml").write_text(
        yaml.safe_dump({"outdir": str(tmp_path / "fresh"), **extra})
    )
    result = snakemake(
        project, "--dry-run", "--until", stage, config_files=(*config_files, "config/until.yaml")
    )
    assert result.returncode == 0 and "BUG" not in result.stdout + result.stderr, (
        result.stdout + result.stderr
    )[-3000:]
    return planned_jobs(result)


@pytest.mark.parametrize("stage", sorted(UNTIL_DEMO))
def test_until_stops_after_every_stage_on_a_fresh_run(demo_run, tmp_path, stage):
    """README's `--until <stage>`: the demo's stages, both gene sets, nothing past the stage (it once
    ended in Snakemake's 'Out of jobs ready to be started': the screen's chain waited on the model's)."""
    project, _ = demo_run
    planned = until_plan(project, tmp_path, stage, ("config/demo.yaml", "config/test.yaml"))
    assert stage in planned and planned <= UNTIL_DEMO[stage], planned


@pytest.mark.parametrize("stage", sorted(UNTIL_REAL))
def test_until_stops_after_the_real_configs_own_stages(demo_run, tmp_path, stage):
    project, _ = demo_run
    planned = until_plan(project, tmp_path, stage, ("config/config.yaml", "config/test.yaml"))
    assert stage in planned and planned <= UNTIL_REAL[stage], planned


def test_until_with_shards_plans_the_shards_and_their_gathers(demo_run, tmp_path):
    project, _ = demo_run
    planned = until_plan(
        project, tmp_path, "facet_embed", ("config/demo.yaml", "config/test.yaml"), shards=3
    )
    assert planned == TEXT_CHAIN | {"facets_shard", "facet_embed_shard"}


def test_three_shards_write_the_demos_facets_and_tensors_byte_for_byte(demo_run, tmp_path):
    """config 'shards': 3 on fresh caches: each shard of genes (facets by the extractive backend, then
    the facet encoder) runs as its own job, and the gathered artifacts of both gene sets equal the
    unsharded run's, byte for byte; a shard that failed is the one shard to run again."""
    import hashlib

    project, out = demo_run
    sharded = tmp_path / "sharded"
    caches = {
        section: {"cache_dir": str(tmp_path / "caches" / section)}
        for section in ("knowledge", "facets", "facet_embed")
    }
    (project / "config" / "shards.yaml").write_text(
        yaml.safe_dump({"outdir": str(sharded), "shards": 3, **caches})
    )
    config_files = ("config/demo.yaml", "config/test.yaml", "config/shards.yaml")
    result = snakemake(project, "--until", "facet_embed", config_files=config_files)
    assert result.returncode == 0, result.stderr[-3000:]
    ran = result.stdout + result.stderr
    assert len(re.findall(r"^(?:local)?rule facet_embed_shard:", ran, re.M)) == 6  # 3 a gene set
    for gene_set in ("model", "screen"):
        for artifact in (
            "facets/facets.parquet",
            "facets/facets_report.json",
            "facet_embed/facet_tensor.safetensors",
        ):
            ours, theirs = (
                hashlib.sha256((root / gene_set / artifact).read_bytes()).hexdigest()
                for root in (sharded, out)
            )
            assert ours == theirs, (gene_set, artifact)
    # a shard that failed left no output, and the gathering job did not run: the rerun runs that shard
    # alone, and the gathering
    (sharded / "model" / "facet_embed" / "shards" / "1-of-3.safetensors").unlink()
    (sharded / "model" / "facet_embed" / "facet_tensor.safetensors").unlink()
    rerun = snakemake(project, "--dry-run", "--until", "facet_embed", config_files=config_files)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert planned_jobs(rerun) == {"facet_embed_shard", "facet_embed"}
    planned = rerun.stdout + rerun.stderr
    assert re.search(r"^facet_embed_shard\s+1$", planned, re.M)
    assert "model/facet_embed/shards/1-of-3.safetensors" in planned


def test_a_screen_of_the_models_genes_alone_computes_no_facets(demo_run, tmp_path):
    """A screen's gene set holds only genes the model's set lacks: asking for a trained gene (and a pair
    of them) runs the screen's chain on no gene at all, and predicts them as evaluation does."""
    import shutil

    project = tmp_path / "project"
    shutil.copytree(demo_run[0], project, symlinks=True)
    out = project / "results" / "demo"
    (project / "config" / "trained.yaml").write_text(
        yaml.safe_dump({"predict": {"perturbations": ["KLF1", "HK2+KLF1"]}})
    )
    result = snakemake(
        project, config_files=("config/demo.yaml", "config/test.yaml", "config/trained.yaml")
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(pd.read_csv(out / "screen/genes/genes.tsv", sep="\t")) == 0
    embedded = json.loads(
        (out / "screen/facet_embed/facet_tensor.safetensors.provenance.json").read_text()
    )["details"]
    assert embedded["shape"][0] == 0 and embedded["texts_encoded"] == 0
    predictions = ad.read_h5ad(out / "predict/predictions.h5ad")
    assert set(predictions.obs_names) == {"KLF1+ctrl", "HK2+KLF1"}
