"""Honest baselines, fitted on the same training perturbations as the model.

Each returns predicted mean expression for a condition, or None where it does not apply. The closed-form
ones (``train_mean``, ``linear``, ``kernel``, ``selected``) are the predictors of ``model.prior``, the same
code the network starts from; their hyper-parameters are chosen by leave-one-out over the training
perturbations. A perturbation whose genes have no facets is unknown and gets the training mean from every
baseline that reads facets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..data.conditions import condition_genes, parse_context_label
from ..data.perturbations import PerturbationData
from ..model.prior import (
    Prior,
    PriorSettings,
    chosen_prior,
    fit_prior,
    perturbation_feature,
    unit,
)
from ..settings import read_fields

Predictor = Callable[[str], np.ndarray | None]


@dataclass(frozen=True)
class BaselineSettings:
    """Config ``baselines``."""

    knn_k: int
    prior: PriorSettings

    @classmethod
    def from_params(cls, params: dict) -> BaselineSettings:
        return read_fields(cls, params, prior=PriorSettings.from_params(params))


def from_prior(data: PerturbationData, prior: Prior) -> Predictor:
    return lambda condition: (
        data.control_mean_of(condition) + prior.change(data.perturbation_genes(condition))
    )


def no_change(data: PerturbationData, train: list[str]) -> Predictor:
    return data.control_mean_of


def train_mean(data: PerturbationData, train: list[str]) -> Predictor:
    """The mean change over all training perturbations, added to control."""
    return from_prior(data, Prior.same_for_all(fit_prior("mean", None, data.training_set(train))))


def additive(data: PerturbationData, train: list[str]) -> Predictor:
    """Doubles: control + δA + δB where both singles were trained on; None otherwise."""
    singles = {condition_genes(c)[0]: data.change(c) for c in train if len(condition_genes(c)) == 1}

    def predict(condition: str) -> np.ndarray | None:
        genes = condition_genes(condition)
        if len(genes) != 2 or not all(g in singles for g in genes):
            return None
        return data.control_mean_of(condition) + singles[genes[0]] + singles[genes[1]]

    return predict


def one_kind(settings: PriorSettings, kind: str) -> PriorSettings:
    return dataclasses.replace(settings, kinds=(kind,))


def linear(data: PerturbationData, train: list[str], settings: PriorSettings) -> Predictor:
    """Linear: ridge regression from the static (facet-averaged) gene embedding to the change, its
    penalty chosen by leave-one-out."""
    return from_prior(data, chosen_prior(data.training_set(train), one_kind(settings, "ridge"))[0])


def kernel(data: PerturbationData, train: list[str], settings: PriorSettings) -> Predictor:
    """Kernel retrieval: softmax(β · cosine) weights over the training perturbations' changes (doubles of
    two trained singles: their sum), β chosen by leave-one-out."""
    return from_prior(data, chosen_prior(data.training_set(train), one_kind(settings, "kernel"))[0])


def selected(data: PerturbationData, train: list[str], settings: PriorSettings) -> Predictor:
    """The closed-form baseline leave-one-out chooses among every candidate: what the network starts
    from (its prediction before training)."""
    return from_prior(data, chosen_prior(data.training_set(train), settings)[0])


def knn(data: PerturbationData, train: list[str], k: int) -> Predictor:
    """kNN: the mean change of the k training perturbations nearest by cosine similarity of their static
    (facet-averaged) gene embeddings; the training mean for an unknown perturbation."""
    training = data.training_set(train)
    known = training.known
    unit_features = unit(training.features()) if known.any() else np.zeros((0, 1))
    changes = training.changes[known]
    mean_change = training.changes.mean(axis=0)
    k = min(k, len(changes))

    def predict(condition: str) -> np.ndarray | None:
        query = perturbation_feature(data.perturbation_genes(condition))
        if query is None or k == 0:
            return data.control_mean_of(condition) + mean_change
        similarity = unit_features @ unit(query)
        nearest = np.argsort(-similarity, kind="stable")[:k]
        return data.control_mean_of(condition) + changes[nearest].mean(axis=0)

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


def make_baselines(
    data: PerturbationData, train: list[str], settings: BaselineSettings
) -> dict[str, Predictor]:
    """Every baseline, fitted on ``train``. Data split by context also gets ``other_contexts``."""
    baselines = {
        "no_change": no_change(data, train),
        "train_mean": train_mean(data, train),
        "additive": additive(data, train),
        "linear": linear(data, train, settings.prior),
        "kernel": kernel(data, train, settings.prior),
        "knn": knn(data, train, settings.knn_k),
        "selected": selected(data, train, settings.prior),
    }
    if data.control_context is not None:
        baselines["other_contexts"] = other_contexts(data, train)
    return baselines
