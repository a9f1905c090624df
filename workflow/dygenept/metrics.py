"""Evaluation metrics on mean expression changes from control (GEARS conventions)."""

from __future__ import annotations

import numpy as np


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; NaN where either side is constant (e.g. the no-change baseline's zero delta)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    xc, yc = x - x.mean(), y - y.mean()
    denominator = np.sqrt((xc * xc).sum() * (yc * yc).sum())
    if denominator == 0:
        return float("nan")
    return float((xc * yc).sum() / denominator)


def perturbation_metrics(
    predicted: np.ndarray, true: np.ndarray, control: np.ndarray, de_index: np.ndarray
) -> dict[str, float]:
    """Metrics of one perturbation's predicted mean expression against the observed mean.

    ``pearson_delta``: Pearson of predicted vs true change from the control mean over all genes;
    ``pearson_delta_de`` the same over the perturbation's top DE genes; ``mse_de`` the squared error of
    expression on those genes; ``mse`` over all genes.
    """
    predicted_delta, true_delta = predicted - control, true - control
    has_de = len(de_index) > 0  # a perturbation with one cell has no DE genes
    return {
        "pearson_delta": pearson(predicted_delta, true_delta),
        "pearson_delta_de": pearson(predicted_delta[de_index], true_delta[de_index])
        if has_de
        else float("nan"),
        "mse_de": float(np.mean((predicted[de_index] - true[de_index]) ** 2))
        if has_de
        else float("nan"),
        "mse": float(np.mean((predicted - true) ** 2)),
    }
