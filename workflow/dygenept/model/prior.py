"""Closed-form predictors of a perturbation's mean change from its genes' static embeddings: the simple
baselines, and the prior the network starts from.

A gene's static embedding is the mean of its present facet embeddings; a gene with no facet is *unknown*
and has none. A perturbation's feature is the sum over its known genes (None when every gene is unknown).
Each predictor is fitted on the training perturbations' mean changes (from their own controls):

=========  =======================================================================================
``mean``   the mean change of the training perturbations (the ``train_mean`` baseline)
``ridge``  ridge regression from the feature to the change, with an unpenalised intercept (GenePert)
``kernel`` ``Σ_i softmax(β · cos(x, x_i)) δ_i`` over the training perturbations i with a feature; a
           double whose two singles were trained on gets the sum of their changes (additive)
=========  =======================================================================================

A perturbation without a feature gets the mean change from every predictor: unknown genes share no learned
identity. ``select_prior`` chooses the kind and its hyper-parameter by leave-one-out over the training
perturbations, scored by the mean Pearson correlation of predicted and observed change (the reported
``pearson_delta``); the test perturbations are never seen.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

PriorKind = Literal["mean", "ridge", "kernel"]
PRIOR_KINDS: tuple[str, ...] = ("mean", "ridge", "kernel")


@dataclass(frozen=True)
class GeneFeature:
    """One perturbed gene: a stable key (its symbol) and its static embedding, the mean of its present
    facet embeddings (None: the gene has no facet, it is unknown)."""

    key: str
    feature: np.ndarray | None


Perturbation = tuple[GeneFeature, ...]


def perturbation_feature(genes: Perturbation) -> np.ndarray | None:
    """The sum of the known genes' static embeddings; None when no gene is known."""
    known = [gene.feature for gene in genes if gene.feature is not None]
    return np.sum(known, axis=0, dtype=np.float64) if known else None


@dataclass(frozen=True)
class PriorSettings:
    """Config ``baselines``: the candidates leave-one-out chooses among."""

    kinds: tuple[str, ...]
    ridge_alphas: tuple[float, ...]
    kernel_betas: tuple[float, ...]

    @classmethod
    def from_params(cls, params: dict) -> PriorSettings:
        return cls(
            tuple(params["prior_kinds"]),
            tuple(params["ridge_alphas"]),
            tuple(params["kernel_betas"]),
        )


@dataclass(frozen=True)
class Prior:
    """A fitted predictor; ``arrays`` and ``meta`` are what a checkpoint stores of it."""

    kind: str
    hyper: float | None  # ridge's alpha or the kernel's beta
    mean_change: np.ndarray  # (G,): every unknown perturbation's prediction
    arrays: dict[str, np.ndarray]
    single_rows: dict[str, int]  # kernel: gene key → row of its trained single in "single_changes"

    def change(self, genes: Perturbation) -> np.ndarray:
        """The predicted mean change of a perturbation."""
        feature = perturbation_feature(genes)
        if self.kind == "kernel" and len(genes) == 2:
            rows = [self.single_rows.get(gene.key) for gene in genes]
            if all(row is not None for row in rows):
                return self.arrays["single_changes"][rows].sum(axis=0)
        if feature is None or self.kind == "mean":
            return self.mean_change
        if self.kind == "ridge":
            centred = feature - self.arrays["feature_mean"]
            return self.arrays["intercept"] + centred @ self.arrays["weights"]
        weights = kernel_weights(unit(feature), self.arrays["unit_features"], float(self.hyper))
        return weights @ self.arrays["known_changes"]

    def changes(self, perturbations: Sequence[Perturbation]) -> np.ndarray:
        return np.stack([self.change(genes) for genes in perturbations])

    def meta(self) -> dict:
        return {"kind": self.kind, "hyper": self.hyper, "single_rows": self.single_rows}

    @classmethod
    def from_saved(cls, meta: dict, arrays: dict[str, np.ndarray]) -> Prior:
        arrays = {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}
        mean_change = arrays.pop("mean_change")
        return cls(meta["kind"], meta["hyper"], mean_change, arrays, meta["single_rows"])

    def saved_arrays(self) -> dict[str, np.ndarray]:
        return {"mean_change": self.mean_change, **self.arrays}


def unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def kernel_weights(query: np.ndarray, references: np.ndarray, beta: float) -> np.ndarray:
    """softmax(β · cosine) of a unit query against unit references."""
    scores = beta * (references @ query)
    scores = np.exp(scores - scores.max())
    return scores / scores.sum()


@dataclass(frozen=True)
class TrainingSet:
    """The training perturbations a prior is fitted on: their genes and observed mean changes (n, G)."""

    perturbations: list[Perturbation]
    changes: np.ndarray

    @property
    def known(self) -> np.ndarray:
        """Rows with a feature."""
        return np.array([perturbation_feature(p) is not None for p in self.perturbations], bool)

    def features(self) -> np.ndarray:
        rows = np.flatnonzero(self.known)
        return np.stack([perturbation_feature(self.perturbations[i]) for i in rows])


def single_rows(perturbations: Sequence[Perturbation]) -> dict[str, int]:
    """Gene key → row of its single perturbation (singles of known and unknown genes alike)."""
    return {genes[0].key: i for i, genes in enumerate(perturbations) if len(genes) == 1}


def ridge_solution(features: np.ndarray, changes: np.ndarray, alpha: float):
    """(feature mean, intercept, weights) of ridge regression with an unpenalised intercept, in the dual
    form (n ≤ D in every screen of perturbations)."""
    feature_mean, intercept = features.mean(axis=0), changes.mean(axis=0)
    centred = features - feature_mean
    gram = centred @ centred.T
    dual = np.linalg.solve(gram + alpha * np.eye(len(gram)), changes - intercept)
    return feature_mean, intercept, centred.T @ dual


def fit_prior(kind: str, hyper: float | None, training: TrainingSet) -> Prior:
    """A prior of ``kind`` fitted on every training perturbation."""
    changes = np.asarray(training.changes, dtype=np.float64)
    mean_change = changes.mean(axis=0)
    known = training.known
    if kind == "mean" or known.sum() < 2:
        return Prior("mean", None, mean_change, {}, {})
    features = training.features()
    if kind == "ridge":
        feature_mean, intercept, weights = ridge_solution(features, changes[known], float(hyper))
        arrays = {"feature_mean": feature_mean, "intercept": intercept, "weights": weights}
        return Prior("ridge", float(hyper), mean_change, arrays, {})
    singles = single_rows(training.perturbations)
    arrays = {
        "unit_features": unit(features),
        "known_changes": changes[known],
        "single_changes": changes[list(singles.values())].reshape(len(singles), -1),
    }
    return Prior(
        "kernel", float(hyper), mean_change, arrays, dict(zip(singles, range(len(singles))))
    )


def loo_changes(kind: str, hyper: float | None, training: TrainingSet) -> np.ndarray:
    """Each training perturbation's change predicted by the prior fitted on all the others (n, G)."""
    changes = np.asarray(training.changes, dtype=np.float64)
    n = len(changes)
    loo_mean = (changes.sum(axis=0) - changes) / max(n - 1, 1)
    known = training.known
    predicted = loo_mean.copy()
    if kind == "mean" or known.sum() < 3:
        return predicted
    rows = np.flatnonzero(known)
    features = training.features()
    if kind == "ridge":
        predicted[rows] = ridge_loo(features, changes[rows], float(hyper))
    else:
        unit_features = unit(features)
        similarity = float(hyper) * (unit_features @ unit_features.T)
        np.fill_diagonal(similarity, -np.inf)
        weights = np.exp(similarity - similarity.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        predicted[rows] = weights @ changes[rows]
        singles = single_rows(training.perturbations)
        for i, genes in enumerate(training.perturbations):
            if len(genes) == 2 and all(gene.key in singles for gene in genes):
                predicted[i] = changes[[singles[gene.key] for gene in genes]].sum(axis=0)
    return predicted


def ridge_loo(features: np.ndarray, changes: np.ndarray, alpha: float) -> np.ndarray:
    """Exact leave-one-out predictions of ridge with an unpenalised intercept: for this penalised least
    squares the left-out residual is the fitted residual over 1 − h_ii (h: the smoother's diagonal)."""
    n = len(features)
    centred = features - features.mean(axis=0)
    gram = centred @ centred.T
    smoother = gram @ np.linalg.inv(gram + alpha * np.eye(n)) + 1.0 / n
    fitted = smoother @ (changes - changes.mean(axis=0)) + changes.mean(axis=0)
    leverage = np.diag(smoother)[:, None]
    return changes - (changes - fitted) / (1 - leverage)


def row_pearson(predicted: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row pair; 0 where a row is constant."""
    a = predicted - predicted.mean(axis=1, keepdims=True)
    b = observed - observed.mean(axis=1, keepdims=True)
    denominator = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    return np.divide((a * b).sum(axis=1), denominator, out=np.zeros(len(a)), where=denominator > 0)


def candidates(settings: PriorSettings) -> list[tuple[str, float | None]]:
    """Every (kind, hyper-parameter) leave-one-out compares, simplest first (ties keep the simpler)."""
    grid = {"mean": (None,), "ridge": settings.ridge_alphas, "kernel": settings.kernel_betas}
    return [(kind, hyper) for kind in PRIOR_KINDS if kind in settings.kinds for hyper in grid[kind]]


@dataclass(frozen=True)
class Selection:
    """The chosen (kind, hyper-parameter) and every candidate's leave-one-out score."""

    kind: str
    hyper: float | None
    scores: list[dict]

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def chosen_prior(training: TrainingSet, settings: PriorSettings) -> tuple[Prior, Selection]:
    """The prior leave-one-out chooses among ``settings``' candidates, fitted on every training
    perturbation."""
    selection = select_prior(training, settings)
    return fit_prior(selection.kind, selection.hyper, training), selection


def select_prior(training: TrainingSet, settings: PriorSettings) -> Selection:
    """The candidate with the best mean leave-one-out Pearson correlation of change (the reported
    pearson_delta), over the training perturbations only."""
    scores = []
    for kind, hyper in candidates(settings):
        predicted = loo_changes(kind, hyper, training)
        score = float(row_pearson(predicted, np.asarray(training.changes, np.float64)).mean())
        scores.append({"kind": kind, "hyper": hyper, "loo_pearson_delta": round(score, 6)})
    best = max(range(len(scores)), key=lambda i: (scores[i]["loo_pearson_delta"], -i))
    return Selection(scores[best]["kind"], scores[best]["hyper"], scores)
