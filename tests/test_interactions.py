"""Genetic-interaction scores on hand-made vectors where each type is planted, the robust fit and the
distance correlation against what they must give, and the evaluate table on a small real dataset."""

from __future__ import annotations

import numpy as np
import pytest

from dygenept.evaluation.interactions import (
    ADDITIVE,
    InteractionSettings,
    distance_correlation,
    gene_pairs,
    gi_types,
    interaction_scores,
    spatial_median,
    theil_sen_two,
    top_k_accuracy,
    well_expressed,
)

from conftest import section_params

SETTINGS = InteractionSettings.from_params(section_params("interactions"))
N = 400


@pytest.fixture
def singles():
    """Two independent single-perturbation changes over N genes, of equal spread."""
    rng = np.random.default_rng(7)
    return rng.standard_normal(N), rng.standard_normal(N)


def scores_and_types(a, b, ab):
    scores = interaction_scores(a, b, ab, SETTINGS)
    return scores, gi_types(scores, SETTINGS)


def test_additive_pair_has_magnitude_one_and_no_type(singles):
    a, b = singles
    scores, types = scores_and_types(a, b, a + b)
    assert scores.c1 == pytest.approx(1, abs=1e-6) and scores.c2 == pytest.approx(1, abs=1e-6)
    assert scores.magnitude == pytest.approx(1, abs=1e-6)
    assert scores.corr_fit == pytest.approx(1, abs=1e-9)
    assert scores.eq_contr > 0.8 and scores.dcor < 0.2
    assert types == [ADDITIVE]


def test_synergy_and_suppressor_from_the_magnitude(singles):
    a, b = singles
    strong, types = scores_and_types(a, b, 1.6 * a + 1.4 * b)
    assert (strong.c1, strong.c2) == pytest.approx((1.6, 1.4), abs=1e-6)
    assert strong.magnitude == pytest.approx(np.sqrt((1.6**2 + 1.4**2) / 2)) and types == [
        "synergy"
    ]
    weak, types = scores_and_types(a, b, 0.5 * a + 0.6 * b)
    assert weak.magnitude == pytest.approx(np.sqrt((0.25 + 0.36) / 2)) and types == ["suppressor"]


def test_neomorphic_double_is_fit_robustly_but_poorly_explained(singles):
    """A new programme on a fifth of the genes: Theil–Sen still finds c1 = c2 = 1 (least squares would
    not), and the fit explains the double badly."""
    a, b = singles
    new = np.zeros(N)
    new[::5] = np.random.default_rng(3).standard_normal(N // 5) * 6
    scores, types = scores_and_types(a, b, a + b + new)
    assert (scores.c1, scores.c2) == pytest.approx((1, 1), abs=0.05)
    assert scores.corr_fit < SETTINGS.neomorphic_corr_fit and "neomorphic" in types


def test_redundant_singles_are_alike(singles):
    a, _ = singles
    b = a + np.random.default_rng(5).standard_normal(N) * 0.1
    scores, types = scores_and_types(a, b, a)
    assert scores.dcor > SETTINGS.redundant_dcor and "redundant" in types


def test_epistasis_one_gene_masks_the_other(singles):
    a, b = singles
    scores, types = scores_and_types(a, b, a)
    assert (scores.c1, scores.c2) == pytest.approx((1, 0), abs=1e-6)
    assert scores.eq_contr < SETTINGS.epistasis_eq_contr
    # one gene's effect alone is also a weaker double than the sum: both types apply
    assert types == ["suppressor", "epistasis"]


def test_distance_correlation_by_hand_and_its_limits():
    x = np.array([0.0, 1.0, 2.0])
    assert distance_correlation(x, 3 * x - 2) == pytest.approx(1)
    assert distance_correlation(x, np.ones(3)) == 0.0
    rng = np.random.default_rng(0)
    u = rng.standard_normal(2000)
    assert distance_correlation(u, u**2) > 0.3  # dependence Pearson cannot see
    assert distance_correlation(u, rng.standard_normal(2000)) < 0.1


def test_distance_correlation_blocks_agree_with_whole_matrices():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal(1500), rng.standard_normal(1500) + 0.3 * np.arange(1500) / 1500
    a, b = np.abs(x[:, None] - x), np.abs(y[:, None] - y)

    def centred(m):
        return m - m.mean(0) - m.mean(1)[:, None] + m.mean()

    whole = (
        np.sqrt((centred(a) * centred(b)).mean())
        / ((centred(a) ** 2).mean() * (centred(b) ** 2).mean()) ** 0.25
    )
    assert distance_correlation(x, y) == pytest.approx(whole, rel=1e-9)


def test_theil_sen_resists_outliers_and_draws_pairs_reproducibly():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal(3000), rng.standard_normal(3000)
    y = 0.7 * a - 0.4 * b
    y[:600] += 50  # a fifth of the samples corrupted
    c1, c2 = theil_sen_two(a, b, y, most_pairs=20_000, seed=0)
    assert (c1, c2) == pytest.approx((0.7, -0.4), abs=0.05)
    assert theil_sen_two(a, b, y, 20_000, 0) == (c1, c2)
    first, second = gene_pairs(3000, 20_000, seed=0)
    assert len(first) == 20_000 and (first < second).all()
    assert len(set(zip(first.tolist(), second.tolist()))) == 20_000
    assert len(gene_pairs(10, 100, seed=0)[0]) == 45  # all pairs when they fit


def test_silent_singles_give_no_fit_and_no_type():
    zeros = np.zeros(50)
    scores = interaction_scores(zeros, zeros, zeros, SETTINGS)
    assert np.isnan(scores.c1) and np.isnan(scores.magnitude) and np.isnan(scores.corr_fit)
    assert gi_types(scores, SETTINGS) == [ADDITIVE]


def test_spatial_median_of_a_symmetric_cross_is_its_centre():
    points = np.array([[0, 0], [2, 0], [1, 1], [1, -1], [1, 0], [30, 30]], dtype=float)
    assert spatial_median(points) == pytest.approx([1, 0], abs=1e-4)


def test_well_expressed_takes_the_top_share_and_never_a_silent_gene():
    control = np.array([0.0, 3.0, 0.5, 2.0, 0.0, 1.0])
    assert well_expressed(control, 0.5).tolist() == [1, 3, 5]
    assert well_expressed(control, 1.0).tolist() == [1, 2, 3, 5]


def test_top_k_accuracy_counts_the_shared_top_doubles():
    import pandas as pd

    observed = pd.Series([3.0, 2.0, 1.0, 0.0], index=list("wxyz"))
    predicted = pd.Series([0.0, 5.0, 4.0, 1.0], index=list("wxyz"))
    assert top_k_accuracy(observed, predicted, high=True, k=2) == 0.5  # {w, x} vs {x, y}
    assert top_k_accuracy(observed, predicted, high=False, k=1) == 0.0  # z vs w


def planted_dataset(path, genes=60, cells=40, seed=0):
    """Control cells, singles A and B, a synergistic double A+B (1.5·(a + b)) and an additive double
    A+C: every cell its condition's mean plus noise. Returns the PerturbationData the evaluate stage
    would hold (only the parts genetic interactions read) and the written h5ad."""
    import anndata as ad
    import pandas as pd

    from dygenept.data.perturbations import PerturbationData

    rng = np.random.default_rng(seed)
    control = rng.uniform(1, 3, genes)
    a, b, c = (rng.standard_normal(genes) for _ in range(3))
    means = {
        "ctrl": control, "A+ctrl": control + a, "B+ctrl": control + b, "C+ctrl": control + c,
        "A+B": control + 1.5 * (a + b), "A+C": control + a + c,
    }  # fmt: skip
    labels = [name for name in means for _ in range(cells)]
    x = np.stack([means[name] for name in labels]) + rng.standard_normal((len(labels), genes)) * 0.3
    obs = pd.DataFrame({"condition": labels, "control": [name == "ctrl" for name in labels]})
    obs.index = obs.index.astype(str)
    ad.AnnData(x.astype(np.float32), obs=obs).write_h5ad(path)
    observed = {name: x[np.array(labels) == name].mean(0) for name in means}
    data = PerturbationData(
        [f"g{i}" for i in range(genes)], x[obs["control"].to_numpy()], np.zeros((cells, 1)),
        {k: v for k, v in observed.items() if k != "ctrl"}, {}, None, None, {},
    )  # fmt: skip
    return data, observed


def test_evaluate_table_scores_observed_and_predicted_doubles(tmp_path):
    from dygenept.evaluation.interactions import evaluate_interactions

    data, observed = planted_dataset(tmp_path / "planted.h5ad")
    control = data.control_mean
    predictions = {
        "exact": {0: {"A+B": observed["A+B"], "A+C": observed["A+C"]}},
        "additive": {0: {d: control + data.change(f"{d[0]}+ctrl") + data.change(f"{d[2]}+ctrl")
                         for d in ("A+B", "A+C")}},
    }  # fmt: skip
    settings = InteractionSettings.from_params(
        section_params("interactions", expressed_fraction=1.0, min_doubles=2, top_k=1)
    )
    table, summary = evaluate_interactions(
        data, ["A+B", "A+C", "B+ctrl"], predictions, tmp_path / "planted.h5ad", settings
    )
    rows = table.set_index(["method", "condition"])
    assert summary["doubles"] == ["A+B", "A+C"] and summary["enough_doubles"]
    assert rows.loc[("observed", "A+B"), "magnitude"] == pytest.approx(1.5, abs=0.1)
    assert "synergy" in rows.loc[("observed", "A+B"), "gi_types"]
    assert rows.loc[("observed", "A+C"), "magnitude"] == pytest.approx(1.0, abs=0.1)
    np.testing.assert_allclose(rows.loc["additive", ["c1", "c2", "magnitude"]], 1, atol=1e-3)
    scores = rows.drop(columns="gi_types")
    np.testing.assert_allclose(scores.loc["exact"], scores.loc["observed"], atol=1e-4)
    exact = summary["methods"]["exact"]
    assert exact["magnitude_abs_error"] < 1e-3 and exact["top_k_accuracy"]["synergy"] == 1.0
    # the planted interaction survives a half-split; the additive double's residual is noise
    reliability = summary["nonadditive_reliability"]
    assert reliability["A+B"] > 0.8 and abs(reliability["A+C"]) < 0.3
    tiny = InteractionSettings.from_params(section_params("interactions", expressed_fraction=1.0))
    _, few = evaluate_interactions(data, ["A+B"], {}, tmp_path / "planted.h5ad", tiny)
    assert not few["enough_doubles"] and "fewer than" in few["note"]


def test_screen_lists_strongest_synergies_and_suppressions_and_the_report_plots_them(tmp_path):
    import pandas as pd

    from dygenept.evaluation.in_silico import interaction_markdown, strongest_interactions
    from dygenept.stages.report import plot_interactions

    records = [
        {"condition": "A+B", "c1": 1.5, "c2": 1.3, "magnitude": 1.40, "gi_types": "synergy"},
        {"condition": "A+C", "c1": 0.5, "c2": 0.4, "magnitude": 0.45, "gi_types": "suppressor"},
        {
            "condition": "B+C",
            "c1": 1.6,
            "c2": 1.6,
            "magnitude": 1.60,
            "gi_types": "synergy;neomorphic",
        },
        {"condition": "D+ctrl", "c1": None, "c2": None, "magnitude": None, "gi_types": ""},
    ]
    synergies, suppressions = strongest_interactions(records, count=5)
    assert [r["condition"] for r in synergies] == ["B+C", "A+B"]
    assert [r["condition"] for r in suppressions] == ["A+C"]
    explanations = {
        r["condition"]: {"interaction": {"singles": {"A": "measured", "B": "predicted"}}}
        for r in records
    }
    page = interaction_markdown(records, explanations, count=1)
    assert "| B+C | 1.60 | 1.60 | 1.60 | synergy;neomorphic | A: measured, B: predicted |" in page
    assert "A+B" not in page  # only the strongest one of each kind
    table = pd.DataFrame(
        [
            {"condition": "A+B", "method": m, "magnitude": v}
            for m, v in (("observed", 1.4), ("dygenept", 1.1), ("additive", 1.0))
        ]
    )
    path = tmp_path / "gi.png"
    note = plot_interactions(table, pd.DataFrame(records), "dygenept", path)
    assert path.read_bytes().startswith(b"\x89PNG")
    assert note == (
        "Drawn: 1 held-out double(s) with measured singles; the screen's 3 pair(s) on the c1–c2 plane."
    )
    note = plot_interactions(pd.DataFrame(), pd.DataFrame(), "dygenept", tmp_path / "none.png")
    assert (tmp_path / "none.png").stat().st_size > 0 and note.endswith("nothing to draw.")
