"""Predictions of a trained model (``network.TrainedModel``: the network and the prior it nests): mean
expression over the control cells, and the facet weights."""

from __future__ import annotations

import numpy as np
import torch

from ..data.perturbations import PerturbationData
from .network import TrainedModel


def predict_condition(
    model: TrainedModel, data: PerturbationData, condition: str, batch_size: int = 512
):
    """Mean predicted expression over the condition's control cells (all, or its context's), and the
    per-cell facet weights (cells, P, K)."""
    facets, mask, present = data.facet_inputs([condition])
    prior = torch.from_numpy(model.prior_change(data, condition).astype(np.float32))
    rows = data.control_rows(condition)
    means, weights = [], []
    with torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            state = torch.from_numpy(data.cell_state[batch])
            control = torch.from_numpy(data.control_expression[batch])
            genes = [t.expand(state.shape[0], *t.shape[1:]) for t in (facets, mask, present)]
            predicted, facet_weights = model.module(state, control, *genes, prior)
            means.append(predicted.sum(dim=0))
            weights.append(facet_weights)
    return (torch.stack(means).sum(dim=0) / len(rows)).numpy(), torch.cat(weights).numpy()
