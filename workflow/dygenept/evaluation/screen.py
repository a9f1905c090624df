"""What an in-silico screen reports for each predicted perturbation: effect size, the training
perturbations it resembles, the genes it moves most, the facets that carried the prediction, and whether
the data's noise floor can tell it from the training mean and from the other entries."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components


def effect_size(delta: np.ndarray, threshold: float) -> tuple[float, int]:
    """The L2 norm of the predicted change and how many genes change by more than ``threshold``."""
    return float(np.linalg.norm(delta)), int((np.abs(delta) > threshold).sum())


def top_changes(
    delta: np.ndarray, gene_names: Sequence[str], k: int
) -> tuple[list[str], list[str]]:
    """The ``k`` most up- and most down-regulated genes (only genes that do move that way)."""
    order = np.argsort(delta, kind="stable")
    up = [gene_names[i] for i in order[::-1][:k] if delta[i] > 0]
    down = [gene_names[i] for i in order[:k] if delta[i] < 0]
    return up, down


def cosine_similarities(query: np.ndarray, references: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(references, axis=1) * np.linalg.norm(query)
    return np.divide(references @ query, norms, out=np.zeros(len(references)), where=norms > 0)


def nearest(
    query: np.ndarray, references: np.ndarray, names: Sequence[str], k: int
) -> list[tuple[str, float]]:
    """The ``k`` references most similar to ``query`` by cosine, best first (ties by name)."""
    similarity = cosine_similarities(query, references)
    order = sorted(range(len(names)), key=lambda i: (-similarity[i], names[i]))[:k]
    return [(names[i], round(float(similarity[i]), 4)) for i in order]


def facet_weight_summary(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell facet weights (cells, genes, K) → mean and standard deviation over cells (genes, K)."""
    return weights.mean(axis=0), weights.std(axis=0)


def top_facets(mean_weights: np.ndarray, present: np.ndarray, k: int) -> list[int]:
    """Indices of the ``k`` present facets with the largest mean weight (weight > 0), largest first."""
    order = sorted(np.flatnonzero(present), key=lambda i: (-mean_weights[i], i))
    return [int(i) for i in order if mean_weights[i] > 0][:k]


# ---- can the screen tell its entries apart? ------------------------------------------------------


def sampling_error(expression: np.ndarray) -> float:
    """The expected L2 size of the error of a mean profile measured on these cells (cells × genes):
    sqrt(Σ_g var_g / n). Two measurements of one perturbation's mean differ by about this much."""
    cells = expression.shape[0]
    if cells < 2:
        return float("nan")
    return float(np.sqrt(expression.var(axis=0, ddof=1).sum() / cells))


def noise_floor(errors: Sequence[float]) -> float:
    """The data's noise floor: the median sampling error of the training perturbations' mean profiles.
    A predicted difference smaller than this could not be seen in a measurement of that many cells."""
    finite = [error for error in errors if np.isfinite(error)]
    return float(np.median(finite)) if finite else float("nan")


def tie_groups(predicted: np.ndarray, floor: float) -> list[int]:
    """Each entry's group: entries whose predictions (entries × genes) lie within ``floor`` of each
    other, directly or through a chain of such entries, share one (the first member's index)."""
    squared = np.einsum("ij,ij->i", predicted, predicted)
    distances = (
        squared[:, None] + squared[None, :] - 2 * predicted @ predicted.T
    )  # squared, all pairs
    _, labels = connected_components(sp.csr_matrix(distances < floor**2), directed=False)
    first: dict[int, int] = {}
    return [first.setdefault(int(label), i) for i, label in enumerate(labels)]


def screen_ranks(
    specific: Sequence[float], groups: Sequence[int], floor: float
) -> list[int | None]:
    """Ranks by the distance from the training mean (``specific``), largest first. Entries within the
    noise floor of the training mean get none; entries the floor cannot tell apart share one."""
    distinguishable = [i for i in range(len(specific)) if specific[i] >= floor]
    best = {}
    for i in distinguishable:
        best[groups[i]] = max(best.get(groups[i], 0.0), specific[i])
    order = sorted(best, key=lambda g: (-best[g], g))
    rank_of = {g: r for r, g in enumerate(order, start=1)}
    return [rank_of[groups[i]] if i in distinguishable else None for i in range(len(specific))]


# Entries a screen entry cannot be told from, named in its row (the rest counted).
SAME_AS_NAMED = 10


def others_named(others: list[str]) -> str:
    named = ";".join(others[:SAME_AS_NAMED])
    return named + (
        f";(+{len(others) - SAME_AS_NAMED} more)" if len(others) > SAME_AS_NAMED else ""
    )


# The columns noise_columns gives each entry.
NOISE_COLUMNS = ["rank", "specific_effect", "effect_over_noise", "same_as"]


def noise_columns(
    conditions: list[str], predicted: np.ndarray, reference: np.ndarray, floor: float
) -> pd.DataFrame:
    """Per entry: its distance from the training mean's prediction (``specific_effect``), that distance
    over the noise floor, a rank (none within the floor of the training mean; shared by entries within
    the floor of each other) and the entries it cannot be told from (``same_as``). Ranks and ties are
    among the entries given together."""
    specific = np.linalg.norm(predicted - reference, axis=1)
    groups = tie_groups(predicted, floor)
    ranks = screen_ranks(list(specific), groups, floor)
    members: dict[int, list[str]] = {}
    for condition, group in zip(conditions, groups):
        members.setdefault(group, []).append(condition)
    same_as = [
        others_named([c for c in members[group] if c != condition])
        for condition, group in zip(conditions, groups)
    ]
    return pd.DataFrame(
        {
            "rank": pd.array(ranks, dtype="Int64"),
            "specific_effect": np.round(specific, 4),
            "effect_over_noise": np.round(specific / floor, 2),
            "same_as": same_as,
        },
        index=conditions,
    )
