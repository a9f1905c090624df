"""Honest baselines, fitted on the same training perturbations as the model.

Each returns predicted mean expression for a condition, or None where it does not apply.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .conditions import condition_genes
from .perturbations import PerturbationData

Predictor = Callable[[str], np.ndarray | None]


def no_change(data: PerturbationData, train: list[str]) -> Predictor:
    control = data.control_mean
    return lambda condition: control


def train_mean(data: PerturbationData, train: list[str]) -> Predictor:
    """The mean change over all training perturbations, added to control."""
    shift = np.mean([data.true_mean(c) - data.control_mean for c in train], axis=0)
    prediction = data.control_mean + shift
    return lambda condition: prediction


def additive(data: PerturbationData, train: list[str]) -> Predictor:
    """Doubles: control + δA + δB where both singles were trained on; None otherwise."""
    singles = {
        condition_genes(c)[0]: data.true_mean(c) - data.control_mean
        for c in train
        if len(condition_genes(c)) == 1
    }

    def predict(condition: str) -> np.ndarray | None:
        genes = condition_genes(condition)
        if len(genes) != 2 or not all(g in singles for g in genes):
            return None
        return data.control_mean + singles[genes[0]] + singles[genes[1]]

    return predict


def mean_facet_features(data: PerturbationData, condition: str) -> np.ndarray:
    """A gene's mean embedding over its present facets (zero if it has none), summed over the genes."""
    vectors = []
    for row in data.facet_rows[condition]:
        mask = data.facets.mask[row]
        vectors.append(
            data.facets.embeddings[row][mask].mean(axis=0)
            if mask.any()
            else np.zeros(data.facets.embeddings.shape[-1])
        )
    return np.sum(vectors, axis=0)


def linear(data: PerturbationData, train: list[str], alpha: float = 1.0) -> Predictor:
    """Linear: ridge regression from the static (facet-averaged) gene embedding to the change."""
    modelled = data.modelled(train)
    features = np.stack([mean_facet_features(data, c) for c in modelled])
    targets = np.stack([data.true_mean(c) - data.control_mean for c in modelled])
    feature_mean, target_mean = features.mean(axis=0), targets.mean(axis=0)
    centred = features - feature_mean
    weights = np.linalg.solve(
        centred.T @ centred + alpha * np.eye(centred.shape[1]), centred.T @ (targets - target_mean)
    )

    def predict(condition: str) -> np.ndarray | None:
        if condition not in data.facet_rows:
            return None
        return (
            data.control_mean
            + target_mean
            + (mean_facet_features(data, condition) - feature_mean) @ weights
        )

    return predict


def knn(data: PerturbationData, train: list[str], k: int = 5) -> Predictor:
    """kNN: the mean change of the k training perturbations nearest by cosine similarity of their static
    (facet-averaged) gene embeddings."""
    modelled = data.modelled(train)
    features = np.stack([mean_facet_features(data, c) for c in modelled])
    targets = np.stack([data.true_mean(c) - data.control_mean for c in modelled])
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    k = min(k, len(modelled))

    def predict(condition: str) -> np.ndarray | None:
        if condition not in data.facet_rows:
            return None
        query = mean_facet_features(data, condition)
        similarity = unit @ (query / max(np.linalg.norm(query), 1e-12))
        nearest = np.argsort(-similarity, kind="stable")[:k]
        return data.control_mean + targets[nearest].mean(axis=0)

    return predict


def other_contexts_mean(
    means: dict[tuple[str, str], np.ndarray],
    control_means: dict[str, np.ndarray],
    train: list[tuple[str, str]],
) -> Callable[[str, str], np.ndarray | None]:
    """Held-out context: the same perturbation's mean change from control in the training contexts,
    added to the held-out context's control mean; None for a perturbation no training context has.

    ``means[(condition, context)]``: observed mean expression; ``control_means[context]``: its controls.
    """
    changes: dict[str, list[np.ndarray]] = {}
    for condition, context in train:
        changes.setdefault(condition, []).append(
            means[(condition, context)] - control_means[context]
        )

    def predict(condition: str, context: str) -> np.ndarray | None:
        if condition not in changes:
            return None
        return control_means[context] + np.mean(changes[condition], axis=0)

    return predict


def make_baselines(data: PerturbationData, train: list[str], params: dict) -> dict[str, Predictor]:
    """Every baseline, fitted on ``train``; params: ``linear_alpha``, ``knn_k``."""
    return {
        "no_change": no_change(data, train),
        "train_mean": train_mean(data, train),
        "additive": additive(data, train),
        "linear": linear(data, train, params["linear_alpha"]),
        "knn": knn(data, train, params["knn_k"]),
    }
