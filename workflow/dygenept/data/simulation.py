"""A positive control for context: SIMULATED cells whose response to a perturbed gene is driven by a
different one of that gene's real facet embeddings in each of two cell states.

Nothing here is measured data. From a facet tensor (real genes, real facet texts and embeddings), it
builds a ``PerturbationData`` in which:

- control cells come in two states, A and B: cell states ``z ~ N(±a·e₁, I)`` (d dimensions), expression
  ``x = L z + ε`` with a random loading matrix L (G × d) and cell noise ε;
- each (gene, state) has a *planted facet* ``k(g, s)``: the first of the gene's present facets in that
  state's ranking of the facet slots (``rule``):

  ``type``      state A ranks immune response, then signal transduction first; state B cell cycle, then
                metabolism; the other facets follow in slot order (A) and reverse slot order (B)
  ``position``  state A: the gene's first present facet in slot order; state B: its last
  ``none``      the negative control: no context; both states respond to the mean of the gene's facets

  Only genes whose planted facets differ between the states are kept (none are dropped for ``none``);
- the mean change of (gene, state) is ``Δ = scale · M (F_{g,k(g,s)} − F̄)``: a fixed random map M of rank
  r (G × r times r × D, Gaussian) applied to the planted facet's embedding centred by the mean F̄ of all
  present facet embeddings, scaled so the changes have unit standard deviation per gene; the observed
  mean is the mean of ``cells_per_perturbation`` simulated cells of that state plus Δ, so the cell noise
  reaches the targets as it does in data.

Conditions are ``<gene>+ctrl|A`` and ``<gene>+ctrl|B``, each measured against its own state's controls (the
held-out-context machinery), so a model sees a state only through its control cells. A static model (no
cell information in the gene path) predicts the same change in both states and cannot fit the planted
rule; a model whose facet attention reads the cell state can.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..formats.cell_embedding import CellEmbedding
from ..formats.facet_tensor import FacetTensor
from ..settings import read_fields
from .conditions import context_label
from .perturbations import PerturbationData

STATES = ("A", "B")
# The facet types that lead each state's ranking under rule "type" (ids of resources/facets.yaml).
TYPE_LEADS = {"A": ("immune_response", "signal_transduction"), "B": ("cell_cycle", "metabolism")}

Rule = Literal["type", "position", "none"]


@dataclass(frozen=True)
class SimulationSettings:
    rule: Rule
    max_genes: int
    control_cells_per_state: int
    cells_per_perturbation: int
    cell_dim: int
    expression_genes: int
    response_rank: int
    cell_noise: float
    state_separation: float
    seed: int

    @classmethod
    def from_params(cls, params: dict) -> SimulationSettings:
        return read_fields(cls, params)


@dataclass
class Simulation:
    """The simulated data, each condition's planted facet (None under rule ``none``), its genes, and each
    condition's half-split noise ceiling (pearson_delta of one half of its cells, against half of its
    state's controls, with the other half)."""

    data: PerturbationData
    planted: dict[str, int | None]
    genes: list[str]
    settings: SimulationSettings
    ceiling: dict[str, float]


def state_rankings(facet_ids: list[str], rule: Rule) -> dict[str, list[int]]:
    """Each state's ranking of the facet slots."""
    slots = list(range(len(facet_ids)))
    if rule == "position":
        return {"A": slots, "B": slots[::-1]}
    position = {facet: k for k, facet in enumerate(facet_ids)}
    missing = [f for leads in TYPE_LEADS.values() for f in leads if f not in position]
    if missing:
        raise ValueError(f"rule 'type' needs the facets {missing}; the tensor has {facet_ids}")
    rankings = {}
    for state, rest_order in (("A", slots), ("B", slots[::-1])):
        leads = [position[f] for f in TYPE_LEADS[state]]
        rankings[state] = leads + [k for k in rest_order if k not in leads]
    return rankings


def planted_facets(mask: np.ndarray, rankings: dict[str, list[int]]) -> dict[str, int]:
    """A gene's planted facet in each state: the first of its present facets in the state's ranking."""
    return {state: next(k for k in order if mask[k]) for state, order in rankings.items()}


def choose_genes(tensor: FacetTensor, settings: SimulationSettings) -> list[int]:
    """Rows with at least two present facets (whose planted facets differ between the states, under a
    planted rule), at most ``max_genes`` of them drawn at random."""
    rows = [row for row in range(len(tensor.symbols)) if tensor.mask[row].sum() >= 2]
    if settings.rule != "none":
        rankings = state_rankings(list(tensor.facet_ids), settings.rule)
        rows = [r for r in rows if len(set(planted_facets(tensor.mask[r], rankings).values())) > 1]
    rng = np.random.default_rng(settings.seed)
    if len(rows) > settings.max_genes:
        rows = sorted(rng.choice(rows, size=settings.max_genes, replace=False).tolist())
    return rows


def simulate(tensor: FacetTensor, settings: SimulationSettings) -> Simulation:
    rng = np.random.default_rng([settings.seed, 1])
    rows = choose_genes(tensor, settings)
    embeddings = tensor.embeddings.astype(np.float64)
    centre = embeddings[tensor.mask].mean(axis=0)
    d, g = settings.cell_dim, settings.expression_genes
    loadings = rng.normal(size=(g, d)) / np.sqrt(d)
    response = rng.normal(size=(g, settings.response_rank)) @ rng.normal(
        size=(settings.response_rank, embeddings.shape[-1])
    )
    rankings = (
        None if settings.rule == "none" else state_rankings(list(tensor.facet_ids), settings.rule)
    )

    def driver(row: int, state: str) -> tuple[np.ndarray, int | None]:
        if rankings is None:
            return embeddings[row][tensor.mask[row]].mean(axis=0), None
        k = planted_facets(tensor.mask[row], rankings)[state]
        return embeddings[row, k], k

    drivers = {(row, s): driver(row, s) for row in rows for s in STATES}
    raw = np.stack([response @ (vector - centre) for vector, _ in drivers.values()])
    scale = 1.0 / raw.std(axis=0).mean()

    offset = np.zeros(d)
    offset[0] = settings.state_separation

    def cells(state: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        centre_state = offset if state == "A" else -offset
        z = centre_state + rng.normal(size=(n, d))
        return z, z @ loadings.T + settings.cell_noise * rng.normal(size=(n, g))

    control = {state: cells(state, settings.control_cells_per_state) for state in STATES}
    means, planted, facet_rows, ceiling = {}, {}, {}, {}
    for (row, state), change in zip(drivers, raw * scale):
        condition = context_label(f"{tensor.symbols[row]}+ctrl", state)
        _, perturbed = cells(state, settings.cells_per_perturbation)
        perturbed = perturbed + change
        means[condition] = perturbed.mean(axis=0).astype(np.float32)
        planted[condition] = drivers[(row, state)][1]
        facet_rows[condition] = [row]
        ceiling[condition] = half_split_pearson(perturbed, control[state][1])
    cell_state = np.concatenate([control[s][0] for s in STATES]).astype(np.float32)
    expression = np.concatenate([control[s][1] for s in STATES]).astype(np.float32)
    context = np.repeat(np.array(STATES), settings.control_cells_per_state)
    ids = [f"{s}_{i}" for s in STATES for i in range(settings.control_cells_per_state)]
    embedding = CellEmbedding(cell_state, ids, "simulated", loadings.astype(np.float32), None)
    data = PerturbationData(
        [f"sim{i}" for i in range(g)],
        expression,
        cell_state,
        means,
        facet_rows,
        tensor,
        embedding,
        {},
        None,
        context,
    )
    return Simulation(data, planted, [tensor.symbols[r] for r in rows], settings, ceiling)


def half_split_pearson(perturbed: np.ndarray, control: np.ndarray) -> float:
    """pearson_delta of the first half of the perturbed cells (against the first half of the controls)
    with the second half (against the second half): the noise ceiling of one simulated condition."""
    p, c = len(perturbed) // 2, len(control) // 2
    first = perturbed[:p].mean(axis=0) - control[:c].mean(axis=0)
    second = perturbed[p:].mean(axis=0) - control[c:].mean(axis=0)
    return float(np.corrcoef(first, second)[0, 1])


def gene_split(
    genes: list[str], fractions: tuple[float, float], seed: int
) -> tuple[list[str], list[str], list[str]]:
    """Genes (with all their states) into train, validation and held-out test: ``fractions`` are the
    validation and test shares."""
    order = np.random.default_rng(seed).permutation(len(genes))
    n_val, n_test = (int(round(f * len(genes))) for f in fractions)
    pick = lambda part: sorted(genes[i] for i in part)  # noqa: E731
    return (
        pick(order[n_val + n_test :]),
        pick(order[:n_val]),
        pick(order[n_val : n_val + n_test]),
    )


def conditions_of(genes: list[str]) -> list[str]:
    return [context_label(f"{gene}+ctrl", state) for gene in genes for state in STATES]


def with_rule(settings: SimulationSettings, rule: Rule) -> SimulationSettings:
    return dataclasses.replace(settings, rule=rule)
