"""The report's figures and captions on small hand-made evaluation outputs: error bars only over several
seeds, each subgroup's n, the few-perturbation subgroups marked, the cell-facet view on a gene with several
facets and its NONE facets named, how the DE panels were chosen, the training loss named, and every
figure's caption (report/*.rst plus what this run shows) under it in report.md and report.html."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dygenept.stages import report
from dygenept.stages.evaluate import MIN_SHOWN_FACETS, cell_facet_choice

from conftest import ROOT

FACETS = ["transcription", "cell_cycle", "metabolism"]


def entry(value: float, n: int, seeds: int, sd: float = 0.05) -> dict:
    metrics = {}
    for metric in report.TABLE_METRICS + ["mse"]:
        metrics[metric], metrics[f"{metric}_sd"] = value, sd
    return {**metrics, "n": n, "seeds": seeds}


def metrics_json(seeds: int) -> dict:
    groups = {"all": 5, "combo_seen0": 1, "unseen_single": 4}
    summary = {
        method: {group: entry(value, n, seeds) for group, n in groups.items()}
        for method, value in [("train_mean", 0.3), ("dygenept", 0.4), ("noise_ceiling", 0.8)]
    }
    summary["additive"] = {"all": entry(0.9, 1, seeds), "combo_seen0": entry(0.9, 1, seeds)}
    history = [{"step": 0, "val_loss": 1.0}, {"step": 1, "loss": 2.0}, {"step": 5, "val_loss": 0.7}]
    training = {
        variant: {str(s): {"history": history, "best_step": 5, "stopped_early": False, "loss": "relative"} for s in range(seeds)}
        for variant in ("dygenept", "dygenept_static")
    }  # fmt: skip
    return {
        "summary": summary,
        "fraction_of_ceiling": {},
        "main_variant": "dygenept",
        "skipped": {},
        "split": {},
        "training": training,
    }


def test_error_bars_only_over_several_seeds_and_intervals_where_the_evaluation_gives_them():
    assert report.bar_error(entry(0.4, 5, seeds=1), "pearson_delta") is None
    assert report.bar_error(entry(0.4, 5, seeds=3), "pearson_delta") == 0.05
    with_interval = {**entry(0.4, 5, seeds=3), "pearson_delta_ci": [0.1, 0.5]}
    assert report.bar_error(with_interval, "pearson_delta") == pytest.approx(0.3)


def test_each_subgroup_is_labelled_with_its_n_and_few_perturbations_are_named(tmp_path):
    metrics = metrics_json(seeds=1)
    methods = ["train_mean", "additive", "dygenept"]
    groups = ["all", "combo_seen0", "unseen_single"]
    # additive covers one perturbation of five: the group keeps the most common n
    assert report.group_sizes(metrics["summary"], methods, groups) == {
        "all": 5,
        "combo_seen0": 1,
        "unseen_single": 4,
    }
    note = report.plot_metric_bars(metrics, tmp_path / "bars.png")
    assert "n per group: all 5, combo_seen0 1, unseen_single 4; one seed: no error bars." in note
    assert f"fewer than {report.FEW_PERTURBATIONS} perturbations (combo_seen0)" in note
    three = report.plot_metric_bars(metrics_json(seeds=3), tmp_path / "bars3.png")
    assert "error bars: sd over seeds" in three and (tmp_path / "bars3.png").stat().st_size > 0


def test_the_cell_facet_view_takes_a_gene_with_several_facets_unless_one_is_asked_for():
    candidates = {
        ("A+ctrl", 0): (1, 5.0),  # one facet: all the weight, whatever the cell
        ("B+C", 0): (MIN_SHOWN_FACETS, 0.2),
        ("B+C", 1): (MIN_SHOWN_FACETS + 2, 0.4),
        ("D+ctrl", 0): (MIN_SHOWN_FACETS, 0.3),
    }
    assert cell_facet_choice(candidates, None) == ("B+C", 1)
    assert cell_facet_choice(candidates, "A+ctrl") == ("A+ctrl", 0)
    assert cell_facet_choice({("A+ctrl", 0): (1, 5.0), ("E+ctrl", 0): (2, 0.1)}, None) == (
        "E+ctrl",
        0,
    )  # no gene has enough: the most facets any has


def test_the_cell_facet_view_names_its_none_facets(tmp_path):
    rng = np.random.default_rng(0)
    cells = pd.DataFrame(rng.dirichlet(np.ones(3), size=20), columns=FACETS)
    cells.insert(0, "cell_state_pc1", rng.normal(size=20))
    cells.insert(0, "gene", "MAPK1")
    cells.insert(0, "condition", "MAPK1+TGFBR2")
    weights = pd.DataFrame(
        {
            "condition": "MAPK1+TGFBR2",
            "gene": "MAPK1",
            "facet": FACETS,
            "has_facet": [False, True, True],
        }
    )
    present = report.present_facets(weights, cells)
    assert present == {"cell_cycle", "metabolism"}
    names = {f: f.replace("_", " ") for f in FACETS}
    note = report.plot_cell_facets(cells, names, present, tmp_path / "cells.png")
    assert note == "MAPK1 in MAPK1+TGFBR2, 2 of 3 facets with text, over 20 control cells."


def test_the_de_panels_say_how_they_were_chosen(tmp_path):
    rows = [
        {"condition": c, "gene": f"G{i}", "rank": i, "observed": size * (i + 1), "dygenept": 0.1}
        for c, size in [("A+ctrl", 0.1), ("B+ctrl", 0.5), ("C+D", 0.3)]
        for i in range(3)
    ]
    changes = pd.DataFrame(rows)
    assert report.de_change_choice(changes, 2) == ["B+ctrl", "C+D"]
    note = report.plot_de_changes(changes, "dygenept", tmp_path / "de.png", n=2)
    assert note == "Shown: B+ctrl, C+D (2 of 3; top 3 DE genes each)."


def test_the_training_curve_names_its_loss(tmp_path):
    note = report.plot_training_curves(metrics_json(1)["training"], "dygenept", tmp_path / "c.png")
    assert note.startswith("Training loss of this run: relative squared error")


def test_every_figure_has_its_caption_in_the_markdown_and_the_html(tmp_path):
    metrics = metrics_json(seeds=1)
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    tables = ("facet_weights", "cell_facets", "de_changes", "interactions")
    for name in tables:
        (tmp_path / f"{name}.csv").write_text("")  # nothing to show: each figure says so
    (tmp_path / "interactions.json").write_text(json.dumps({"n_doubles": 0}))
    inputs = {name: tmp_path / f"{name}.csv" for name in tables}
    inputs |= {
        "metrics": tmp_path / "metrics.json",
        "interactions_summary": tmp_path / "interactions.json",
        "facets_yaml": ROOT / "resources" / "facets.yaml",
    }
    captions = {key: Path(name).stem for key, name in report.FIGURES.items()}  # report/<figure>.rst
    inputs |= {f"caption_{key}": ROOT / "report" / f"{name}.rst" for key, name in captions.items()}
    outputs = {key: tmp_path / "out" / f"{key}.png" for key in report.FIGURES}
    outputs |= {name: tmp_path / "out" / name for name in ("markdown", "html", "table")}
    report.run(inputs, outputs, {})
    markdown, page = outputs["markdown"].read_text(), outputs["html"].read_text()
    for key, name in captions.items():
        first_words = " ".join((ROOT / "report" / f"{name}.rst").read_text().split()[:5])
        assert first_words in markdown and first_words in page, key
    assert markdown.count("\n*") == len(captions) and page.count("<figcaption>") == len(captions)
    assert "n per group: all 5" in markdown and "No trained model" not in markdown
