"""Paired bootstrap intervals of differences between methods, over perturbations.

Two methods scored on the same perturbations give one difference per perturbation (each perturbation's
score first averaged over training seeds and split seeds). Resampling the perturbations with replacement
gives the distribution of the mean difference; its central ``confidence`` share is the interval. A method
is called better (or worse) than another only where that interval excludes zero.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from ..settings import read_fields

# Fewer paired perturbations than this give no interval: a resampled mean of two or three values says
# nothing (the demo's additive baseline applies to two test doubles).
MIN_PAIRS = 5
# Metrics where a smaller value is better; every other metric is better larger.
LOWER_IS_BETTER = ("mse", "mse_de", "mae")

Verdict = Literal["better", "worse", "no difference shown"]


@dataclass(frozen=True)
class BootstrapSettings:
    """Config ``evaluate.bootstrap``."""

    resamples: int
    confidence: float
    seed: int

    @classmethod
    def from_params(cls, params: dict) -> BootstrapSettings:
        return read_fields(cls, params)


@dataclass(frozen=True)
class Interval:
    """The mean of a per-perturbation difference and its bootstrap interval."""

    difference: float
    low: float
    high: float
    n: int

    def as_dict(self) -> dict:
        return {
            k: round(v, 4) if isinstance(v, float) else v
            for k, v in dataclasses.asdict(self).items()
        }


def paired_interval(
    values: np.ndarray, reference: np.ndarray, settings: BootstrapSettings
) -> Interval | None:
    """The mean of ``values − reference`` over the perturbations where both are defined, with its
    percentile bootstrap interval; None with fewer than ``MIN_PAIRS`` such perturbations."""
    differences = np.asarray(values, dtype=np.float64) - np.asarray(reference, dtype=np.float64)
    differences = differences[~np.isnan(differences)]
    n = len(differences)
    if n < MIN_PAIRS:
        return None
    rng = np.random.default_rng(settings.seed)
    means = differences[rng.integers(0, n, size=(settings.resamples, n))].mean(axis=1)
    tail = (1 - settings.confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return Interval(float(differences.mean()), float(low), float(high), n)


def verdict(interval: Interval | None, metric: str) -> Verdict:
    """Better or worse only where the interval excludes zero."""
    if interval is None or interval.low <= 0 <= interval.high:
        return "no difference shown"
    larger = interval.low > 0
    return "better" if larger != (metric in LOWER_IS_BETTER) else "worse"


def per_perturbation(table: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Rows (method, seed, split_seed, condition, metrics...) → one value per method and condition, the
    mean over seeds and split seeds (index: condition; columns: (metric, method))."""
    means = table.groupby(["method", "condition"])[metrics].mean()
    return means.unstack("method")


def best_baseline(values: pd.DataFrame, baselines: list[str], metric: str) -> str | None:
    """The baseline with the best mean ``metric`` over the perturbations it predicts."""
    scores = {m: values[(metric, m)].mean() for m in baselines if (metric, m) in values}
    scores = {m: s for m, s in scores.items() if not np.isnan(s)}
    if not scores:
        return None
    pick = min if metric in LOWER_IS_BETTER else max
    return pick(scores, key=scores.get)


def comparisons(
    table: pd.DataFrame,
    methods: list[str],
    references: dict[str, str],
    metrics: list[str],
    settings: BootstrapSettings,
) -> dict:
    """For each method and each named reference method (e.g. ``train_mean``, ``best_baseline``): each
    metric's paired interval of the difference and its verdict."""
    values = per_perturbation(table, metrics)
    result: dict = {}
    for method in methods:
        for label, reference in references.items():
            if reference == method:
                continue
            entry = {"reference": reference}
            for metric in metrics:
                if (metric, method) not in values or (metric, reference) not in values:
                    continue
                interval = paired_interval(
                    values[(metric, method)], values[(metric, reference)], settings
                )
                entry[metric] = {
                    **(interval.as_dict() if interval else {}),
                    "verdict": verdict(interval, metric),
                }
            result.setdefault(method, {})[label] = entry
    return result
