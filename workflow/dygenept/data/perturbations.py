"""What the train and evaluate stages share: perturbations linked to their genes' facets and their cells."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import torch

from ..formats.cell_embedding import CellEmbedding, load_cell_embedding
from ..formats.facet_tensor import FacetTensor, load_facet_tensor
from ..formats.gene_table import read_genes
from ..model.prior import GeneFeature, Perturbation, TrainingSet
from .arrays import dense
from .conditions import (
    CONDITION_KEY,
    CONTEXT_KEY,
    CONTROL,
    CONTROL_KEY,
    condition_genes,
    parse_context_label,
)

MAX_GENES_PER_PERTURBATION = 2


@dataclass
class PerturbationData:
    gene_names: list[str]
    control_expression: np.ndarray  # (control cells, G), rows aligned with cell_state
    cell_state: np.ndarray  # (control cells, d)
    mean_by_condition: dict[str, np.ndarray]  # condition → observed mean expression (G,)
    facet_rows: dict[str, list[int]]  # condition → facet-tensor row of each perturbed gene
    facets: FacetTensor
    cells: CellEmbedding
    skipped: dict[str, str]  # condition → why it cannot be modelled
    var: pd.DataFrame | None = None  # the data's var (gene annotations), for predictions as AnnData
    # Data split by held-out context: each control cell's context (conditions are ``A+ctrl|K562``).
    control_context: np.ndarray | None = None
    _context_means: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @cached_property
    def control_mean(self) -> np.ndarray:
        """The mean of every control cell (of every context); computed once."""
        return self.control_expression.mean(axis=0)

    def control_rows(self, condition: str) -> np.ndarray:
        """The control cells a condition is measured against: those of its context, else all."""
        context = parse_context_label(condition)[1]
        if self.control_context is None or not context:
            return np.arange(self.control_expression.shape[0])
        return np.flatnonzero(self.control_context == context)

    def control_mean_of(self, condition: str) -> np.ndarray:
        context = parse_context_label(condition)[1]
        if self.control_context is None or not context:
            return self.control_mean
        if context not in self._context_means:
            rows = self.control_rows(condition)
            self._context_means[context] = self.control_expression[rows].mean(axis=0)
        return self._context_means[context]

    def change(self, condition: str) -> np.ndarray:
        """The observed mean change from the condition's own controls."""
        return self.true_mean(condition) - self.control_mean_of(condition)

    def draw_controls(
        self, conditions: list[str], per_condition: int, rng: np.random.Generator
    ) -> np.ndarray:
        """(conditions, per_condition) control-cell rows, each row drawn from its condition's controls."""
        if self.control_context is None:
            return rng.integers(
                0, self.control_expression.shape[0], size=(len(conditions), per_condition)
            )
        return np.stack(
            [
                rows[rng.integers(0, len(rows), size=per_condition)]
                for rows in map(self.control_rows, conditions)
            ]
        )

    def true_mean(self, condition: str) -> np.ndarray:
        return self.mean_by_condition[condition]

    def measured(self, conditions: list[str]) -> list[str]:
        """The conditions with cells in the data: every method predicts them (a gene without facets is
        unknown, and gets the prior)."""
        return [c for c in conditions if c in self.mean_by_condition]

    def known_rows(self, condition: str) -> list[int]:
        """The facet-tensor rows of the condition's genes that have at least one facet."""
        rows = self.facet_rows.get(condition, [])
        return [row for row in rows if self.facets.mask[row].any()]

    def static_embedding(self, row: int) -> np.ndarray | None:
        """A gene's mean embedding over its present facets; None when it has none (unknown)."""
        mask = self.facets.mask[row]
        return (
            self.facets.embeddings[row][mask].astype(np.float64).mean(axis=0)
            if mask.any()
            else None
        )

    def perturbation_genes(self, condition: str) -> Perturbation:
        """Each perturbed gene's key (its symbol, with the context in data split by context) and static
        embedding; genes outside the facet tensor are unknown."""
        label, context = parse_context_label(condition)
        rows = self.facet_rows.get(condition) or [None] * len(condition_genes(label))
        return tuple(
            GeneFeature(
                f"{gene}|{context}" if context else gene,
                None if row is None else self.static_embedding(row),
            )
            for gene, row in zip(condition_genes(label), rows)
        )

    def training_set(self, train: list[str]) -> TrainingSet:
        """The measured training perturbations, their genes and observed mean changes."""
        measured = self.measured(train)
        return TrainingSet(
            [self.perturbation_genes(c) for c in measured],
            np.stack([self.change(c) for c in measured]),
        )

    def facet_inputs(
        self, conditions: list[str]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Facets (n, 2, K, D), mask (n, 2, K) and present (n, 2) for each condition. A slot is present
        only for a gene with at least one facet: an unknown gene adds nothing learned."""
        _, n_facets, dim = self.facets.embeddings.shape
        facets = np.zeros(
            (len(conditions), MAX_GENES_PER_PERTURBATION, n_facets, dim), dtype=np.float32
        )
        mask = np.zeros((len(conditions), MAX_GENES_PER_PERTURBATION, n_facets), dtype=bool)
        present = np.zeros((len(conditions), MAX_GENES_PER_PERTURBATION), dtype=bool)
        for i, condition in enumerate(conditions):
            for slot, row in enumerate(self.known_rows(condition)):
                facets[i, slot] = self.facets.embeddings[row]
                mask[i, slot] = self.facets.mask[row]
                present[i, slot] = True
        return torch.from_numpy(facets), torch.from_numpy(mask), torch.from_numpy(present)


def load_perturbation_data(
    h5ad: str | Path,
    genes: str | Path | pd.DataFrame,
    facet_tensor: str | Path | FacetTensor,
    cell_embedding: str | Path,
) -> PerturbationData:
    adata = ad.read_h5ad(h5ad)
    cells = load_cell_embedding(cell_embedding)
    facets = (
        facet_tensor if isinstance(facet_tensor, FacetTensor) else load_facet_tensor(facet_tensor)
    )
    gene_table = genes if isinstance(genes, pd.DataFrame) else read_genes(genes)
    entrez_of_query = dict(zip(gene_table["query"], gene_table["entrez_id"]))
    row_of_entrez = facets.row_of()
    controls = adata[adata.obs[CONTROL_KEY].values]
    control_expression = dense(controls[cells.cell_ids].X)
    conditions = adata.obs[CONDITION_KEY].astype(str)
    mean_by_condition, facet_rows, skipped = {}, {}, {}
    for condition in sorted(set(conditions) - {CONTROL}):
        genes_of = condition_genes(condition)
        if len(genes_of) > MAX_GENES_PER_PERTURBATION:
            skipped[condition] = f"more than {MAX_GENES_PER_PERTURBATION} genes"
            continue
        missing = [g for g in genes_of if entrez_of_query.get(g) not in row_of_entrez]
        # Only the mean is ever a target: never densify every perturbed cell (90k × 5k for full Norman).
        mean_by_condition[condition] = np.asarray(
            adata.X[(conditions == condition).values].mean(axis=0), dtype=np.float32
        ).ravel()
        if missing:
            skipped[condition] = f"no facets for {missing} (unmapped gene)"
            continue
        facet_rows[condition] = [row_of_entrez[entrez_of_query[g]] for g in genes_of]
    control_context = (
        controls[cells.cell_ids].obs[CONTEXT_KEY].astype(str).to_numpy()
        if CONTEXT_KEY in adata.obs
        else None
    )
    return PerturbationData(
        adata.var_names.astype(str).tolist(),
        control_expression,
        cells.embeddings,
        mean_by_condition,
        facet_rows,
        facets,
        cells,
        skipped,
        adata.var.copy(),
        control_context,
    )


HalfMeans = list[tuple[np.ndarray, np.ndarray]]  # per draw: the means of the two halves


def half_split_means(
    h5ad: str | Path, conditions: list[str], draws: int, seed: int
) -> tuple[dict[str, HalfMeans], dict[str, HalfMeans]]:
    """Mean expression of two random halves of each condition's cells, and of the control cells (by
    context; ``""`` in data without contexts), for ``draws`` draws: the data's own noise ceiling.
    Conditions with fewer than 2 cells are left out."""
    adata = ad.read_h5ad(h5ad)
    labels = adata.obs[CONDITION_KEY].astype(str).to_numpy()
    rng = np.random.default_rng(seed)

    def halves(rows: np.ndarray) -> HalfMeans:
        pairs = []
        for _ in range(draws):
            order = rng.permutation(rows)
            first, second = order[: len(rows) // 2], order[len(rows) // 2 :]
            pairs.append(
                tuple(
                    np.asarray(adata.X[np.sort(part)].mean(axis=0), dtype=np.float64).ravel()
                    for part in (first, second)
                )
            )
        return pairs

    is_control = adata.obs[CONTROL_KEY].to_numpy(bool)
    if CONTEXT_KEY in adata.obs:
        contexts = adata.obs[CONTEXT_KEY].astype(str).to_numpy()
        controls = {
            context: halves(np.flatnonzero(is_control & (contexts == context)))
            for context in sorted(set(contexts))
        }
    else:
        controls = {"": halves(np.flatnonzero(is_control))}
    by_condition = {}
    for condition in conditions:
        rows = np.flatnonzero(labels == condition)
        if len(rows) >= 2:
            by_condition[condition] = halves(rows)
    return by_condition, controls
