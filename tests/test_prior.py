"""The closed-form priors the network starts from: exact leave-one-out, unknown genes, the additive rule
of the kernel, and the choice by leave-one-out on planted data."""

import numpy as np
import pytest

from dygenept.model.prior import (
    GeneFeature,
    Prior,
    PriorSettings,
    TrainingSet,
    candidates,
    chosen_prior,
    fit_prior,
    loo_changes,
    row_pearson,
    select_prior,
)


def perturbations(features: np.ndarray, keys=None) -> list[tuple[GeneFeature, ...]]:
    keys = keys or [f"g{i}" for i in range(len(features))]
    return [(GeneFeature(key, feature),) for key, feature in zip(keys, features)]


def random_training(n=12, dim=5, genes=30, seed=0, noise=0.1) -> TrainingSet:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(n, dim))
    changes = features @ rng.normal(size=(dim, genes)) + noise * rng.normal(size=(n, genes))
    return TrainingSet(perturbations(features), changes)


@pytest.mark.parametrize(
    "kind, hyper", [("mean", None), ("ridge", 0.3), ("ridge", 10.0), ("kernel", 2.0)]
)
def test_leave_one_out_equals_refitting_without_each_perturbation(kind, hyper):
    training = random_training()
    shortcut = loo_changes(kind, hyper, training)
    for i in range(len(training.changes)):
        rest = [j for j in range(len(training.changes)) if j != i]
        refit = fit_prior(
            kind,
            hyper,
            TrainingSet([training.perturbations[j] for j in rest], training.changes[rest]),
        )
        np.testing.assert_allclose(shortcut[i], refit.change(training.perturbations[i]), atol=1e-8)


def test_ridge_is_the_primal_ridge_solution_with_an_unpenalised_intercept():
    training = random_training()
    prior = fit_prior("ridge", 0.5, training)
    x = np.stack([p[0].feature for p in training.perturbations])
    xc, yc = x - x.mean(0), training.changes - training.changes.mean(0)
    weights = np.linalg.solve(xc.T @ xc + 0.5 * np.eye(x.shape[1]), xc.T @ yc)
    query = (GeneFeature("new", np.ones(x.shape[1])),)
    expected = training.changes.mean(0) + (np.ones(x.shape[1]) - x.mean(0)) @ weights
    np.testing.assert_allclose(prior.change(query), expected, atol=1e-9)


@pytest.mark.parametrize("kind, hyper", [("mean", None), ("ridge", 1.0), ("kernel", 3.0)])
def test_an_unknown_gene_gets_the_training_mean_from_every_prior(kind, hyper):
    training = random_training()
    unknown = TrainingSet(
        training.perturbations + [(GeneFeature("nobody", None),)],
        np.vstack([training.changes, np.full(training.changes.shape[1], 9.0)]),
    )
    prior = fit_prior(kind, hyper, unknown)
    np.testing.assert_allclose(
        prior.change((GeneFeature("other", None),)), unknown.changes.mean(axis=0)
    )
    # unknown training perturbations count in the mean but not in the fit of features
    loo = loo_changes(kind, hyper, unknown)
    np.testing.assert_allclose(loo[-1], training.changes.mean(axis=0))


def test_the_kernel_sums_the_trained_singles_of_a_double_and_retrieves_otherwise():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    training = TrainingSet(
        [(GeneFeature("A", a),), (GeneFeature("B", b),)], np.array([[1.0, 0.0], [0.0, 2.0]])
    )
    prior = fit_prior("kernel", 1.0, training)
    double = (GeneFeature("A", a), GeneFeature("B", b))
    np.testing.assert_allclose(prior.change(double), [1.0, 2.0])
    # a double with an untrained gene: softmax(β cos) retrieval with the summed feature (1, 1)/√2:
    # equal similarity to A and B → the mean of their changes
    other = (GeneFeature("A", a), GeneFeature("C", b))
    np.testing.assert_allclose(prior.change(other), [0.5, 1.0])
    # a single nearer A: weights softmax(β (1, 0)) = (e, 1) / (e + 1)
    w = np.e / (np.e + 1)
    np.testing.assert_allclose(prior.change((GeneFeature("D", a),)), [w, 2 * (1 - w)])


def test_leave_one_out_chooses_the_prior_that_generalises():
    settings = PriorSettings(("mean", "ridge", "kernel"), (0.01, 1.0, 100.0), (1.0, 10.0))
    linear = select_prior(random_training(n=40, noise=0.05), settings)
    assert linear.chosen[1][0] == "ridge"
    assert linear.chosen[2] == linear.chosen[1]  # no training double: the singles' choice
    assert len(linear.scores) == len(candidates(settings)) == 6
    rng = np.random.default_rng(1)  # changes unrelated to the features, around a shared change
    shared = rng.normal(size=30) * 2
    noise = TrainingSet(perturbations(rng.normal(size=(40, 5))), shared + rng.normal(size=(40, 30)))
    assert select_prior(noise, settings).chosen[1][0] == "mean"
    chosen = select_prior(noise, PriorSettings(("mean",), (1.0,), (1.0,)))
    assert chosen.chosen == {1: ("mean", None), 2: ("mean", None)}


def test_singles_and_doubles_each_get_the_prior_that_generalises_for_them():
    # singles: changes unrelated to their features (the mean wins); doubles: the sum of their singles'
    # changes (the kernel's additive rule wins)
    rng = np.random.default_rng(2)
    shared = rng.normal(size=30) * 2
    singles = random_training(n=30, seed=3)
    changes = shared + rng.normal(size=(30, 30))
    pairs = [(i, i + 1) for i in range(0, 28, 2)]
    doubles = [(singles.perturbations[i][0], singles.perturbations[j][0]) for i, j in pairs]
    training = TrainingSet(
        singles.perturbations + doubles,
        np.vstack([changes, [changes[i] + changes[j] for i, j in pairs]]),
    )
    settings = PriorSettings(("mean", "ridge", "kernel"), (1.0,), (1.0,))
    prior, selection = chosen_prior(training, settings)
    assert selection.chosen == {1: ("mean", None), 2: ("kernel", 1.0)}
    np.testing.assert_allclose(prior.change(doubles[0]), changes[0] + changes[1])
    np.testing.assert_allclose(prior.change(singles.perturbations[0]), training.changes.mean(0))
    assert prior.describe() == "singles: mean; doubles: kernel 1"


def test_row_pearson_matches_numpy_and_is_zero_for_a_constant_row():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 8)), rng.normal(size=(3, 8))
    a[2] = 1.0
    expected = [np.corrcoef(a[i], b[i])[0, 1] for i in range(2)] + [0.0]
    np.testing.assert_allclose(row_pearson(a, b), expected)


def test_a_prior_survives_its_saved_form():
    training = random_training()
    prior = Prior({1: fit_prior("ridge", 1.0, training), 2: fit_prior("kernel", 3.0, training)})
    again = Prior.from_saved(prior.meta(), prior.saved_arrays())
    double = (training.perturbations[0][0], training.perturbations[1][0])
    for genes in [*training.perturbations[:3], double]:
        np.testing.assert_array_equal(again.change(genes), prior.change(genes))
    assert again.describe() == "singles: ridge 1; doubles: kernel 3"
