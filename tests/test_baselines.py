"""The baselines on data small enough to compute every prediction by hand (in the comments)."""

import numpy as np
import pytest

from dygenept.data.perturbations import PerturbationData
from dygenept.evaluation.baselines import (
    BaselineSettings,
    additive,
    kernel,
    knn,
    linear,
    make_baselines,
    no_change,
    selected,
    train_mean,
)
from dygenept.formats.cell_embedding import CellEmbedding
from dygenept.formats.facet_tensor import FacetTensor
from dygenept.model.prior import PriorSettings

CONTROL = np.array([[1.0, 2.0, 0.0], [3.0, 2.0, 0.0]], dtype=np.float32)  # mean (2, 2, 0)
D_A = np.array([1.0, 0.0, -1.0])
D_B = np.array([0.0, 2.0, 1.0])
D_AB = np.array([4.0, 4.0, 4.0])


def data() -> PerturbationData:
    # Genes A, B, C with two facets in 2-D. Mean over present facets: A (1, 0), B (0, 1), C (1, 0.2)
    # (B's and C's second facets are NONE: their values must be ignored). U and V have no facet at all:
    # they are unknown (V is not even in the facet tensor).
    embeddings = np.array(
        [[[1, 0], [1, 0]], [[0, 1], [7, 7]], [[1, 0.2], [5, 5]], [[3, 3], [3, 3]]], dtype=np.float32
    )
    mask = np.array([[True, True], [True, False], [True, False], [False, False]])
    facets = FacetTensor(embeddings, mask, ["1", "2", "3", "4"], ["A", "B", "C", "U"], ["f0", "f1"])
    cells = CellEmbedding(np.zeros((2, 1), dtype=np.float32), ["c0", "c1"], "pca")
    control_mean = CONTROL.mean(axis=0)
    means = {
        "A+ctrl": control_mean + D_A,
        "B+ctrl": control_mean + D_B,
        "A+B": control_mean + D_AB,
        "C+ctrl": control_mean + np.array([9.0, 9.0, 9.0]),
        "U+ctrl": control_mean + np.array([5.0, 0.0, 0.0]),
        "V+ctrl": control_mean + np.array([0.0, 5.0, 0.0]),
    }
    rows = {"A+ctrl": [0], "B+ctrl": [1], "A+B": [0, 1], "C+ctrl": [2], "U+ctrl": [3]}
    return PerturbationData(
        ["g0", "g1", "g2"], CONTROL, cells.embeddings, means, rows, facets, cells, {}
    )


# One candidate each, so the hand computations below hold (leave-one-out has nothing to choose).
ONE_ALPHA = PriorSettings(("mean", "ridge", "kernel"), (1.0,), (1.0,))


def test_no_change_predicts_the_control_mean():
    np.testing.assert_allclose(no_change(data(), ["A+ctrl"])("C+ctrl"), [2, 2, 0])


def test_train_mean_adds_the_mean_change_of_the_training_perturbations():
    # (D_A + D_B + D_AB) / 3 = (5, 6, 4) / 3
    predict = train_mean(data(), ["A+ctrl", "B+ctrl", "A+B"])
    np.testing.assert_allclose(predict("C+ctrl"), np.array([2, 2, 0]) + np.array([5, 6, 4]) / 3)


def test_additive_sums_the_singles_changes_for_doubles_only():
    predict = additive(data(), ["A+ctrl", "B+ctrl"])
    np.testing.assert_allclose(predict("A+B"), np.array([2, 2, 0]) + D_A + D_B)  # (3, 4, 0)
    assert predict("A+ctrl") is None
    assert additive(data(), ["A+ctrl"])("A+B") is None  # B's single was not trained on


def test_linear_is_ridge_on_the_facet_averaged_embeddings():
    # Features A (1, 0), B (0, 1); centred ±(0.5, -0.5); centred targets ±h, h = (D_A - D_B) / 2.
    # (XᵀX + I) W = Xᵀ Y with XᵀX = [[.5, -.5], [-.5, .5]] and XᵀY = (h, -h) gives W = (h/2, -h/2).
    # A: (0.5, -0.5) · W = h/2 → mean change + h/2 = (3 D_A + D_B) / 4 (halfway shrunk).
    # C: (1, 0.2) − (0.5, 0.5) = (0.5, −0.3) → 0.5·h/2 + 0.3·h/2 = 0.4 h.
    predict = linear(data(), ["A+ctrl", "B+ctrl"], ONE_ALPHA)
    control, h = np.array([2, 2, 0]), (D_A - D_B) / 2
    np.testing.assert_allclose(predict("A+ctrl"), control + (3 * D_A + D_B) / 4, atol=1e-6)
    np.testing.assert_allclose(predict("C+ctrl"), control + (D_A + D_B) / 2 + 0.4 * h, atol=1e-6)


def test_knn_averages_the_changes_of_the_nearest_training_perturbations():
    # C (1, 0.2) is nearer A (1, 0) than B (0, 1) by cosine.
    one = knn(data(), ["A+ctrl", "B+ctrl"], k=1)
    np.testing.assert_allclose(one("C+ctrl"), np.array([2, 2, 0]) + D_A)
    two = knn(data(), ["A+ctrl", "B+ctrl"], k=5)  # k larger than the training set: all of them
    np.testing.assert_allclose(two("C+ctrl"), np.array([2, 2, 0]) + (D_A + D_B) / 2)


def test_make_baselines_fits_every_baseline_with_its_settings():
    made = make_baselines(data(), ["A+ctrl", "B+ctrl"], BaselineSettings(1, ONE_ALPHA))
    assert list(made) == [
        "no_change", "train_mean", "additive", "linear", "kernel", "knn", "selected",
    ]  # fmt: skip
    np.testing.assert_allclose(made["knn"]("C+ctrl"), np.array([2, 2, 0]) + D_A)
    assert made["linear"]("C+ctrl") == pytest.approx(
        linear(data(), ["A+ctrl", "B+ctrl"], ONE_ALPHA)("C+ctrl")
    )


@pytest.mark.parametrize("unknown", ["U+ctrl", "V+ctrl"])
def test_an_unknown_gene_gets_the_training_mean_from_every_baseline_that_reads_facets(unknown):
    # U has no facet, V is not in the facet tensor: neither shares an identity with anything (kNN once
    # took the first k training perturbations in name order for such a gene).
    train = ["A+ctrl", "B+ctrl", "A+B"]
    mean = train_mean(data(), train)(unknown)
    np.testing.assert_allclose(mean, np.array([2, 2, 0]) + (D_A + D_B + D_AB) / 3)
    for baseline in (
        knn(data(), train, k=1),
        linear(data(), train, ONE_ALPHA),
        kernel(data(), train, ONE_ALPHA),
        selected(data(), train, ONE_ALPHA),
    ):
        np.testing.assert_allclose(baseline(unknown), mean)


def test_unknown_training_perturbations_count_in_the_mean_only():
    # U's change (5, 0, 0) is in the training mean, but kNN never returns it as a neighbour
    train = ["A+ctrl", "B+ctrl", "U+ctrl"]
    np.testing.assert_allclose(
        train_mean(data(), train)("C+ctrl"), np.array([2, 2, 0]) + (D_A + D_B + [5, 0, 0]) / 3
    )
    np.testing.assert_allclose(knn(data(), train, k=1)("C+ctrl"), np.array([2, 2, 0]) + D_A)


def test_the_kernel_baseline_sums_the_trained_singles_of_a_double():
    predict = kernel(data(), ["A+ctrl", "B+ctrl"], ONE_ALPHA)
    np.testing.assert_allclose(predict("A+B"), np.array([2, 2, 0]) + D_A + D_B)
