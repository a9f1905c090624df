"""Predictions of a trained model (``network.TrainedModel``: the network and the prior it nests): mean
expression over the control cells, and the facet weights.

The network runs where its weights are (the caller moves it to config 'train.device'): each batch of
control cells goes to that device, and only the batch's sum and facet weights come back.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.perturbations import PerturbationData
from .network import TrainedModel


def predict_condition(
    model: TrainedModel, data: PerturbationData, condition: str, batch_size: int = 512
):
    """Mean predicted expression over the condition's control cells (all, or its context's), and the
    per-cell facet weights (cells, P, K), computed ``batch_size`` cells at a time on the model's device.
    """
    device = next(model.module.parameters()).device
    facets, mask, present = (t.to(device) for t in data.facet_inputs([condition]))
    prior = torch.from_numpy(model.prior_change(data, condition).astype(np.float32)).to(device)
    rows = data.control_rows(condition)
    sums, weights = [], []
    with torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            state = torch.from_numpy(data.cell_state[batch]).to(device)
            control = torch.from_numpy(data.control_expression[batch]).to(device)
            genes = [t.expand(state.shape[0], *t.shape[1:]) for t in (facets, mask, present)]
            predicted, facet_weights = model.module(state, control, *genes, prior)
            sums.append(predicted.sum(dim=0))
            weights.append(facet_weights)
    mean = torch.stack(sums).sum(dim=0) / len(rows)
    return mean.cpu().numpy(), torch.cat(weights).cpu().numpy()
