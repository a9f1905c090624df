"""The DyGenePT network: tensors in, tensors out; no I/O, no device strings.

For a control cell with frozen state ``z`` and expression ``x_ctrl``, and a perturbed gene with frozen
facet embeddings F (K, D) of which the mask says which are present:

    q      = LayerNorm(ReLU(W_q z + b))                      cell query
    κ_k    = W_k F_k + s_k                                   facet keys; s_k: a learned embedding of facet
                                                             slot k (``slot_keys``), so a query can ask for
                                                             a kind of facet, not only for its text
    α      = normalise(q · κᵀ / √h) over present facets      facet weights: sparsemax, entmax15, softmax,
                                                             or ``mean`` (uniform over present facets
                                                             whatever the cell: the static ablation)
    e      = Σ_k α_k W_v F_k                                 cell-specific gene embedding
    shift  = Σ_genes MLP(e) + MLP_pair(e_a ⊙ e_b)            the pair term only for double perturbations;
                                                             MLP([e, q]) with ``query_in_shift``
    x̂      = x_ctrl + prior + W_dec · shift                  prior: the perturbation's change predicted by
                                                             a closed-form baseline (``model.prior``)

A gene without any facet is unknown: its slot is absent and adds nothing, so an unknown single gets the
prior alone. With ``attention: mean`` and without ``query_in_shift`` no cell information reaches the gene
path: the truly static model.

Optional (``contrastive_dim`` > 0), the CLIP-style alignment of the design: two linear heads map the
cell-specific gene embedding (summed over the perturbation's genes, averaged over its cells) and the
observed change of expression into one space, where training adds an InfoNCE loss that asks each
perturbation's embedding to pick out its own observed change among the batch's. The heads shape what the
embeddings learn; predictions never pass through them.

The last layers of both MLPs start at zero, so an untrained network predicts ``x_ctrl + prior`` for every
cell: averaged over the control cells, exactly the baseline it nests. Training learns only the residual
from that baseline. ``W_dec`` starts at the PCA loadings when the cell states are PCA scores
(``decode(z + shift) − decode(z)`` for a linear decoder). Sparsity of α comes from the normaliser (an L1
penalty on sparsemax weights is constant, since they sum to one) and, optionally, from an entropy penalty
in training.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from .prior import Prior

AttentionKind = Literal["sparsemax", "entmax15", "softmax", "mean"]


# A score far below any real one: a facet the gene lacks gets weight 0 (exp underflows; sparsemax cuts it).
MASKED_SCORE = -1e9


@dataclass(frozen=True)
class ModelConfig:
    """The network's shape, saved in its checkpoint (the sizes come from the data, the rest from config
    ``train.model``)."""

    cell_dim: int
    facet_dim: int
    n_facets: int
    n_genes: int
    hidden_dim: int
    mlp_dim: int
    dropout: float
    attention: AttentionKind
    contrastive_dim: int  # 0: no alignment heads
    slot_keys: bool
    query_in_shift: bool

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def attention_normaliser(kind: AttentionKind):
    if kind == "softmax":
        return lambda scores: torch.softmax(scores, dim=-1)
    from entmax import entmax15, sparsemax

    return {"sparsemax": lambda s: sparsemax(s, dim=-1), "entmax15": lambda s: entmax15(s, dim=-1)}[
        kind
    ]


def mean_over_present(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Uniform weights over a gene's present facets; over all K for an absent slot (its weight is
    multiplied by zero after)."""
    weights = mask.to(dtype)
    weights = torch.where(weights.sum(-1, keepdim=True) > 0, weights, torch.ones_like(weights))
    return weights / weights.sum(-1, keepdim=True)


def mlp(in_dim: int, hidden: int, out_dim: int, dropout: float, zero_last: bool = False):
    layers = nn.Sequential(
        nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim)
    )
    if zero_last:
        nn.init.zeros_(layers[-1].weight)
        nn.init.zeros_(layers[-1].bias)
    return layers


class FacetAttention(nn.Module):
    """Cross-attention of a cell query over one gene's facets (or their plain mean: ``mean``)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.query = nn.Sequential(
            nn.Linear(config.cell_dim, config.hidden_dim),
            nn.ReLU(),
            nn.LayerNorm(config.hidden_dim),
        )
        self.value = nn.Linear(config.facet_dim, config.hidden_dim)
        self.static = config.attention == "mean"
        if not self.static:
            self.key = nn.Linear(config.facet_dim, config.hidden_dim)
            self.normalise = attention_normaliser(config.attention)
        slot = torch.randn(config.n_facets, config.hidden_dim) * 0.1
        self.slot = nn.Parameter(slot) if config.slot_keys and not self.static else None
        self.scale = 1.0 / math.sqrt(config.hidden_dim)

    def forward(self, cell_state: torch.Tensor, facets: torch.Tensor, mask: torch.Tensor):
        """cell_state (B, d), facets (B, K, D), mask (B, K) → embedding (B, h), weights (B, K), query (B, h)."""
        query = self.query(cell_state)
        if self.static:
            weights = mean_over_present(mask, query.dtype)
        else:
            keys = self.key(facets)
            if self.slot is not None:
                keys = keys + self.slot
            scores = torch.einsum("bh,bkh->bk", query, keys).float() * self.scale
            scores = scores.masked_fill(~mask, MASKED_SCORE)
            weights = self.normalise(scores).to(query.dtype)
        embedding = torch.einsum("bk,bkh->bh", weights, self.value(facets))
        return embedding, weights, query


class DyGenePTModule(nn.Module):
    def __init__(self, config: ModelConfig, decoder_weight: torch.Tensor | None = None):
        super().__init__()
        self.config = config
        self.attention = FacetAttention(config)
        shift_input = (2 if config.query_in_shift else 1) * config.hidden_dim
        self.shift = mlp(
            shift_input, config.mlp_dim, config.cell_dim, config.dropout, zero_last=True
        )
        self.pair_shift = mlp(
            config.hidden_dim, config.mlp_dim, config.cell_dim, config.dropout, zero_last=True
        )
        self.decoder = nn.Linear(config.cell_dim, config.n_genes, bias=False)
        if decoder_weight is not None:
            with torch.no_grad():
                self.decoder.weight.copy_(decoder_weight)
        if config.contrastive_dim:
            self.gene_projection = nn.Linear(config.hidden_dim, config.contrastive_dim)
            self.change_projection = nn.Linear(config.n_genes, config.contrastive_dim)

    def forward(
        self,
        cell_state: torch.Tensor,
        control_expression: torch.Tensor,
        facets: torch.Tensor,
        mask: torch.Tensor,
        present: torch.Tensor,
        prior: torch.Tensor,
        with_embedding: bool = False,
    ):
        """Predict perturbed expression: each control cell's expression plus ``change`` (same inputs)."""
        change, *rest = self.change(cell_state, facets, mask, present, prior, with_embedding)
        return (control_expression + change, *rest)

    def change(
        self,
        cell_state: torch.Tensor,
        facets: torch.Tensor,
        mask: torch.Tensor,
        present: torch.Tensor,
        prior: torch.Tensor,
        with_embedding: bool = False,
    ):
        """Predict each cell's change of expression.

        cell_state (B, d) describes control cells; facets (B, P, K, D) and mask (B, P, K) the P ≤ 2
        perturbed genes of each cell's perturbation; present (B, P) says which gene slots hold a known
        gene (False: a single perturbation's empty second slot, or a gene without facets); prior (B, G)
        or (G,) the nested baseline's change. Returns (change (B, G), facet weights (B, P, K)), and with
        ``with_embedding`` the cell-specific embedding summed over the genes (B, h).
        """
        batch, n_slots = facets.shape[:2]
        states = cell_state.unsqueeze(1).expand(-1, n_slots, -1).reshape(batch * n_slots, -1)
        embedding, weights, query = self.attention(
            states,
            facets.reshape(batch * n_slots, *facets.shape[2:]),
            mask.reshape(batch * n_slots, -1),
        )
        slot_weight = present.unsqueeze(-1).to(embedding.dtype)
        embedding = embedding.view(batch, n_slots, -1) * slot_weight
        shift_input = embedding
        if self.config.query_in_shift:
            shift_input = torch.cat([embedding, query.view(batch, n_slots, -1)], dim=-1)
        shift = (self.shift(shift_input) * slot_weight).sum(dim=1)
        if n_slots > 1:
            is_pair = present.all(dim=1, keepdim=True).to(embedding.dtype)
            shift = shift + self.pair_shift(embedding[:, 0] * embedding[:, 1]) * is_pair
        change = prior + self.decoder(shift)
        if with_embedding:
            return change, weights.view(batch, n_slots, -1), embedding.sum(dim=1)
        return change, weights.view(batch, n_slots, -1)

    def contrastive_loss(
        self, gene_embedding: torch.Tensor, observed_change: torch.Tensor, temperature: float
    ) -> torch.Tensor:
        """Symmetric InfoNCE between n perturbations' gene embeddings (n, h) and their observed changes
        (n, G): perturbation i's embedding should be nearest its own change, and the change its own
        embedding (log n at chance)."""
        genes = nn.functional.normalize(self.gene_projection(gene_embedding), dim=-1)
        changes = nn.functional.normalize(self.change_projection(observed_change), dim=-1)
        logits = genes @ changes.T / temperature
        labels = torch.arange(len(logits), device=logits.device)
        return (
            nn.functional.cross_entropy(logits, labels)
            + nn.functional.cross_entropy(logits.T, labels)
        ) / 2


def trainable_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@dataclass
class TrainedModel:
    """The network with the closed-form prior it nests: a prediction is the prior's change plus the
    network's residual, added to each control cell."""

    module: DyGenePTModule
    prior: Prior

    def to(self, device) -> TrainedModel:
        """The model with its network on ``device`` (the prior's arrays stay on the host)."""
        self.module.to(device)
        return self

    def prior_change(self, data, condition: str) -> np.ndarray:
        """The prior's change for a condition of ``data`` (a ``PerturbationData``)."""
        return self.prior.change(data.perturbation_genes(condition))
