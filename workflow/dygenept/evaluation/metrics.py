"""Evaluation metrics on mean expression per perturbation: one definition for the whole project.

For one test perturbation with predicted mean expression ``p``, observed mean ``t`` (over its cells),
control mean ``c``, reference ``r`` (the mean over training perturbations of their mean expression, i.e.
the train_mean baseline's prediction) and its top DE genes ``D`` (t-test against control, as GEARS ranks
them; stored by the dataset stage):

=========================  ==========================================================================
``pearson_delta``          Pearson(p − c, t − c) over all genes (GEARS)
``pearson_delta_de``       the same over D (GEARS)
``pearson_delta_centred``  Pearson(p − r, t − r) over all genes: Systema's centred score. The train_mean
                           baseline predicts r, a constant change: it scores 0 by definition, so a
                           positive score is perturbation-specific signal
``pearson_delta_centred_de`` the same over D
``mse``, ``mse_de``        mean (p − t)² over all genes / over D (GEARS' mse_de)
``mae``                    mean |p − t| over all genes (cell-eval's ``mae``)
``de_overlap``             |top-|D| genes by |p − c| ∩ D| / |D|: do the largest predicted changes fall on
                           the observed DE genes (undefined for a prediction with no change)
``direction_de``           share of D where sign(p − c) = sign(t − c)
``discrimination``         the Virtual Cell Challenge's perturbation discrimination score (cell-eval's
                           ``discrimination_score_l1``): rank the observed changes t_q − c of all N test
                           perturbations q by L1 distance to p − c, over all genes except the perturbed
                           ones; with r the 0-based rank of the true perturbation, 1 − r/N (1 is best)
=========================  ==========================================================================

``pearson_delta``, ``mse``, ``mae`` and ``discrimination`` agree with cell-eval 0.8's implementation (checked
in ``tests/test_metrics.py`` against the installed package).
"""

from __future__ import annotations

import numpy as np

PER_PERTURBATION = (
    "pearson_delta",
    "pearson_delta_de",
    "pearson_delta_centred",
    "pearson_delta_centred_de",
    "mse",
    "mse_de",
    "mae",
    "de_overlap",
    "direction_de",
)
METRICS = (*PER_PERTURBATION, "discrimination")


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; NaN where either side is constant (e.g. the no-change baseline's zero delta)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    xc, yc = x - x.mean(), y - y.mean()
    denominator = np.sqrt((xc * xc).sum() * (yc * yc).sum())
    if denominator == 0:
        return float("nan")
    return float((xc * yc).sum() / denominator)


# Below this (expression units), a predicted change from the reference is float32 rounding, not signal.
CONSTANT_TOLERANCE = 1e-5


def centred_pearson(predicted_change: np.ndarray, true_change: np.ndarray) -> float:
    """Pearson of changes from the reference; 0 for a prediction that does not differ from it."""
    if np.ptp(np.asarray(predicted_change, dtype=np.float64)) <= CONSTANT_TOLERANCE:
        return 0.0
    return pearson(predicted_change, true_change)


def _nan() -> float:
    return float("nan")


def perturbation_metrics(
    predicted: np.ndarray,
    true: np.ndarray,
    control: np.ndarray,
    de_index: np.ndarray,
    reference: np.ndarray | None = None,
) -> dict[str, float]:
    """Every per-perturbation metric of the module docstring (``reference`` defaults to control)."""
    predicted = np.asarray(predicted, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    reference = control if reference is None else reference
    predicted_delta, true_delta = predicted - control, true - control
    de_index = np.arange(len(true))[de_index] if len(de_index) else np.array([], dtype=int)
    has_de = len(de_index) > 0  # a perturbation with one cell has no DE genes
    centred_predicted, centred_true = predicted - reference, true - reference
    metrics = {
        "pearson_delta": pearson(predicted_delta, true_delta),
        "pearson_delta_centred": centred_pearson(centred_predicted, centred_true),
        "mse": float(np.mean((predicted - true) ** 2)),
        "mae": float(np.mean(np.abs(predicted - true))),
    }
    if not has_de:
        return metrics | {
            "pearson_delta_de": _nan(),
            "pearson_delta_centred_de": _nan(),
            "mse_de": _nan(),
            "de_overlap": _nan(),
            "direction_de": _nan(),
        }
    return metrics | {
        "pearson_delta_de": pearson(predicted_delta[de_index], true_delta[de_index]),
        "pearson_delta_centred_de": centred_pearson(
            centred_predicted[de_index], centred_true[de_index]
        ),
        "mse_de": float(np.mean((predicted[de_index] - true[de_index]) ** 2)),
        "de_overlap": de_overlap(predicted_delta, de_index),
        "direction_de": float(
            np.mean(np.sign(predicted_delta[de_index]) == np.sign(true_delta[de_index]))
        ),
    }


def de_overlap(predicted_delta: np.ndarray, de_index: np.ndarray) -> float:
    """Share of the observed DE genes among the |D| genes with the largest predicted |change|."""
    if not np.any(predicted_delta):
        return _nan()
    k = len(de_index)
    top = np.argsort(-np.abs(predicted_delta), kind="stable")[:k]
    return len(set(top.tolist()) & set(np.asarray(de_index).tolist())) / k


def discrimination_scores(
    predicted: np.ndarray,
    true: np.ndarray,
    control: np.ndarray,
    excluded: list[np.ndarray],
    target: np.ndarray | None = None,
) -> np.ndarray:
    """The perturbation discrimination score of each predicted row among N observed perturbations.

    ``true`` (N, G): observed mean expression of every test perturbation; ``predicted`` (M, G) the
    predictions of M ≤ N of them, ``target[i]`` the row of ``true`` that prediction i is for (default: the
    same row). ``excluded[i]``: the gene indices left out for prediction i (its perturbed genes).
    ``control``: one control mean (G,), or one per row of ``true`` (N, G).
    """
    control = np.asarray(control, dtype=np.float64)
    target = np.arange(len(predicted)) if target is None else np.asarray(target)
    predicted_delta = np.asarray(predicted, dtype=np.float64) - (
        control if control.ndim == 1 else control[target]
    )
    true_delta = np.asarray(true, dtype=np.float64) - control
    n, n_genes = true_delta.shape
    scores = np.empty(len(predicted_delta))
    for i, own in enumerate(target):
        include = np.ones(n_genes, dtype=bool)
        include[np.asarray(excluded[i], dtype=int)] = False
        distances = np.abs(true_delta[:, include] - predicted_delta[i, include]).sum(axis=1)
        rank = int(np.flatnonzero(np.argsort(distances) == own)[0])
        scores[i] = 1 - rank / n
    return scores
