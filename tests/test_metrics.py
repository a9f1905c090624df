"""Metrics on small vectors whose values were worked out by hand (every expected number in the comments),
and a cross-check of pearson_delta, mse, mae and the discrimination score against the installed cell-eval."""

import math

import numpy as np
import pytest

from dygenept.evaluation.metrics import (
    centred_pearson,
    de_overlap,
    discrimination_scores,
    pearson,
    perturbation_metrics,
)


def test_pearson_hand_computed():
    # x - mean = (-1, 0, 1); y - mean = (-7/3, -1/3, 8/3): r = 5 / sqrt(2 * 38/3)
    assert pearson(np.array([1, 2, 3]), np.array([2, 4, 7])) == pytest.approx(
        5 / math.sqrt(2 * 38 / 3)
    )
    assert pearson(np.array([1, 2, 3]), np.array([3, 2, 1])) == pytest.approx(-1.0)


def test_pearson_of_a_constant_is_nan():
    assert math.isnan(pearson(np.zeros(4), np.arange(4.0)))


def test_perturbation_metrics_hand_computed():
    control = np.array([1.0, 1.0, 1.0, 1.0])
    predicted = np.array([2.0, 3.0, 4.0, 1.0])  # delta (1, 2, 3, 0)
    true = np.array([2.0, 3.0, 5.0, 1.0])  # delta (1, 2, 4, 0)
    metrics = perturbation_metrics(predicted, true, control, de_index=np.array([0, 1, 2]))
    assert metrics["pearson_delta"] == pytest.approx(6.5 / math.sqrt(5 * 8.75))
    assert metrics["pearson_delta_de"] == pytest.approx(3 / math.sqrt(2 * 42 / 9))
    assert metrics["mse_de"] == pytest.approx(1 / 3)
    assert metrics["mse"] == pytest.approx(0.25)


def test_no_change_prediction_has_undefined_pearson_but_real_mse():
    control = np.array([1.0, 2.0, 3.0])
    true = np.array([1.5, 2.0, 2.0])
    metrics = perturbation_metrics(control, true, control, de_index=np.array([0, 2]))
    assert math.isnan(metrics["pearson_delta"])
    assert metrics["mse_de"] == pytest.approx((0.25 + 1.0) / 2)


def test_pearson_is_unaffected_by_a_large_offset():
    # Same as (1, 2, 3) vs (2, 4, 7): deviations (-1, 0, 1) and (-7/3, -1/3, 8/3);
    # sum of products 7/3 + 8/3 = 5, sums of squares 2 and 114/9 = 38/3.
    x = np.array([1e8 + 1, 1e8 + 2, 1e8 + 3])
    assert pearson(x, np.array([2, 4, 7])) == pytest.approx(5 / math.sqrt(2 * 38 / 3), rel=1e-12)
    assert pearson(np.array([2, 4, 7]), x) == pytest.approx(5 / math.sqrt(2 * 38 / 3), rel=1e-12)


def test_pearson_of_an_affine_image_is_plus_or_minus_one():
    x = np.array([0.5, -1.0, 2.0, 3.5])
    assert pearson(x, 3 * x + 7) == pytest.approx(1.0)
    assert pearson(x, -0.25 * x + 1) == pytest.approx(-1.0)


def test_pearson_of_integer_lists_uses_float_arithmetic():
    # (1, 2, 3, 4) vs (1, 3, 2, 4): deviations (-1.5, -0.5, 0.5, 1.5) and (-1.5, 0.5, -0.5, 1.5):
    # products 2.25 - 0.25 - 0.25 + 2.25 = 4, squares 5 and 5: r = 4/5.
    assert pearson([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)


@pytest.mark.parametrize(
    "x, y", [([1.0, 2.0, 3.0], [5.0, 5.0, 5.0]), ([2.0, 2.0], [2.0, 2.0]), ([4.0], [1.0])]
)
def test_pearson_is_nan_when_either_side_is_constant(x, y):
    assert math.isnan(pearson(np.array(x), np.array(y)))


PREDICTED_DELTA = np.array([1.0, 2.0, 3.0, 10.0, 0.0])
TRUE_DELTA = np.array([1.0, 2.0, 4.0, 0.0, 0.0])
DE = np.array([0, 1, 2])


@pytest.mark.parametrize("control", [np.zeros(5), np.array([1.0, 2.0, 3.0, 4.0, 5.0])])
def test_perturbation_metrics_on_deltas_from_control(control):
    metrics = perturbation_metrics(control + PREDICTED_DELTA, control + TRUE_DELTA, control, DE)
    # All genes, in n*sum(xy) - sum(x)sum(y) form: sums 16 and 7, sum xy 17, sum x^2 114, sum y^2 21:
    # r = (5*17 - 16*7) / sqrt((5*114 - 16^2) * (5*21 - 7^2)) = -27 / sqrt(314 * 56).
    assert metrics["pearson_delta"] == pytest.approx(-27 / math.sqrt(314 * 56))
    # DE genes (1, 2, 3) vs (1, 2, 4): deviations (-1, 0, 1) and (-4/3, -1/3, 5/3): r = 3 / sqrt(2 * 42/9).
    assert metrics["pearson_delta_de"] == pytest.approx(3 / math.sqrt(2 * 42 / 9))
    assert metrics["mse_de"] == pytest.approx(1 / 3)  # errors 0, 0, 1 on the DE genes
    assert metrics["mse"] == pytest.approx(101 / 5)  # errors 0, 0, 1, 100, 0


def test_genes_outside_the_de_set_move_only_the_all_gene_metrics():
    control = np.zeros(5)
    better = PREDICTED_DELTA.copy()
    better[3] = 0.0  # the one large error, outside the DE set, removed
    before = perturbation_metrics(PREDICTED_DELTA, TRUE_DELTA, control, DE)
    after = perturbation_metrics(better, TRUE_DELTA, control, DE)
    assert (
        after["pearson_delta_de"] == before["pearson_delta_de"]
        and after["mse_de"] == before["mse_de"]
    )
    assert after["mse"] == pytest.approx(1 / 5)
    # (1, 2, 3, 0, 0) vs (1, 2, 4, 0, 0): sums 6 and 7, sum xy 17, sum x^2 14, sum y^2 21:
    # r = (85 - 42) / sqrt((70 - 36) * (105 - 49)) = 43 / sqrt(34 * 56).
    assert after["pearson_delta"] == pytest.approx(43 / math.sqrt(34 * 56))


def test_de_index_may_be_a_boolean_mask_or_in_any_order():
    control = np.zeros(5)
    by_position = perturbation_metrics(PREDICTED_DELTA, TRUE_DELTA, control, DE)
    by_mask = perturbation_metrics(
        PREDICTED_DELTA, TRUE_DELTA, control, np.array([True, True, True, False, False])
    )
    shuffled = perturbation_metrics(PREDICTED_DELTA, TRUE_DELTA, control, np.array([2, 0, 1]))
    assert by_mask == pytest.approx(by_position) and shuffled == pytest.approx(by_position)


def test_a_single_de_gene_has_an_error_but_no_correlation():
    metrics = perturbation_metrics(
        np.array([3.0, 1.0]), np.array([1.0, 1.0]), np.array([1.0, 1.0]), np.array([0])
    )
    assert math.isnan(metrics["pearson_delta_de"])
    assert metrics["mse_de"] == pytest.approx(4.0)  # (3 - 1)^2
    assert metrics["mse"] == pytest.approx(2.0)  # (4 + 0) / 2


def test_a_perfect_prediction():
    control = np.array([0.5, 1.0, 0.0, 2.0])
    true = np.array([1.5, 0.0, 0.0, 2.5])
    metrics = perturbation_metrics(true.copy(), true, control, np.array([0, 1, 3]))
    assert metrics["pearson_delta"] == pytest.approx(1.0) and metrics[
        "pearson_delta_de"
    ] == pytest.approx(1.0)
    assert metrics["mse"] == 0.0 and metrics["mse_de"] == 0.0


# ---- centred pearson (Systema), MAE, DE overlap, direction -----------------------------------------


def test_centred_pearson_measures_changes_from_the_reference():
    reference = np.array([1.0, 1.0, 1.0, 1.0])
    control = np.zeros(4)
    predicted = np.array([2.0, 3.0, 4.0, 1.0])  # change from reference (1, 2, 3, 0)
    true = np.array([2.0, 3.0, 5.0, 1.0])  # (1, 2, 4, 0): r = 6.5 / sqrt(5 * 8.75) as above
    metrics = perturbation_metrics(predicted, true, control, np.array([0, 1, 2]), reference)
    assert metrics["pearson_delta_centred"] == pytest.approx(6.5 / math.sqrt(5 * 8.75))
    assert metrics["pearson_delta_centred_de"] == pytest.approx(3 / math.sqrt(2 * 42 / 9))
    # changes from control instead: (2, 3, 4, 1) vs (2, 3, 5, 1), the same deviations: same r
    assert metrics["pearson_delta"] == pytest.approx(6.5 / math.sqrt(5 * 8.75))


def test_the_reference_itself_scores_zero_centred_whatever_the_truth():
    reference = np.array([0.3, 1.2, 2.0, 0.0])
    true = np.array([1.0, 0.0, 2.5, 0.2])
    metrics = perturbation_metrics(reference + 1e-7, true, np.zeros(4), np.array([0, 1]), reference)
    assert metrics["pearson_delta_centred"] == 0.0 and metrics["pearson_delta_centred_de"] == 0.0
    assert centred_pearson(np.array([0.0, 0.1, 0.0]), np.array([1.0, 2.0, 0.0])) == pytest.approx(
        pearson([0.0, 0.1, 0.0], [1.0, 2.0, 0.0])
    )


def test_mae_direction_and_overlap_by_hand():
    control = np.zeros(6)
    predicted = np.array([3.0, -1.0, 0.5, 0.0, -2.0, 0.1])
    true = np.array([2.0, 1.0, 0.0, 0.0, -3.0, 0.0])
    de = np.array([0, 1, 4])  # observed DE genes
    metrics = perturbation_metrics(predicted, true, control, de)
    assert metrics["mae"] == pytest.approx((1 + 2 + 0.5 + 0 + 1 + 0.1) / 6)
    # signs on DE genes: (+,+), (-,+), (-,-): 2 of 3 right
    assert metrics["direction_de"] == pytest.approx(2 / 3)
    # top-3 predicted |change|: genes 0 (3), 4 (2), 1 (1): all three are DE genes
    assert metrics["de_overlap"] == pytest.approx(1.0)
    assert de_overlap(np.array([0.0, 0.0, 5.0, 0.5, 0.0, 4.0]), de) == pytest.approx(0.0)
    assert de_overlap(np.array([1.0, 0.0, 5.0, 0.0, 0.0, 4.0]), de) == pytest.approx(1 / 3)
    assert math.isnan(de_overlap(np.zeros(6), de))  # no predicted change: no ranking


def test_discrimination_by_hand():
    # Observed changes of three perturbations (rows), control 0; the target gene column is excluded.
    true = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [5.0, 1.0, 1.0]])
    predicted = np.array(
        [
            [
                9.0,
                0.9,
                0.0,
            ],  # gene 0 excluded: L1 to rows = 0.1, 1.9, 1.1 → its own is nearest: rank 0
            [0.0, 1.0, 0.2],  # gene 1 excluded: L1 = 0.2, 0.8, 5.8 → own (row 1) second: rank 1
            [0.0, 1.0, 0.0],  # gene 2 excluded: L1 = 0, 0, 5 → own (row 2) last: rank 2
        ]
    )
    scores = discrimination_scores(predicted, true, np.zeros(3), [[0], [1], [2]])
    np.testing.assert_allclose(scores, [1.0, 1 - 1 / 3, 1 - 2 / 3])
    # a prediction for one perturbation only is still ranked among all three observed
    only = discrimination_scores(predicted[1:2], true, np.zeros(3), [[1]], np.array([1]))
    np.testing.assert_allclose(only, [1 - 1 / 3])


# ---- cross-check against cell-eval ------------------------------------------------------------------


def test_metrics_agree_with_cell_eval():
    cell_eval = pytest.importorskip("cell_eval")
    import anndata as ad
    import pandas as pd
    from cell_eval.metrics import _anndata as ce

    rng = np.random.default_rng(0)
    genes = [f"G{i}" for i in range(30)]
    perturbations = ["G1", "G4", "G7", "G9", "G20"]
    n = 6  # cells per group

    def cells(means):
        rows, labels = [], []
        for label, mean in means.items():
            rows.append(mean + rng.normal(scale=0.3, size=(n, len(genes))))
            labels += [label] * n
        obs = pd.DataFrame({"target": labels}, index=[f"c{i}" for i in range(len(labels))])
        return ad.AnnData(np.vstack(rows), obs=obs, var=pd.DataFrame(index=genes))

    control = rng.normal(2.0, 0.5, size=len(genes))
    real = cells(
        {"non-targeting": control} | {p: control + rng.normal(size=30) for p in perturbations}
    )
    pred = cells(
        {"non-targeting": control} | {p: control + rng.normal(size=30) for p in perturbations}
    )
    pred.X[pred.obs["target"].to_numpy() == "non-targeting"] = real.X[
        real.obs["target"].to_numpy() == "non-targeting"
    ]  # one control, as in DyGenePT's evaluation
    pair = cell_eval.PerturbationAnndataPair(real, pred, "target", "non-targeting")

    def means(adata):
        return {
            label: adata.X[adata.obs["target"].to_numpy() == label].mean(axis=0)
            for label in ["non-targeting", *perturbations]
        }

    real_means, pred_means = means(real), means(pred)
    control_mean = real_means["non-targeting"]
    ours = {
        p: perturbation_metrics(pred_means[p], real_means[p], control_mean, np.array([], int))
        for p in perturbations
    }
    order = sorted(perturbations)  # cell-eval orders perturbations by name
    discrimination = discrimination_scores(
        np.stack([pred_means[p] for p in order]),
        np.stack([real_means[p] for p in order]),
        control_mean,
        [[genes.index(p)] for p in order],
    )
    theirs = {
        "pearson_delta": ce.pearson_delta(pair),
        "mse": ce.mse(pair),
        "mae": ce.mae(pair),
    }
    for metric, values in theirs.items():
        for p in perturbations:
            assert ours[p][metric] == pytest.approx(values[p], rel=1e-6, abs=1e-9), (metric, p)
    theirs_discrimination = ce.discrimination_score(pair, metric="l1")
    np.testing.assert_allclose(discrimination, [theirs_discrimination[p] for p in order])
    assert len(set(np.round(discrimination, 6))) > 1  # not a degenerate fixture


# ---- the summary the tables show -------------------------------------------------------------------


@pytest.mark.parametrize("runs", [((0, 0), (1, 0)), ((0, 1), (0, 2))])
def test_summary_is_the_mean_over_perturbations_then_mean_and_sd_over_runs(runs):
    """A run is a training seed and a split seed: two seeds of one split, or one seed of two splits."""
    import pandas as pd

    from dygenept.evaluation.metrics import METRICS
    from dygenept.stages.evaluate import fraction_of_ceiling, summarise

    rows = []
    # run 1: perturbation means 0.2 and 0.4 → 0.3; run 2: 0.5 and 0.7 → 0.6; mean 0.45, sd 0.3/√2
    for (seed, split_seed), values in zip(runs, ((0.2, 0.4), (0.5, 0.7))):
        for condition, value, group in zip(("A+ctrl", "B+C"), values, ("unseen_single", "combo")):
            rows.append({"method": "m", "seed": seed, "split_seed": split_seed})
            rows[-1] |= {"condition": condition, "subgroup": group}
            rows[-1] |= {metric: value for metric in METRICS}
    for draw in range(3):  # the ceiling: 0.9 on every draw
        for condition, group in (("A+ctrl", "unseen_single"), ("B+C", "combo")):
            rows.append({"method": "noise_ceiling", "seed": draw, "split_seed": 0})
            rows[-1] |= {"condition": condition, "subgroup": group}
            rows[-1] |= {metric: 0.9 for metric in METRICS}
    summary = summarise(pd.DataFrame(rows))
    entry = summary["m"]["all"]
    assert (entry["n"], entry["seeds"]) == (2, 2)
    assert entry["pearson_delta"] == pytest.approx(0.45)
    assert entry["pearson_delta_sd"] == pytest.approx(round(0.3 / math.sqrt(2), 4))
    assert summary["m"]["combo"]["pearson_delta"] == pytest.approx(0.55)  # (0.4 + 0.7) / 2
    assert summary["noise_ceiling"]["all"]["pearson_delta_sd"] == 0.0
    fractions = fraction_of_ceiling(summary)
    assert fractions["m"]["all"]["pearson_delta"] == pytest.approx(0.5)  # 0.45 / 0.9
