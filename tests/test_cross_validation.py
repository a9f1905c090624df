"""Cross-validation folds and the paired bootstrap: folds are disjoint, cover every perturbation once per
split seed and keep GEARS' unseen-single constraint; the bootstrap on hand-made differences."""

import numpy as np
import pandas as pd
import pytest

from dygenept.data.conditions import condition_genes, is_single
from dygenept.data.splits import CrossValidationSettings, Fold, cross_validation_folds
from dygenept.errors import InputError
from dygenept.evaluation.bootstrap import (
    MIN_PAIRS,
    BootstrapSettings,
    Interval,
    best_baseline,
    comparisons,
    paired_interval,
    per_perturbation,
    verdict,
)

GENES = [f"G{i}" for i in range(12)]
SINGLES = [f"{g}+ctrl" for g in GENES]
DOUBLES = [f"{GENES[i]}+{GENES[j]}" for i, j in ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (1, 10))]
CONDITIONS = SINGLES + DOUBLES


def settings(scheme="kfold", folds=4, split_seeds=(1,), val_fraction=0.2):
    return CrossValidationSettings(scheme, folds, tuple(split_seeds), val_fraction)


@pytest.mark.parametrize(
    "chosen", [settings(), settings(folds=5, split_seeds=(1, 2)), settings("leave_one_out")]
)
def test_folds_are_disjoint_and_cover_every_perturbation_once_per_split_seed(chosen):
    folds = cross_validation_folds(CONDITIONS, "simulation", chosen)
    for split_seed in chosen.split_seeds:
        tests = [c for fold in folds if fold.split_seed == split_seed for c in fold.split.test]
        assert sorted(tests) == sorted(CONDITIONS)  # each perturbation tested exactly once
    for fold in folds:
        parts = [set(fold.split.train), set(fold.split.val), set(fold.split.test)]
        parts.append(set(fold.split.held_out))
        assert sum(map(len, parts)) == len(CONDITIONS) == len(set.union(*parts))
        assert fold.split.train and fold.split.test


def test_a_test_singles_gene_is_unseen_in_training_under_the_simulation_kind():
    folds = cross_validation_folds(CONDITIONS, "simulation", settings())
    for fold in folds:
        tested = {condition_genes(c)[0] for c in fold.split.test if is_single(c)}
        trained = {g for c in fold.split.train + fold.split.val for g in condition_genes(c)}
        assert not tested & trained
        held = {c for c in fold.split.held_out}
        assert all(tested & set(condition_genes(c)) for c in held)  # only what had to go
        assert set(fold.split.test_subgroups["unseen_single"]) == {
            c for c in fold.split.test if is_single(c)
        }
    assert any(fold.split.held_out for fold in folds)


def test_the_single_kind_tests_singles_only_and_trains_on_the_other_doubles():
    folds = cross_validation_folds(CONDITIONS, "single", settings())
    tested = [c for fold in folds for c in fold.split.test]
    assert sorted(tested) == sorted(SINGLES)
    assert all(any(c in fold.split.train + fold.split.val for fold in folds) for c in DOUBLES)


def test_folds_are_the_same_for_the_same_seed_and_differ_for_another():
    first = cross_validation_folds(CONDITIONS, "simulation", settings())
    again = cross_validation_folds(CONDITIONS, "simulation", settings())
    other = cross_validation_folds(CONDITIONS, "simulation", settings(split_seeds=(2,)))
    assert [f.as_dict() for f in first] == [f.as_dict() for f in again]
    assert [f.split.test for f in first] != [f.split.test for f in other]
    assert [Fold.from_dict(f.as_dict()) for f in first] == first


@pytest.mark.parametrize("kind", ["file", "combo", "context:T98G"])
def test_split_kinds_without_a_fold_version_are_refused(kind):
    with pytest.raises(InputError, match="no fold version"):
        cross_validation_folds(CONDITIONS, kind, settings())


# ---- the paired bootstrap ----------------------------------------------------------------------------

BOOT = BootstrapSettings(resamples=2000, confidence=0.95, seed=0)


def test_a_constant_difference_has_a_zero_width_interval_and_is_better():
    values = np.array([0.5, 0.6, 0.7, 0.8, 0.9])
    interval = paired_interval(values, values - 0.1, BOOT)
    assert interval == Interval(pytest.approx(0.1), pytest.approx(0.1), pytest.approx(0.1), 5)
    assert verdict(interval, "pearson_delta") == "better"
    assert verdict(interval, "mse_de") == "worse"  # a larger error is worse


def test_differences_of_both_signs_give_an_interval_around_zero():
    # differences +1, −1, +1, −1, +1, −1: mean 0; resampled means lie in [−1, 1] and straddle 0
    interval = paired_interval(np.array([1.0, 0.0] * 3), np.array([0.0, 1.0] * 3), BOOT)
    assert interval.difference == 0 and -1 <= interval.low < 0 < interval.high <= 1
    assert verdict(interval, "pearson_delta") == "no difference shown"


def test_the_interval_is_the_percentile_interval_of_resampled_means():
    # nine differences of 0 and one of 1: a resample's mean is (number of draws of the 1) / 10, a
    # Binomial(10, 0.1) / 10; its 2.5% and 97.5% quantiles are 0.0 and 0.3
    values = np.array([1.0] + [0.0] * 9)
    interval = paired_interval(values, np.zeros(10), BootstrapSettings(20000, 0.95, 1))
    assert interval.difference == pytest.approx(0.1)
    assert (interval.low, interval.high) == (pytest.approx(0.0), pytest.approx(0.3))


def test_pairs_with_a_missing_score_are_dropped_and_too_few_give_no_interval():
    values, reference = np.full(6, 0.5), np.full(6, 0.4)
    values[0], reference[1] = np.nan, np.nan  # four pairs left: below MIN_PAIRS
    interval = paired_interval(values, reference, BOOT)
    assert MIN_PAIRS == 5 and interval is None
    assert verdict(interval, "pearson_delta") == "no difference shown"
    interval = paired_interval(
        np.append(values, [0.7, 0.2]), np.append(reference, [0.5, 0.1]), BOOT
    )
    assert interval.n == 6 and interval.difference == pytest.approx((0.4 + 0.2 + 0.1) / 6)


def scores_table() -> pd.DataFrame:
    """Three methods on five perturbations; the model twice (two seeds), averaged per perturbation."""
    rows = []
    for condition, base, model_seeds in (
        ("A", 0.2, (0.5, 0.7)),
        ("B", 0.3, (0.6, 0.6)),
        ("C", 0.1, (0.3, 0.5)),
        ("D", 0.4, (0.6, 0.8)),
        ("E", 0.2, (0.5, 0.5)),
    ):
        rows.append(
            {"method": "train_mean", "seed": 0, "condition": condition, "pearson_delta": base}
        )
        rows.append(
            {"method": "knn", "seed": 0, "condition": condition, "pearson_delta": base + 0.05}
        )
        for seed, value in enumerate(model_seeds):
            rows.append(
                {"method": "model", "seed": seed, "condition": condition, "pearson_delta": value}
            )
    return pd.DataFrame(rows)


def test_per_perturbation_values_average_seeds_and_the_best_baseline_is_found():
    values = per_perturbation(scores_table(), ["pearson_delta"])
    assert values[("pearson_delta", "model")].tolist() == pytest.approx([0.6, 0.6, 0.4, 0.7, 0.5])
    assert best_baseline(values, ["train_mean", "knn"], "pearson_delta") == "knn"


def test_comparisons_give_each_method_its_differences_to_each_reference():
    result = comparisons(
        scores_table(), ["model", "knn"], {"train_mean": "train_mean", "best": "knn"},
        ["pearson_delta"], BOOT,
    )  # fmt: skip
    # model − train_mean per perturbation: 0.4, 0.3, 0.3, 0.3, 0.3 → mean 0.32, every resample ≥ 0.3
    model = result["model"]["train_mean"]["pearson_delta"]
    assert model["difference"] == pytest.approx(0.32) and model["low"] >= 0.3 - 1e-9
    assert model["verdict"] == "better"
    assert result["knn"]["train_mean"]["pearson_delta"]["difference"] == pytest.approx(0.05)
    assert "best" not in result["knn"]  # a method is not compared with itself
