"""Fitting the DyGenePT adapters on training perturbations; the backbones stay frozen.

Each step draws a few training perturbations and, for each, a batch of control cells; the loss is the
squared error between the mean predicted and the mean observed expression of that perturbation
(observed cells are not paired with control cells in Perturb-seq, so the mean is the target). With
validation perturbations, the weights of the best validation loss are kept.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from ..perturbations import PerturbationData
from .network import DyGenePTModule, ModelConfig

log = logging.getLogger(__name__)


def build_model(data: PerturbationData, model_params: dict) -> DyGenePTModule:
    n_genes_in_tensor, n_facets, facet_dim = data.facets.embeddings.shape
    config = ModelConfig(
        cell_dim=data.cell_state.shape[1],
        facet_dim=facet_dim,
        n_facets=n_facets,
        n_genes=len(data.gene_names),
        hidden_dim=model_params["hidden_dim"],
        mlp_dim=model_params["mlp_dim"],
        dropout=model_params["dropout"],
        attention=model_params["attention"],
    )
    decoder = data.cells
    weight = None if decoder.decoder_weight is None else torch.from_numpy(decoder.decoder_weight)
    bias = None if decoder.decoder_bias is None else torch.from_numpy(decoder.decoder_bias)
    return DyGenePTModule(config, weight, bias)


def training_step_loss(
    model: DyGenePTModule,
    data: PerturbationData,
    conditions: list[str],
    cells_per_condition: int,
    rng: np.random.Generator,
) -> torch.Tensor:
    facets, mask, present = data.facet_inputs(conditions)
    n_controls = data.cell_state.shape[0]
    picks = rng.integers(0, n_controls, size=(len(conditions), cells_per_condition))
    state = torch.from_numpy(data.cell_state[picks.ravel()])
    control = torch.from_numpy(data.control_expression[picks.ravel()])
    repeat = lambda t: t.repeat_interleave(cells_per_condition, dim=0)  # noqa: E731
    predicted, _ = model(state, control, repeat(facets), repeat(mask), repeat(present))
    predicted_mean = predicted.view(len(conditions), cells_per_condition, -1).mean(dim=1)
    target = torch.from_numpy(np.stack([data.true_mean(c) for c in conditions]))
    return torch.mean((predicted_mean - target) ** 2)


def validation_loss(
    model: DyGenePTModule, data: PerturbationData, conditions: list[str], params: dict
) -> float:
    """The training loss on held-out validation perturbations, with a fixed draw of control cells."""
    model.eval()
    with torch.no_grad():
        loss = training_step_loss(
            model,
            data,
            conditions,
            params["cells_per_condition"],
            np.random.default_rng(params["seed"]),
        )
    model.train()
    return loss.item()


def fit(
    model: DyGenePTModule,
    data: PerturbationData,
    train_conditions: list[str],
    params: dict,
    val_conditions: list[str] = (),
) -> list[dict]:
    """Train with AdamW; with validation perturbations, keep the weights of the best validation loss."""
    torch.manual_seed(params["seed"])
    rng = np.random.default_rng(params["seed"])
    optimiser = torch.optim.AdamW(
        model.parameters(), lr=params["learning_rate"], weight_decay=params["weight_decay"]
    )
    history, best = [], (float("inf"), None)
    model.train()
    for step in range(1, params["steps"] + 1):
        batch = list(
            rng.choice(
                train_conditions,
                size=min(params["conditions_per_step"], len(train_conditions)),
                replace=False,
            )
        )
        loss = training_step_loss(model, data, batch, params["cells_per_condition"], rng)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % params["log_every"] == 0 or step == params["steps"]:
            record = {"step": step, "loss": loss.item()}
            if val_conditions:
                record["val_loss"] = validation_loss(model, data, list(val_conditions), params)
                if record["val_loss"] < best[0]:
                    best = (
                        record["val_loss"],
                        {k: v.detach().clone() for k, v in model.state_dict().items()},
                    )
            history.append(record)
            log.info(
                "step %d/%d %s",
                step,
                params["steps"],
                ", ".join(f"{k} {v:.5f}" for k, v in record.items() if k != "step"),
            )
    if best[1] is not None:
        model.load_state_dict(best[1])
        log.info("kept the weights of the best validation loss %.5f", best[0])
    model.eval()
    return history
