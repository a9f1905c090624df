"""Genetic interactions of a double perturbation, as Norman et al. 2019 (Science 365:786) score them and
GEARS (Roohani et al. 2023) predicts them.

For a pair A+B with the singles' mean changes from control ``a`` and ``b`` and the double's ``ab``, on the
well-expressed genes:

    ab ≈ c1·a + c2·b                 a robust fit without intercept: Theil–Sen (below)
    magnitude = √((c1² + c2²) / 2)   1 for the additive pair (c1 = c2 = 1); GEARS' ``mag`` is √2 times it
    corr_fit  = Pearson(c1·a + c2·b, ab)     how much of the double the singles explain
    dcor      = dCor(a, b)           distance correlation of the two singles (alike: redundant)
    eq_contr  = min(dCor(a, ab), dCor(b, ab)) / max(...)   1: both singles shape the double equally

GI types (not exclusive; ``additive`` when none applies), with GEARS' thresholds as config 'interactions'
defaults: synergy (magnitude above), suppressor (magnitude below), neomorphic (corr_fit below), redundant
(dcor above), epistasis (eq_contr below).

Theil–Sen for two coefficients: the exact solution of every pair of genes (all pairs, or a seeded random
draw of ``theil_sen_subsets`` of them), then the spatial median of those solutions (Weiszfeld's
iteration) — the estimator scikit-learn's ``TheilSenRegressor`` computes, written here for 2 unknowns and
vectorised. Pairs of genes whose 2 × 2 system is singular (both singles silent on them) are left out.

``evaluate_interactions`` is what the evaluate stage writes: for each test double whose singles are
measured, the observed scores beside each method's (the method predicts the double; the singles are the
observed ones), and how reliable the observed non-additive part is (its half-split correlation).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data.conditions import CONTROL, condition_genes, context_label, parse_context_label
from ..data.perturbations import PerturbationData, half_split_means
from ..settings import read_fields
from .metrics import pearson

ADDITIVE = "additive"
OBSERVED = "observed"


@dataclass(frozen=True)
class InteractionSettings:
    """Config 'interactions' (defaults in config/schema.yaml)."""

    expressed_fraction: float  # share of the genes, by mean control expression, that the fit uses
    theil_sen_subsets: int  # most gene pairs Theil–Sen solves (a seeded draw above it)
    seed: int
    synergy_magnitude: float
    suppressor_magnitude: float
    neomorphic_corr_fit: float
    redundant_dcor: float
    epistasis_eq_contr: float
    min_doubles: int  # fewer test doubles than this: no correlation or top-k accuracy is reported
    top_k: int
    half_split_draws: int

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> InteractionSettings:
        return read_fields(cls, params)


@dataclass(frozen=True)
class InteractionScores:
    c1: float
    c2: float
    magnitude: float
    corr_fit: float
    dcor: float
    dcor_first: float  # dCor(a, ab)
    dcor_second: float  # dCor(b, ab)
    eq_contr: float
    n_genes: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


# Each type: the score it is read from, and whether a high value (True) or a low one marks it.
TYPE_RULES: dict[str, tuple[str, bool]] = {
    "synergy": ("magnitude", True),
    "suppressor": ("magnitude", False),
    "neomorphic": ("corr_fit", False),
    "redundant": ("dcor", True),
    "epistasis": ("eq_contr", False),
}


def thresholds(settings: InteractionSettings) -> dict[str, float]:
    return {
        "synergy": settings.synergy_magnitude,
        "suppressor": settings.suppressor_magnitude,
        "neomorphic": settings.neomorphic_corr_fit,
        "redundant": settings.redundant_dcor,
        "epistasis": settings.epistasis_eq_contr,
    }


def gi_types(scores: InteractionScores, settings: InteractionSettings) -> list[str]:
    """Every type whose threshold the scores pass, in TYPE_RULES order; ``[additive]`` when none does."""
    found = []
    for name, bound in thresholds(settings).items():
        score, high = TYPE_RULES[name]
        value = getattr(scores, score)
        if np.isfinite(value) and (value > bound if high else value < bound):
            found.append(name)
    return found or [ADDITIVE]


def well_expressed(control_mean: np.ndarray, fraction: float) -> np.ndarray:
    """Indices of the top ``fraction`` of genes by mean control expression; never a gene at zero."""
    count = max(int(round(fraction * len(control_mean))), 1)
    order = np.argsort(-control_mean, kind="stable")[:count]
    return np.sort(order[control_mean[order] > 0])


def gene_pairs(n: int, most: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Every pair i < j of n items, or ``most`` distinct pairs drawn with a seeded generator."""
    total = n * (n - 1) // 2
    if total <= most:
        return np.triu_indices(n, k=1)
    # distinct pair indices, drawn in rounds (cheaper than one draw without replacement)
    rng, k = np.random.default_rng(seed), np.empty(0, dtype=np.int64)
    while len(k) < most:
        k = np.unique(np.concatenate([k, rng.integers(0, total, size=most + most // 4)]))
    k = np.sort(rng.permutation(k)[:most])
    # k indexes the pairs row by row (0,1), (0,2), ..., (1,2), ...: row i starts at i·n − i(i+1)/2
    i = (n - 2 - np.floor(np.sqrt(4.0 * n * (n - 1) - 8.0 * k - 7) / 2 - 0.5)).astype(np.int64)
    j = k - i * n + i * (i + 1) // 2 + i + 1
    return i, j


def spatial_median(
    points: np.ndarray, iterations: int = 500, tolerance: float = 1e-9
) -> np.ndarray:
    """The point minimising the sum of Euclidean distances to ``points`` (n, 2): Weiszfeld's iteration
    from the coordinate-wise median (a distance under 1e-12 counts as 1e-12, so a data point is no pole)."""
    centre = np.median(points, axis=0)
    for _ in range(iterations):
        offset = points - centre
        weights = 1.0 / np.maximum(np.hypot(offset[:, 0], offset[:, 1]), 1e-12)
        moved = weights @ points / weights.sum()
        if np.linalg.norm(moved - centre) <= tolerance * max(1.0, np.linalg.norm(centre)):
            return moved
        centre = moved
    return centre


def theil_sen_two(
    a: np.ndarray, b: np.ndarray, y: np.ndarray, most_pairs: int, seed: int
) -> tuple[float, float]:
    """(c1, c2) of y ≈ c1·a + c2·b: the spatial median of the exact solutions on pairs of samples.
    NaN when no pair of samples determines both coefficients."""
    i, j = gene_pairs(len(y), most_pairs, seed)
    det = a[i] * b[j] - a[j] * b[i]
    scale = np.abs(a[i] * b[j]) + np.abs(a[j] * b[i])
    solvable = np.abs(det) > 1e-9 * np.maximum(scale, np.finfo(float).tiny)
    if not solvable.any():
        return float("nan"), float("nan")
    i, j, det = i[solvable], j[solvable], det[solvable]
    c1 = (y[i] * b[j] - y[j] * b[i]) / det
    c2 = (a[i] * y[j] - a[j] * y[i]) / det
    median = spatial_median(np.column_stack([c1, c2]))
    return float(median[0]), float(median[1])


def distance_correlations(vectors: Sequence[np.ndarray], block: int = 512) -> np.ndarray:
    """Székely's distance correlation (V-statistic) of every two of ``vectors`` (each 1-D, length n), in
    [0, 1]; 0 with a constant vector. The n × n distance matrices are never held whole: row blocks."""
    x = np.stack([np.asarray(v, dtype=np.float64) for v in vectors])
    m, n = x.shape
    products, row_means = np.zeros((m, m)), np.empty((m, n))
    for start in range(0, n, block):
        rows = slice(start, start + block)
        distances = np.abs(x[:, rows, None] - x[:, None, :]).reshape(m, -1)
        products += distances @ distances.T
        row_means[:, rows] = distances.reshape(m, -1, n).mean(axis=2)
    # double centring, averaged: mean(A∘B) − 2·mean_i(Ā_i·B̄_i) + mean(A)·mean(B)
    grand = row_means.mean(axis=1)
    covariance = products / n**2 - 2 * row_means @ row_means.T / n + np.outer(grand, grand)
    covariance = np.maximum(covariance, 0.0)
    scale = np.sqrt(np.outer(np.diag(covariance), np.diag(covariance)))
    return np.sqrt(np.divide(covariance, scale, out=np.zeros_like(scale), where=scale > 0))


def distance_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Székely's distance correlation of two samples (1-D), in [0, 1]; 0 when either is constant."""
    return float(distance_correlations([x, y])[0, 1])


def interaction_scores(
    a: np.ndarray, b: np.ndarray, ab: np.ndarray, settings: InteractionSettings
) -> InteractionScores:
    """The scores of one pair from the singles' and the double's changes on the genes the fit uses."""
    a, b, ab = (np.asarray(v, dtype=np.float64) for v in (a, b, ab))
    c1, c2 = theil_sen_two(a, b, ab, settings.theil_sen_subsets, settings.seed)
    fitted = c1 * a + c2 * b
    dcor = distance_correlations([a, b, ab])
    first, second = float(dcor[0, 2]), float(dcor[1, 2])
    larger = max(first, second)
    return InteractionScores(
        c1=c1,
        c2=c2,
        magnitude=float(np.sqrt((c1**2 + c2**2) / 2)),
        corr_fit=pearson(fitted, ab) if np.isfinite(c1) else float("nan"),
        dcor=float(dcor[0, 1]),
        dcor_first=first,
        dcor_second=second,
        eq_contr=min(first, second) / larger if larger > 0 else float("nan"),
        n_genes=len(ab),
    )


def describe(scores: InteractionScores, settings: InteractionSettings) -> dict[str, Any]:
    """The scores rounded for tables, with the GI types joined by ';'."""
    values = {key: round(value, 4) for key, value in scores.as_dict().items()}
    return {**values, "gi_types": ";".join(gi_types(scores, settings))}


def single_of(gene: str, double: str) -> str:
    """The single perturbation of ``gene`` in the double's context (``A+ctrl`` or ``A+ctrl|K562``)."""
    context = parse_context_label(double)[1]
    single = f"{gene}+{CONTROL}"
    return context_label(single, context) if context else single


def measured_doubles(data: PerturbationData, conditions: Sequence[str]) -> list[str]:
    """The doubles among ``conditions`` whose double and both singles have cells in the data."""
    return [
        c
        for c in conditions
        if len(condition_genes(c)) == 2
        and c in data.mean_by_condition
        and all(single_of(g, c) in data.mean_by_condition for g in condition_genes(c))
    ]


def nonadditive_reliability(
    h5ad: str | Path,
    doubles: Sequence[str],
    genes: dict[str, np.ndarray],
    draws: int,
    seed: int,
) -> dict[str, float]:
    """Per double: the Pearson correlation, over its well-expressed genes, of the non-additive part
    ab − a − b (changes from control) measured on one random half of every condition's cells (double,
    singles, controls) against the other half; mean over ``draws`` draws. Near 0: the data cannot tell
    the double's interaction from noise."""
    needed = sorted(
        {s for c in doubles for s in [c, *(single_of(g, c) for g in condition_genes(c))]}
    )
    halves, control_halves = half_split_means(h5ad, needed, draws, seed)
    reliability = {}
    for double in doubles:
        singles = [single_of(g, double) for g in condition_genes(double)]
        if any(c not in halves for c in [double, *singles]):
            continue
        controls = control_halves[parse_context_label(double)[1]]
        values = []
        for draw in range(draws):
            parts = []
            for half in (0, 1):
                control = controls[draw][half]
                change = {c: halves[c][draw][half] - control for c in [double, *singles]}
                residual = change[double] - change[singles[0]] - change[singles[1]]
                parts.append(residual[genes[double]])
            values.append(pearson(*parts))
        reliability[double] = round(float(np.nanmean(values)), 4)
    return reliability


def top_k_accuracy(observed: pd.Series, predicted: pd.Series, high: bool, k: int) -> float:
    """GEARS' top-k accuracy for one GI type: the share of the k doubles that score most that way on the
    observed data which also are among the k that score most on the predictions."""
    pick = (lambda s: s.nlargest(k).index) if high else (lambda s: s.nsmallest(k).index)
    return len(set(pick(observed.dropna())) & set(pick(predicted.dropna()))) / k


def method_summary(
    observed: pd.DataFrame, predicted: pd.DataFrame, settings: InteractionSettings
) -> dict[str, Any]:
    """Agreement of one method's scores with the observed ones over the same doubles."""
    joined = observed.join(predicted, lsuffix="_observed", rsuffix="_predicted", how="inner")
    error = (joined["magnitude_predicted"] - joined["magnitude_observed"]).abs()
    summary: dict[str, Any] = {
        "n": int(len(joined)),
        "magnitude_abs_error": round(float(error.mean()), 4) if len(joined) else None,
    }
    if len(joined) < settings.min_doubles:
        return summary
    for score in ("magnitude", "c1", "c2"):
        pair = joined[[f"{score}_observed", f"{score}_predicted"]].dropna().to_numpy().T
        summary[f"pearson_{score}"] = round(pearson(*pair), 4) if pair.shape[1] > 2 else None
    k = min(settings.top_k, len(joined))
    summary["top_k"] = k
    summary["top_k_accuracy"] = {
        name: round(top_k_accuracy(joined[f"{s}_observed"], joined[f"{s}_predicted"], high, k), 4)
        for name, (s, high) in TYPE_RULES.items()
    }
    return summary


def evaluate_interactions(
    data: PerturbationData,
    test: Sequence[str],
    predictions: Mapping[str, Mapping[int, Mapping[str, np.ndarray]]],
    h5ad: str | Path,
    settings: InteractionSettings,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Observed and predicted GI scores of every test double whose singles are measured.

    ``predictions``: method → seed → condition → predicted mean expression (a method's double is the mean
    over its seeds). Returns one row per double and source (``observed`` or a method) and a summary: the
    doubles, the reliability of their observed non-additive part, each method's agreement with the
    observed scores (correlations and top-k accuracy only from ``min_doubles`` doubles on), and a note
    when there are too few doubles for those to mean anything.
    """
    doubles = measured_doubles(data, test)
    genes = {
        c: well_expressed(data.control_mean_of(c), settings.expressed_fraction) for c in doubles
    }

    def scores_of(double: str, expression: np.ndarray) -> dict[str, Any]:
        control, rows = data.control_mean_of(double), genes[double]
        a, b = (data.change(single_of(g, double))[rows] for g in condition_genes(double))
        return describe(interaction_scores(a, b, (expression - control)[rows], settings), settings)

    rows = [
        {"condition": c, "method": OBSERVED, **scores_of(c, data.true_mean(c))} for c in doubles
    ]
    for method, seeds in predictions.items():
        for c in doubles:
            made = [by[c] for by in seeds.values() if c in by]
            if made:
                rows.append({"condition": c, "method": method, **scores_of(c, np.mean(made, 0))})
    columns = ["condition", "method", *InteractionScores.__dataclass_fields__, "gi_types"]
    table = pd.DataFrame(rows, columns=columns)
    by_method = {m: part.set_index("condition") for m, part in table.groupby("method", sort=False)}
    observed = by_method.get(OBSERVED, pd.DataFrame(columns=columns).set_index("condition"))
    reliability = (
        nonadditive_reliability(h5ad, doubles, genes, settings.half_split_draws, settings.seed)
        if doubles
        else {}
    )
    summary: dict[str, Any] = {
        "doubles": doubles,
        "n_doubles": len(doubles),
        "min_doubles": settings.min_doubles,
        "enough_doubles": len(doubles) >= settings.min_doubles,
        "nonadditive_reliability": reliability,
        "nonadditive_reliability_mean": (
            round(float(np.mean(list(reliability.values()))), 4) if reliability else None
        ),
        "thresholds": thresholds(settings),
        "methods": {
            m: method_summary(observed, part, settings)
            for m, part in by_method.items()
            if m != OBSERVED
        },
    }
    if not summary["enough_doubles"]:
        summary["note"] = (
            f"{len(doubles)} test double(s) with measured singles, fewer than {settings.min_doubles}: "
            "no correlation or top-k accuracy is reported, and per-double scores are anecdotes"
        )
    return table, summary
