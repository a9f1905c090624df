"""Honest baselines, fitted on the same training perturbations as the model.

Each returns predicted mean expression for a condition, or None where it does not apply.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..data.conditions import condition_genes, parse_context_label
from ..data.perturbations import PerturbationData

Predictor = Callable[[str], np.ndarray | None]


def no_change(data: PerturbationData, train: list[str]) -> Predictor:
    return data.control_mean_of


def train_mean(data: PerturbationData, train: list[str]) -> Predictor:
    """The mean change over all training perturbations, added to control."""
    shift = np.mean([data.change(c) for c in train], axis=0)
    return lambda condition: data.control_mean_of(condition) + shift


def additive(data: PerturbationData, train: list[str]) -> Predictor:
    """Doubles: control + δA + δB where both singles were trained on; None otherwise."""
    singles = {condition_genes(c)[0]: data.change(c) for c in train if len(condition_genes(c)) == 1}

    def predict(condition: str) -> np.ndarray | None:
        genes = condition_genes(condition)
        if len(genes) != 2 or not all(g in singles for g in genes):
            return None
        return data.control_mean_of(condition) + singles[genes[0]] + singles[genes[1]]

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
    targets = np.stack([data.change(c) for c in modelled])
    feature_mean, target_mean = features.mean(axis=0), targets.mean(axis=0)
    centred = features - feature_mean
    weights = np.linalg.solve(
        centred.T @ centred + alpha * np.eye(centred.shape[1]), centred.T @ (targets - target_mean)
    )

    def predict(condition: str) -> np.ndarray | None:
        if condition not in data.facet_rows:
            return None
        return (
            data.control_mean_of(condition)
            + target_mean
            + (mean_facet_features(data, condition) - feature_mean) @ weights
        )

    return predict


def knn(data: PerturbationData, train: list[str], k: int = 5) -> Predictor:
    """kNN: the mean change of the k training perturbations nearest by cosine similarity of their static
    (facet-averaged) gene embeddings."""
    modelled = data.modelled(train)
    features = np.stack([mean_facet_features(data, c) for c in modelled])
    targets = np.stack([data.change(c) for c in modelled])
    unit = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    k = min(k, len(modelled))

    def predict(condition: str) -> np.ndarray | None:
        if condition not in data.facet_rows:
            return None
        query = mean_facet_features(data, condition)
        similarity = unit @ (query / max(np.linalg.norm(query), 1e-12))
        nearest = np.argsort(-similarity, kind="stable")[:k]
        return data.control_mean_of(condition) + targets[nearest].mean(axis=0)

    return predict


def other_contexts(data: PerturbationData, train: list[str]) -> Predictor:
    """Held-out context: the same perturbation's mean change in the training contexts, added to the
    condition's own controls; None for a perturbation no training context measured."""
    changes: dict[str, list[np.ndarray]] = {}
    for condition in train:
        changes.setdefault(parse_context_label(condition)[0], []).append(data.change(condition))

    def predict(condition: str) -> np.ndarray | None:
        perturbation = parse_context_label(condition)[0]
        if perturbation not in changes:
            return None
        return data.control_mean_of(condition) + np.mean(changes[perturbation], axis=0)

    return predict


def make_baselines(data: PerturbationData, train: list[str], params: dict) -> dict[str, Predictor]:
    """Every baseline, fitted on ``train``; params: ``linear_alpha``, ``knn_k``. Data split by context
    also gets ``other_contexts``."""
    baselines = {
        "no_change": no_change(data, train),
        "train_mean": train_mean(data, train),
        "additive": additive(data, train),
        "linear": linear(data, train, params["linear_alpha"]),
        "knn": knn(data, train, params["knn_k"]),
    }
    if data.control_context is not None:
        baselines["other_contexts"] = other_contexts(data, train)
    return baselines
