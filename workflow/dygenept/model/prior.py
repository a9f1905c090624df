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
identity. A ``Prior`` holds one fitted predictor per perturbation size (singles, doubles): ``select_prior``
chooses each one's kind and hyper-parameter by leave-one-out over the training perturbations of that size,
scored by the mean Pearson correlation of predicted and observed change (the reported ``pearson_delta``);
a single is left out with every perturbation of its gene (``held_out_with``), as an unseen gene is at test
time. On the demo, leave-one-out prefers the training mean for singles and a retrieval for doubles; one
choice for both would let the doubles decide for the singles. The test perturbations are never seen.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..settings import read_fields

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
        """``params``: config ``baselines``."""
        return read_fields(
            cls,
            params,
            kinds=tuple(params["prior_kinds"]),
            ridge_alphas=tuple(params["ridge_alphas"]),
            kernel_betas=tuple(params["kernel_betas"]),
        )


@dataclass(frozen=True)
class FittedPrior:
    """One fitted predictor; ``arrays`` and ``meta`` are what a checkpoint stores of it."""

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
    def from_saved(cls, meta: dict, arrays: dict[str, np.ndarray]) -> FittedPrior:
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


def fit_prior(kind: str, hyper: float | None, training: TrainingSet) -> FittedPrior:
    """A prior of ``kind`` fitted on every training perturbation."""
    changes = np.asarray(training.changes, dtype=np.float64)
    mean_change = changes.mean(axis=0)
    known = training.known
    if kind == "mean" or known.sum() < 2:
        return FittedPrior("mean", None, mean_change, {}, {})
    features = training.features()
    if kind == "ridge":
        feature_mean, intercept, weights = ridge_solution(features, changes[known], float(hyper))
        arrays = {"feature_mean": feature_mean, "intercept": intercept, "weights": weights}
        return FittedPrior("ridge", float(hyper), mean_change, arrays, {})
    singles = single_rows(training.perturbations)
    arrays = {
        "unit_features": unit(features),
        "known_changes": changes[known],
        "single_changes": changes[list(singles.values())].reshape(len(singles), -1),
    }
    return FittedPrior(
        "kernel", float(hyper), mean_change, arrays, dict(zip(singles, range(len(singles))))
    )


def held_out_with(perturbations: Sequence[Perturbation]) -> list[np.ndarray]:
    """The rows left out when each training perturbation is predicted: itself and, for a single, every
    perturbation with its gene, so that it is predicted as an unseen gene is at test time (GEARS'
    unseen-single constraint, which the cross-validation folds keep too)."""
    genes = [{gene.key for gene in p} for p in perturbations]
    groups = []
    for i, own in enumerate(genes):
        if len(own) == 1:
            groups.append(np.flatnonzero([bool(own & other) for other in genes]))
        else:
            groups.append(np.array([i]))
    return groups


def ridge_predict(features: np.ndarray, changes: np.ndarray, alpha: float, query: np.ndarray):
    """Ridge's prediction (unpenalised intercept) for one query, in the dual form: without the D × G
    weights, so that leave-one-out over hundreds of perturbations stays cheap."""
    feature_mean, intercept = features.mean(axis=0), changes.mean(axis=0)
    centred = features - feature_mean
    similarity = centred @ (query - feature_mean)
    dual = np.linalg.solve(centred @ centred.T + alpha * np.eye(len(centred)), similarity)
    return intercept + dual @ (changes - intercept)


def loo_changes(kind: str, hyper: float | None, training: TrainingSet) -> np.ndarray:
    """Each training perturbation's change predicted by the prior fitted without it (and, for a single,
    without every perturbation of its gene: ``held_out_with``) (n, G)."""
    changes = np.asarray(training.changes, dtype=np.float64)
    known = training.known
    features = {
        i: perturbation_feature(p) for i, p in enumerate(training.perturbations) if known[i]
    }
    predicted = np.empty_like(changes)
    for i, group in enumerate(held_out_with(training.perturbations)):
        keep = np.setdiff1d(np.arange(len(changes)), group)
        rest = TrainingSet([training.perturbations[j] for j in keep], changes[keep])
        fitted_rows = [j for j in keep if known[j]]
        if kind == "ridge" and known[i] and len(fitted_rows) >= 2:
            rows = np.array(fitted_rows)
            query = features[i]
            stacked = np.stack([features[j] for j in rows])
            predicted[i] = ridge_predict(stacked, changes[rows], float(hyper), query)
        elif kind == "ridge" or len(keep) == 0:
            predicted[i] = changes[keep].mean(axis=0) if len(keep) else changes.mean(axis=0)
        else:
            predicted[i] = fit_prior(kind, hyper, rest).change(training.perturbations[i])
    return predicted


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


# Perturbation sizes a prior is chosen for separately; a larger one takes the doubles' choice.
SIZES = (1, 2)


@dataclass(frozen=True)
class Prior:
    """One fitted predictor per perturbation size (1: singles, 2: doubles), each fitted on every
    training perturbation."""

    by_size: dict[int, FittedPrior]

    def fitted(self, genes: Perturbation) -> FittedPrior:
        return self.by_size[min(len(genes), SIZES[-1])]

    def change(self, genes: Perturbation) -> np.ndarray:
        return self.fitted(genes).change(genes)

    def changes(self, perturbations: Sequence[Perturbation]) -> np.ndarray:
        return np.stack([self.change(genes) for genes in perturbations])

    def describe(self) -> str:
        """e.g. ``singles: mean; doubles: kernel 3.0``."""
        names = {1: "singles", 2: "doubles"}
        return "; ".join(
            f"{names[size]}: {p.kind}" + ("" if p.hyper is None else f" {p.hyper:g}")
            for size, p in self.by_size.items()
        )

    def loo_changes(self, training: TrainingSet) -> np.ndarray:
        """Each training perturbation's leave-one-out change under its size's predictor."""
        predicted = np.empty_like(np.asarray(training.changes, dtype=np.float64))
        sizes = np.array([min(len(p), SIZES[-1]) for p in training.perturbations])
        for size, fitted in self.by_size.items():
            if (sizes == size).any():
                rows = sizes == size
                predicted[rows] = loo_changes(fitted.kind, fitted.hyper, training)[rows]
        return predicted

    def meta(self) -> dict:
        return {"by_size": {str(size): p.meta() for size, p in self.by_size.items()}}

    def saved_arrays(self) -> dict[str, np.ndarray]:
        return {
            f"{size}.{name}": array
            for size, p in self.by_size.items()
            for name, array in p.saved_arrays().items()
        }

    @classmethod
    def from_saved(cls, meta: dict, arrays: dict[str, np.ndarray]) -> Prior:
        by_size = {}
        for size, record in meta["by_size"].items():
            prefix = f"{size}."
            own = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
            by_size[int(size)] = FittedPrior.from_saved(record, own)
        return cls(by_size)

    @classmethod
    def same_for_all(cls, fitted: FittedPrior) -> Prior:
        return cls({size: fitted for size in SIZES})


@dataclass(frozen=True)
class Selection:
    """The chosen (kind, hyper-parameter) per perturbation size and every candidate's leave-one-out
    score on each size's training perturbations (None where there are none)."""

    chosen: dict[int, tuple[str, float | None]]
    scores: list[dict]

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def chosen_prior(training: TrainingSet, settings: PriorSettings) -> tuple[Prior, Selection]:
    """The prior leave-one-out chooses among ``settings``' candidates for each perturbation size, each
    fitted on every training perturbation."""
    selection = select_prior(training, settings)
    return Prior(
        {size: fit_prior(kind, hyper, training) for size, (kind, hyper) in selection.chosen.items()}
    ), selection


def select_prior(training: TrainingSet, settings: PriorSettings) -> Selection:
    """For each perturbation size, the candidate with the best mean leave-one-out Pearson correlation of
    change (the reported pearson_delta) over the training perturbations of that size; a size with none
    takes the smaller size's choice."""
    sizes = np.array([min(len(p), SIZES[-1]) for p in training.perturbations])
    observed = np.asarray(training.changes, np.float64)
    scores = []
    for kind, hyper in candidates(settings):
        correlation = row_pearson(loo_changes(kind, hyper, training), observed)
        entry = {"kind": kind, "hyper": hyper}
        for size in SIZES:
            rows = sizes == size
            entry[f"loo_pearson_delta_{size}"] = (
                round(float(correlation[rows].mean()), 6) if rows.any() else None
            )
        scores.append(entry)
    chosen: dict[int, tuple[str, float | None]] = {}
    for size in SIZES:
        key = f"loo_pearson_delta_{size}"
        if scores[0][key] is None:
            chosen[size] = chosen.get(size - 1, (scores[0]["kind"], scores[0]["hyper"]))
            continue
        best = max(range(len(scores)), key=lambda i: (scores[i][key], -i))
        chosen[size] = (scores[best]["kind"], scores[best]["hyper"])
    return Selection(chosen, scores)
