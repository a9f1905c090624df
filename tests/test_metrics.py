"""Metrics on small vectors whose values were worked out by hand."""

import math

import numpy as np
import pytest

from dygenept.metrics import pearson, perturbation_metrics


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
