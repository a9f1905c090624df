"""A finished run from Python (``dygenept.load_run``) gives the numbers the predict stage wrote, the
README's notebook lines run as written, and the genetic-interaction artifacts of the demo: the evaluate
stage's table of test doubles and the screen's pair columns."""

from __future__ import annotations

import json
import re

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from dygenept.errors import InputError

from conftest import ROOT

pytestmark = pytest.mark.slow

DEMO_ENTRIES = ["TP53", "GATA1", "MYC", "GATA1+KLF1", "KLF1"]


@pytest.fixture(scope="module")
def loaded(demo_run):
    import dygenept

    _, out = demo_run
    return dygenept.load_run(out), out


def readme_notebook_lines() -> str:
    """The Python block under the README's 'From a notebook' heading."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## From a notebook", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_object_predicts_what_the_predict_stage_wrote(loaded):
    run, out = loaded
    written = ad.read_h5ad(out / "predict/predictions.h5ad")
    made = run.predict(DEMO_ENTRIES)
    # the same library call on the same batches of control cells: the same float32 bits where torch
    # runs on as many threads as the rule gave the stage (2; on other machines, float rounding)
    assert made.obs_names.tolist() == written.obs_names.tolist()
    np.testing.assert_allclose(made.X, written.X, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(made.layers["delta"], written.layers["delta"], rtol=1e-6, atol=1e-7)
    assert made.var_names.tolist() == written.var_names.tolist()
    pd.testing.assert_frame_equal(
        made.obs.astype(str), written.obs[made.obs.columns].astype(str), check_dtype=False
    )
    # one perturbation alone gives its row of the screen
    alone = run.predict("MYC")
    np.testing.assert_allclose(alone.X[0], written["MYC+ctrl"].X[0], rtol=1e-6, atol=1e-7)


def test_explain_and_interaction_match_the_screens_artifacts(loaded):
    run, out = loaded
    explanations = json.loads((out / "predict/explanations.json").read_text())["predicted"]
    facets = run.explain("TP53")
    assert facets["gene"].eq("TP53").all() and len(facets) == len(run.screen.data.facets.facet_ids)
    assert facets["mean_weight"].is_monotonic_decreasing
    top = facets[facets["present"]].head(len(explanations["TP53+ctrl"]["facets"]))
    for (_, row), written in zip(top.iterrows(), explanations["TP53+ctrl"]["facets"]):
        assert (row["facet"], row["text"]) == (written["facet"], written["text"])
        assert row["mean_weight"] == pytest.approx(written["mean_weight"], abs=5e-5)
        assert row["sd_weight"] == pytest.approx(written["sd_weight"], abs=5e-5)
    scores = run.interaction("GATA1+KLF1")
    screen = pd.read_csv(out / "predict/screen.tsv", sep="\t").set_index("condition")
    for column in ("c1", "c2", "magnitude"):
        assert scores[column] == screen.loc["GATA1+KLF1", column]
    assert scores["gi_types"] == screen.loc["GATA1+KLF1", "gi_types"]
    assert scores["singles"] == {"GATA1": "predicted", "KLF1": "measured"}
    assert explanations["GATA1+KLF1"]["interaction"] == scores.to_dict()


def test_a_gene_without_an_embedding_is_refused_with_the_fix(loaded):
    run, _ = loaded
    with pytest.raises(InputError, match="CDK1") as error:
        run.predict(["TP53", "CDK1"])
    assert "predict.perturbations" in str(error.value) and "rerun the pipeline" in str(error.value)
    with pytest.raises(InputError, match="not a pair"):
        run.interaction("TP53")


def test_a_config_path_loads_the_same_run_and_a_changed_artifact_is_refused(demo_run, tmp_path):
    import shutil

    import dygenept

    project, _ = demo_run
    run = dygenept.load_run(project / "config" / "demo.yaml")
    assert sorted(seed for _, seed in run.screen.models) == [0]
    copy = tmp_path / "project"
    shutil.copytree(project / "results", copy / "results")
    split = copy / "results/demo/data/split.json"
    split.write_text(split.read_text() + " ")
    with pytest.raises(InputError, match="split.json: changed since the predict stage ran"):
        dygenept.load_run(copy / "results/demo")
    with pytest.raises(InputError, match="no in-silico screen"):
        dygenept.load_run(tmp_path)


def test_the_readme_notebook_lines_run_on_the_demo(demo_run, monkeypatch):
    project, out = demo_run
    lines = readme_notebook_lines()
    assert len(lines.strip().splitlines()) == 5
    monkeypatch.chdir(project)
    namespace: dict = {}
    exec(compile(lines, "README.md", "exec"), namespace)
    written = ad.read_h5ad(out / "predict/predictions.h5ad")
    adata = namespace["adata"]
    np.testing.assert_allclose(adata.X, written[adata.obs_names].X, rtol=1e-6, atol=1e-7)
    assert not namespace["facets"].empty and namespace["gi"]["gi_types"]


def test_evaluate_scores_the_test_doubles_with_measured_singles(demo_run):
    _, out = demo_run
    table = pd.read_csv(out / "evaluate/interactions.csv")
    summary = json.loads((out / "evaluate/interactions.json").read_text())
    split = json.loads((out / "data/split.json").read_text())
    measured = set(ad.read_h5ad(out / "data/dataset.h5ad", backed="r").obs["condition"])
    expected = sorted(
        c
        for c in split["test"]
        if "ctrl" not in c and all(f"{g}+ctrl" in measured for g in c.split("+"))
    )
    assert sorted(summary["doubles"]) == expected and len(expected) == 5
    observed = table[table["method"] == "observed"]
    assert sorted(observed["condition"]) == expected
    assert observed["magnitude"].notna().all() and observed["gi_types"].str.len().gt(0).all()
    # the additive baseline exists where both singles were trained on: c1 = c2 = 1, magnitude 1
    additive = table[table["method"] == "additive"]
    assert len(additive) >= 1
    np.testing.assert_allclose(additive[["c1", "c2", "magnitude"]].to_numpy(), 1, atol=1e-3)
    # five doubles are too few to correlate: the summary says so and reports no correlation
    assert not summary["enough_doubles"] and "fewer than" in summary["note"]
    assert all("pearson_magnitude" not in m for m in summary["methods"].values())
    assert set(summary["nonadditive_reliability"]) == set(expected)
    assert all(-1 <= r <= 1 for r in summary["nonadditive_reliability"].values())


def test_screen_pairs_carry_their_interaction(demo_run):
    _, out = demo_run
    screen = pd.read_csv(out / "predict/screen.tsv", sep="\t").set_index("condition")
    assert screen.loc["GATA1+KLF1", ["c1", "c2", "magnitude"]].notna().all()
    assert screen.loc["TP53+ctrl", ["c1", "c2", "magnitude"]].isna().all()
    page = (out / "predict/screen.md").read_text()
    assert "## Genetic interactions of the pairs" in page
    assert "interactions.png" in (out / "report/report.md").read_text()
