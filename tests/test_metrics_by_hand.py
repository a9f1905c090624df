"""More metric cases, every expected number worked out by hand in the comments."""

import math

import numpy as np
import pytest

from dygenept.metrics import pearson, perturbation_metrics


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
